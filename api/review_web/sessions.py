"""Reviewer sessions in a signed cookie, and the CSRF token derived from them.

The cookie holds a random session id, the reviewer's id and tenant, and a short hash of the
reviewer's password hash (so changing the password ends every session); it is signed with
``review.session_secret`` and expires ``review.session_ttl_s`` after sign-in. Nothing about a
session is stored server-side. A visitor who is not signed in still gets an anonymous session
(an id only), so the sign-in form carries a CSRF token too."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from ponder.config import Settings

COOKIE = "ponder_review"
FORMAT = 1
"""Version of the cookie's payload; a cookie of another format is treated as signed out."""
DEV_SECRET = "ponder-review-development-secret-not-for-production"
"""Used when ``review.session_secret`` is empty; config.py refuses that in production."""


@dataclass(frozen=True)
class ReviewSession:
    sid: str
    reviewer_id: str | None = None
    tenant_id: str | None = None
    password_tag: str | None = None

    @property
    def signed_in(self) -> bool:
        return self.reviewer_id is not None


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    secret = settings.review.session_secret or DEV_SECRET
    return URLSafeTimedSerializer(secret, salt="ponder.review.session")


def password_tag(password_hash: str) -> str:
    """Ties a session to the password it was opened with."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def read_session(request: Request, settings: Settings) -> ReviewSession | None:
    """The request's session, or None when there is no cookie, its signature is wrong, it has
    expired or it is of another format."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        data = _serializer(settings).loads(raw, max_age=settings.review.session_ttl_s)
    except (SignatureExpired, BadSignature):
        return None
    if not isinstance(data, dict) or data.get("f") != FORMAT or not data.get("sid"):
        return None
    return ReviewSession(
        sid=str(data["sid"]),
        reviewer_id=data.get("rid"),
        tenant_id=data.get("tid"),
        password_tag=data.get("pw"),
    )


def new_session(
    *, reviewer_id: str | None = None, tenant_id: str | None = None, tag: str | None = None
) -> ReviewSession:
    """A fresh session id: signing in always gets a new one, so a session id planted before
    sign-in is worth nothing after it."""
    return ReviewSession(secrets.token_urlsafe(18), reviewer_id, tenant_id, tag)


def write_session(response: Response, session: ReviewSession, settings: Settings) -> None:
    payload = {"f": FORMAT, "sid": session.sid}
    if session.signed_in:
        payload.update(rid=session.reviewer_id, tid=session.tenant_id, pw=session.password_tag)
    response.set_cookie(
        COOKIE,
        _serializer(settings).dumps(payload),
        max_age=settings.review.session_ttl_s,
        path="/review",
        httponly=True,
        samesite="lax",
        secure=settings.environment == "production",
    )


def clear_session(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/review")


def csrf_token(session: ReviewSession, settings: Settings) -> str:
    """HMAC of the session id: a form from another site cannot know it, and it changes with
    every sign-in."""
    secret = (settings.review.session_secret or DEV_SECRET).encode()
    return hmac.new(secret, b"csrf:" + session.sid.encode(), hashlib.sha256).hexdigest()


def csrf_valid(session: ReviewSession, settings: Settings, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(csrf_token(session, settings), str(token))
