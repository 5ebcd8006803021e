"""Who may call what: bearer tokens for the API, a signed session cookie for the web pages.

The API reads only ``Authorization: Bearer fw_…`` (never a cookie), so a browser cannot be
tricked into calling it with an agent's rights. The web pages keep the token's key in a signed,
HttpOnly, SameSite=Strict cookie together with a random CSRF secret; every form that changes
something carries that secret and the server compares it (double submit, signed).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from itsdangerous import BadSignature, URLSafeTimedSerializer

from forewarn.auth import Principal, Role
from forewarn.console.context import ConsoleContext
from forewarn.console.guard import PRINCIPAL_STATE

__all__ = [
    "LOGIN_COOKIE",
    "SESSION_COOKIE",
    "Admin",
    "Agent",
    "Context",
    "Viewer",
    "WebSession",
    "api_principal",
    "check_csrf",
    "check_login_csrf",
    "context",
    "login_csrf",
    "requires",
    "sign_session",
    "web_session",
]

SESSION_COOKIE = "forewarn_session"
#: the login form's CSRF cookie (SameSite=Strict: another site's form never sends it)
LOGIN_COOKIE = "forewarn_login"
#: how long a login form stays valid
LOGIN_FORM_MAX_AGE_S = 3600
_bearer = HTTPBearer(auto_error=False, description="an API token: fw_<key>_<secret>")


def context(request: Request) -> ConsoleContext:
    """The app's :class:`ConsoleContext`."""
    ctx: ConsoleContext = request.app.state.console
    return ctx


def api_principal(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
) -> Principal:
    """The caller of an API endpoint, from its bearer token; 401 without a valid one."""
    checked = getattr(request.state, PRINCIPAL_STATE, None)
    if isinstance(checked, Principal):  # the guard verified it before reading the body
        return checked
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token",
                            headers={"WWW-Authenticate": "Bearer"})
    principal = context(request).tokens.verify(credentials.credentials)
    if principal is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid or revoked token",
                            headers={"WWW-Authenticate": "Bearer"})
    return principal


def requires(role: Role) -> Callable[..., Principal]:
    """A dependency that lets through callers with ``role`` or above (403 for the others)."""

    def check(principal: Principal = Depends(api_principal)) -> Principal:  # noqa: B008
        if not principal.allows(role):
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"this needs the {role} role; the token has {principal.role}")
        return principal

    return check


#: a route's parameters: the caller by the least role the route needs, and the console's context
Viewer = Annotated[Principal, Depends(requires("viewer"))]
Agent = Annotated[Principal, Depends(requires("agent"))]
Admin = Annotated[Principal, Depends(requires("admin"))]
Context = Annotated[ConsoleContext, Depends(context)]


class WebSession:
    """A logged-in browser: the token's principal and the session's CSRF secret."""

    def __init__(self, principal: Principal, csrf: str) -> None:
        self.principal = principal
        self.csrf = csrf


def _serializer(ctx: ConsoleContext) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(ctx.session_secret, salt="forewarn-console-session")


def sign_session(ctx: ConsoleContext, principal: Principal) -> str:
    """The cookie value of a fresh session for ``principal``."""
    return _serializer(ctx).dumps({"k": principal.key, "c": secrets.token_urlsafe(24)})


def web_session(request: Request) -> WebSession | None:
    """The browser's session, None when there is none (or it expired, or was revoked)."""
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    ctx = context(request)
    try:
        data: Any = _serializer(ctx).loads(raw, max_age=ctx.session_max_age_s)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("k"), str):
        return None
    principal = ctx.tokens.principal(data["k"])
    if principal is None:
        return None
    return WebSession(principal, str(data.get("c", "")))


def check_csrf(session: WebSession, submitted: str) -> None:
    """403 unless the form carried this session's CSRF secret."""
    if not session.csrf or not hmac.compare_digest(session.csrf, submitted):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the form is stale: reload the page")


def _login_serializer(ctx: ConsoleContext) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(ctx.session_secret, salt="forewarn-console-login")


def login_csrf(ctx: ConsoleContext) -> tuple[str, str]:
    """A fresh login form's (cookie value, hidden field value).

    Without it a page elsewhere could post the attacker's token to ``/login`` and log the
    victim into the attacker's tenant, where the victim's notes would land.
    """
    nonce = secrets.token_urlsafe(24)
    return _login_serializer(ctx).dumps(nonce), nonce


def check_login_csrf(ctx: ConsoleContext, cookie: str | None, submitted: str) -> bool:
    """True when the login form was this browser's own (the cookie signs the field's value)."""
    if not cookie or not submitted:
        return False
    try:
        nonce: Any = _login_serializer(ctx).loads(cookie, max_age=LOGIN_FORM_MAX_AGE_S)
    except BadSignature:
        return False
    return isinstance(nonce, str) and hmac.compare_digest(nonce, submitted)
