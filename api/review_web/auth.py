"""Who is asking: the signed-in reviewer of a workspace request, and the CSRF check of every
POST. Both run before a route touches anything."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import col

from api.deps import SessionDep, SettingsDep
from api.review_web.pages import CsrfRefused, SignInRequired
from api.review_web.sessions import (
    ReviewSession,
    csrf_token,
    csrf_valid,
    password_tag,
    read_session,
)
from ponder.models import Reviewer
from ponder.scoping import readable_reviewers


@dataclass(frozen=True)
class SignedIn:
    reviewer_id: str
    tenant_id: str
    email: str
    session: ReviewSession
    csrf: str


def _next_path(request: Request) -> str:
    # After signing in, come back to the page asked for (a GET); a POST's page otherwise.
    if request.method == "GET":
        query = request.url.query
        return request.url.path + (f"?{query}" if query else "")
    return request.url.path.removesuffix("/decision")


def signed_in(request: Request, session: SessionDep, settings: SettingsDep) -> SignedIn:
    """The reviewer whose valid session sent this request; SignInRequired (a 303 to sign-in)
    when the cookie is missing, tampered with or expired, or its reviewer is disabled, gone,
    or has changed password since."""
    current = read_session(request, settings)
    if current is None or not current.signed_in or current.tenant_id is None:
        raise SignInRequired(_next_path(request))
    reviewer = session.exec(
        readable_reviewers(current.tenant_id).where(col(Reviewer.id) == current.reviewer_id)
    ).first()
    if (
        reviewer is None
        or reviewer.disabled_at is not None
        or password_tag(reviewer.password_hash) != current.password_tag
    ):
        raise SignInRequired(_next_path(request))
    return SignedIn(
        reviewer.id, reviewer.tenant_id, reviewer.email, current, csrf_token(current, settings)
    )


SignedInDep = Annotated[SignedIn, Depends(signed_in)]


async def check_csrf(request: Request, who: SignedInDep, settings: SettingsDep) -> SignedIn:
    """A POST from a signed-in reviewer whose form carries this session's CSRF token. The
    session is checked first (a signed-out POST redirects), then the token (403)."""
    form = await request.form()
    token = form.get("csrf_token")
    if not csrf_valid(who.session, settings, token if isinstance(token, str) else None):
        raise CsrfRefused(
            "this form's security token is missing or out of date: reload the page and "
            "submit it again"
        )
    return who


CsrfCheckedDep = Annotated[SignedIn, Depends(check_csrf)]
