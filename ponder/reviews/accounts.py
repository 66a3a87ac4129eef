"""Reviewer accounts: one per person and tenant, signing in with email and password. Passwords
are hashed with argon2 (argon2-cffi's defaults); only the hash is stored."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, col, select

from ponder.errors import Conflict, InvalidRequest
from ponder.models import Reviewer
from ponder.scoping import readable_reviewers
from ponder.tenants import tenant_by_name
from ponder.validation import InvalidInput, check_email

MIN_PASSWORD_CHARS = 12
_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a password anyone has")
"""Verified against when the email is unknown, so a sign-in takes as long either way."""


def generate_password() -> str:
    return secrets.token_urlsafe(18)


def create_reviewer(*, session: Session, tenant_name: str, email: str, password: str) -> Reviewer:
    """A reviewer of an existing tenant; 404 for an unknown tenant, 409 for a taken email."""
    tenant = tenant_by_name(session=session, name=tenant_name)
    try:
        email = check_email(email).lower()
    except InvalidInput as exc:
        raise InvalidRequest(str(exc)) from None
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidRequest(f"the password needs at least {MIN_PASSWORD_CHARS} characters")
    taken = session.exec(readable_reviewers(tenant.id).where(col(Reviewer.email) == email)).first()
    if taken is not None:
        raise Conflict(f"tenant {tenant_name!r} already has a reviewer {email}")
    reviewer = Reviewer(tenant_id=tenant.id, email=email, password_hash=_hasher.hash(password))
    session.add(reviewer)
    session.flush()
    return reviewer


def authenticate_reviewer(
    *, session: Session, tenant_id: str | None, email: str, password: str
) -> Reviewer | None:
    """The enabled reviewer with this email (in this tenant, when given) and password, or None.
    With no tenant the email must name exactly one reviewer."""
    query = select(Reviewer) if tenant_id is None else readable_reviewers(tenant_id)
    query = query.where(col(Reviewer.email) == email.strip().lower())
    found = list(session.exec(query).all())
    reviewer = found[0] if len(found) == 1 else None
    try:
        _hasher.verify(reviewer.password_hash if reviewer else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if reviewer is None or reviewer.disabled_at is not None:
        return None
    return reviewer
