/**
 * crmsync change push — an APL function for Fxiaoke (纷享销客).
 *
 * Paste into 管理后台 → 自定义函数 (APL), namespace 流程 (workflow), bound to the object,
 * then call it from a workflow on that object for 新建 (create), 编辑 (edit) and 作废
 * (invalidate). One function per synced object (AccountObj, ContactObj, PartnerObj,
 * NewOpportunityObj, SalesOrderObj, custom __c objects) or one shared function bound to each.
 *
 * It POSTs crmsync's APL push, version 1 (connectors/fxiaoke/push_apl.py):
 *   headers  X-Crmsync-Timestamp: epoch ms
 *            X-Crmsync-Signature: "v1=" + hex(HMAC-SHA256(secret, timestamp + "." + body))
 *            X-Crmsync-Event-Id:  the body's eventId
 *   body     {"version":1,"eventId":…,"objectApiName":…,"ids":[…],"event":"create|update|delete",
 *             "timestamp":…,"tenantId":…}
 * crmsync then fetches the record through the OpenAPI; the push is only a hint, and the
 * periodic poll still catches anything a failed push missed.
 *
 * Set the two constants below: the URL is crmsync's server.public_url + "/webhooks/<system name>",
 * the secret is the system's notifications.apl_secret (keep it out of logs).
 */
String CRMSYNC_URL = "https://crmsync.example.com/webhooks/crm_cn"
String CRMSYNC_SECRET = "replace-with-notifications.apl_secret"

Map data = context.data as Map
String objectApiName = data["object_describe_api_name"] as String
String recordId = data["_id"] as String
String lifeStatus = data["life_status"] as String
def createdAt = data["create_time"]
def modifiedAt = data["last_modified_time"]

// Which change this is: a workflow may pass it explicitly in context.arg.crmsync_event;
// otherwise an invalid record is a delete and an untouched one a create.
String event = "update"
if (context.arg != null && context.arg["crmsync_event"] != null) {
  event = context.arg["crmsync_event"] as String
} else if (lifeStatus == "invalid") {
  event = "delete"
} else if (createdAt != null && createdAt == modifiedAt) {
  event = "create"
}

Long timestamp = DateTime.now().toTimestamp()
// Stable for one change of one record, so a re-run of the workflow is recognised as a duplicate.
String eventId = objectApiName + ":" + recordId + ":" + event + ":" + (modifiedAt == null ? timestamp : modifiedAt)

Map payload = [
  "version"      : 1,
  "eventId"      : eventId,
  "objectApiName": objectApiName,
  "ids"          : [recordId],
  "event"        : event,
  "timestamp"    : timestamp,
  "tenantId"     : context.tenantId
]
// Sign exactly the string that is sent.
String body = Fx.json.toJson(payload)
String stamp = timestamp.toString()
byte[] mac = Fx.crypto.SHA.sha256HMAC(CRMSYNC_SECRET, stamp + "." + body)
String signature = "v1=" + (Fx.crypto.hex.encode(mac) as String).toLowerCase()

Request request = Request.builder()
  .method("POST")
  .url(CRMSYNC_URL)
  .timeout(5000)
  .retryCount(1)
  .header("Content-Type", "application/json; charset=utf-8")
  .header("X-Crmsync-Timestamp", stamp)
  .header("X-Crmsync-Signature", signature)
  .header("X-Crmsync-Event-Id", eventId)
  .body(StringBody.builder().content(body).build())
  .build()

def (Boolean error, HttpResult result, String message) = Fx.http.execute(request)
if (error || result == null || result.statusCode != 200) {
  // Never fail the user's save because crmsync is unreachable: polling picks the change up.
  log.error("crmsync push failed for " + eventId + ": " + message + " status=" + (result == null ? "-" : result.statusCode))
} else {
  log.info("crmsync push sent " + eventId)
}
