"""Login sessions of the Kingdee emulator: the two login stubs, cookies and idle expiry."""
from __future__ import annotations

import secrets
import string
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Credentials:
    acct_id: str
    username: str
    password: str
    app_id: str
    app_secret: str


@dataclass(slots=True)
class LoginSession:
    session_id: str
    aspnet_id: str
    username: str
    last_seen: float


class SessionBook:
    """Who is logged in. ``ttl`` reads the ``session_ttl`` switch (idle seconds; 0 = never expire)."""

    def __init__(self, credentials: Credentials, ttl: Callable[[], float]) -> None:
        self.credentials = credentials
        self._ttl = ttl
        self.lock = threading.RLock()
        self.logins = {"ValidateUser": 0, "LoginByAppSecret": 0}
        self.sessions: dict[str, LoginSession] = {}
        self._by_aspnet: dict[str, str] = {}

    def reset_counts(self) -> None:
        for mode in self.logins:
            self.logins[mode] = 0

    def login(self, mode: str, args: dict[str, Any]) -> tuple[dict[str, Any], LoginSession | None]:
        creds = self.credentials
        with self.lock:
            self.logins[mode] += 1
        acct, user = str(args.get("acct") or ""), str(args.get("username") or "")
        if acct != creds.acct_id:
            return self._login_answer(-1, f"数据中心“{acct}”不存在或不可用"), None
        if mode == "ValidateUser":
            if user.casefold() != creds.username.casefold() or args.get("password") != creds.password:
                return self._login_answer(0, "用户名或密码错误！"), None
        else:
            if args.get("app_id") != creds.app_id or args.get("app_secret") != creds.app_secret:
                return self._login_answer(-1, "第三方系统登录授权验证失败：应用ID或应用密钥不正确"), None
            if user.casefold() != creds.username.casefold():
                return self._login_answer(-1, f"用户“{user}”不是该应用授权的集成用户"), None
        session = LoginSession(session_id=uuid.uuid4().hex,
                               aspnet_id="".join(secrets.choice(string.ascii_lowercase + "012345") for _ in range(24)),
                               username=creds.username, last_seen=time.monotonic())
        with self.lock:
            self.sessions[session.session_id] = session
            self._by_aspnet[session.aspnet_id] = session.session_id
        answer = self._login_answer(1, None)
        answer["KDSVCSessionId"] = session.session_id
        answer["Context"] = {
            "UserLocale": "zh-CN", "LogLocale": "zh-CN", "DBid": acct, "DatabaseType": 3,
            "SessionId": session.session_id, "UseLanguages": [{"LocaleId": 2052, "Alias": "CN", "LocaleName": "中文(简体)"}],
            "UserId": 100008, "UserName": creds.username, "CustomName": "crmsync 仿真数据中心",
            "DisplayVersion": "8.2.880.9", "DataCenterName": "crmsync 仿真数据中心",
            "CurrentOrganizationInfo": {"ID": 1, "AcctOrgType": "1", "Name": "深圳总部", "FunctionIds": [101, 102, 103]},
            "IsCH_ZH_AutoTrans": False, "ClientType": 32, "WeiboAuthInfo": None,
        }
        return answer, session

    @staticmethod
    def _login_answer(result_type: int, message: str | None) -> dict[str, Any]:
        return {"Message": message, "MessageCode": "CheckPasswordPolicy" if result_type == 1 else None,
                "LoginResultType": result_type, "Context": None, "KDSVCSessionId": None, "FormId": None,
                "RedirectFormParam": None, "FormInputObject": None, "ErrorStackTrace": None, "Lcid": 0,
                "AccessToken": None, "KdAccessResult": None, "IsSuccessByAPI": result_type == 1}

    def valid(self, cookies: dict[str, str]) -> bool:
        with self.lock:
            session_id = cookies.get("kdservice-sessionid")
            if session_id not in self.sessions:
                session_id = self._by_aspnet.get(cookies.get("ASP.NET_SessionId", ""))
            session = self.sessions.get(session_id or "")
            if session is None:
                return False
            ttl = float(self._ttl() or 0)
            now = time.monotonic()
            if ttl and now - session.last_seen > ttl:
                self._drop(session)
                return False
            session.last_seen = now
            return True

    def logout(self, cookies: dict[str, str]) -> None:
        with self.lock:
            session = self.sessions.get(cookies.get("kdservice-sessionid", ""))
            if session:
                self._drop(session)

    def _drop(self, session: LoginSession) -> None:
        self.sessions.pop(session.session_id, None)
        self._by_aspnet.pop(session.aspnet_id, None)

    def expire_all(self) -> int:
        with self.lock:
            count = len(self.sessions)
            self.sessions.clear()
            self._by_aspnet.clear()
            return count
