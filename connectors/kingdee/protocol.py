"""Wire-level facts of the K/3 Cloud (金蝶云星空) WebAPI, shared by the connector and its emulator.

Sources are in ``../shared/reference/erp.md`` §1: every call is
``POST {server}/K3Cloud/{stub}.common.kdsvc`` with a JSON body; errors come back
as HTTP 200 with a ``ResponseStatus`` (wrapped as ``[[{"Result": …}]]`` for
ExecuteBillQuery); ``MsgCode`` values are the documented table.
"""
from __future__ import annotations

from enum import IntEnum, StrEnum

SITE = "K3Cloud"
STUB_SUFFIX = ".common.kdsvc"

_AUTH = "Kingdee.BOS.WebApi.ServicesStub.AuthService"
_FORM = "Kingdee.BOS.WebApi.ServicesStub.DynamicFormService"


class Stub(StrEnum):
    """The service stubs crmsync calls (full names as the server routes them)."""

    VALIDATE_USER = f"{_AUTH}.ValidateUser"
    LOGIN_BY_APP_SECRET = f"{_AUTH}.LoginByAppSecret"
    LOGOUT = f"{_AUTH}.LogOut"
    EXECUTE_BILL_QUERY = f"{_FORM}.ExecuteBillQuery"
    SAVE = f"{_FORM}.Save"
    BATCH_SAVE = f"{_FORM}.BatchSave"
    VIEW = f"{_FORM}.View"
    DELETE = f"{_FORM}.Delete"
    SUBMIT = f"{_FORM}.Submit"
    AUDIT = f"{_FORM}.Audit"
    UNAUDIT = f"{_FORM}.UnAudit"
    QUERY_BUSINESS_INFO = f"{_FORM}.QueryBusinessInfo"

    @property
    def op(self) -> str:
        """Short operation name (``ExecuteBillQuery``) for logs, metrics and call counts."""
        return self.value.rsplit(".", 1)[1]

    @property
    def path(self) -> str:
        return f"{self.value}{STUB_SUFFIX}"

    @property
    def is_login(self) -> bool:
        return self.value.startswith(_AUTH)


#: Cookies the login sets; both are sent back on every later call.
SESSION_COOKIE = "kdservice-sessionid"
ASPNET_COOKIE = "ASP.NET_SessionId"
SESSION_COOKIES = (SESSION_COOKIE, ASPNET_COOKIE)

#: The HTTP 200 answer to a call whose login session is gone ("session information lost, please log in again").
SESSION_LOST_MESSAGE = "会话信息已丢失，请重新登录"

#: ExecuteBillQuery ``Limit`` "不能超过10000" per the operation doc.
QUERY_LIMIT_MAX = 10000

#: lcid values: zh-CN, zh-TW, en.
LCIDS = (2052, 3076, 1033)


class MsgCode(IntEnum):
    """``ResponseStatus.MsgCode`` (documented table)."""

    DEFAULT = 0
    CONTEXT_LOST = 1
    NO_PERMISSION = 2
    OPERATION_EMPTY = 3
    EXCEPTION = 4
    FORM_ID_EMPTY = 5
    DATABASE_FAILED = 6
    LICENCE = 7
    PARAMETER = 8
    FIELD_NOT_FOUND = 9
    DATA_NOT_FOUND = 10
    VALIDATION_FAILED = 11
    NOT_ALLOWED = 12
    NETWORK_CONTROL = 13
    CALL_LIMIT = 14
    ADMIN_LOGIN_FORBIDDEN = 15


class LoginResultType(IntEnum):
    SUCCESS = 1
    WRONG_PASSWORD = 0
    FAILURE = -1


#: FDocumentStatus values.
DOCUMENT_STATUS = {"Z": "暂存", "A": "创建", "B": "审核中", "C": "已审核", "D": "重新审核"}
#: FForbidStatus values.
FORBID_STATUS = {"A": "否", "B": "是"}
