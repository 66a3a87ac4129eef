"""Tenants and their API keys. Keys are random, shown once, and stored as SHA-256 hashes; each
has scopes (``submit``, ``read``, ``admin``), an optional expiry, and can be revoked."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from ponder.errors import Conflict, InvalidRequest, NotFound, Unauthorized
from ponder.models import ALL_SCOPES, ApiKey, Tenant, utcnow
from ponder.notify.webhooks import generate_secret
from ponder.scoping import readable_keys

KEY_PREFIX = "pk_"
LAST_USED_EVERY_S = 60.0
"""``last_used_at`` is written at most this often per key (and process)."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    tenant: Tenant
    key: str
    """The only time the key exists in clear."""
    row: ApiKey


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key (by id), its tenant (a detached snapshot) and what it may do."""

    key_id: str
    tenant: Tenant
    scopes: frozenset[str]
    expires_at: datetime | None

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or utcnow())


def create_tenant(*, session: Session, name: str) -> Tenant:
    if session.exec(select(Tenant).where(Tenant.name == name)).first() is not None:
        raise Conflict(f"tenant {name!r} already exists")
    tenant = Tenant(name=name, webhook_secret=generate_secret())
    session.add(tenant)
    session.flush()
    return tenant


def checked_scopes(scopes: Iterable[str]) -> list[str]:
    """The scopes in a fixed order; unknown or none at all is refused, naming the valid ones."""
    wanted = set(scopes)
    unknown = sorted(wanted - set(ALL_SCOPES))
    if unknown:
        raise InvalidRequest(
            f"unknown scope(s) {', '.join(unknown)}; valid scopes: {', '.join(ALL_SCOPES)}"
        )
    if not wanted:
        raise InvalidRequest(f"a key needs at least one scope: {', '.join(ALL_SCOPES)}")
    return [s for s in ALL_SCOPES if s in wanted]


def create_key(
    *,
    session: Session,
    tenant: Tenant,
    scopes: Iterable[str] = ALL_SCOPES,
    expires_in_days: float | None = None,
) -> IssuedKey:
    if expires_in_days is not None and expires_in_days <= 0:
        raise InvalidRequest("expires_in_days must be positive (or left out for no expiry)")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        tenant_id=tenant.id,
        key_hash=hash_key(key),
        prefix=key[:10],
        scopes=checked_scopes(scopes),
        expires_at=utcnow() + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    session.add(row)
    session.flush()
    return IssuedKey(tenant=tenant, key=key, row=row)


def issue_key(
    *,
    session: Session,
    tenant_name: str,
    scopes: Iterable[str] = ALL_SCOPES,
    expires_in_days: float | None = None,
) -> IssuedKey:
    """Create a key for the tenant, creating the tenant on first use."""
    tenant = session.exec(select(Tenant).where(Tenant.name == tenant_name)).first()
    if tenant is None:
        tenant = create_tenant(session=session, name=tenant_name)
    return create_key(
        session=session, tenant=tenant, scopes=scopes, expires_in_days=expires_in_days
    )


def tenant_by_name(*, session: Session, name: str) -> Tenant:
    tenant = session.exec(select(Tenant).where(Tenant.name == name)).first()
    if tenant is None:
        raise NotFound(f"no tenant {name!r}")
    return tenant


def list_keys(*, session: Session, tenant_id: str) -> list[ApiKey]:
    return list(
        session.exec(
            readable_keys(tenant_id).order_by(col(ApiKey.created_at), col(ApiKey.id))
        ).all()
    )


def revoke_key(*, session: Session, key_id: str, tenant_id: str | None = None) -> ApiKey:
    """Revoke the key (``tenant_id``: only if it is that tenant's). Revoking twice keeps the
    first revocation time."""
    query = select(ApiKey) if tenant_id is None else readable_keys(tenant_id)
    row = session.exec(query.where(col(ApiKey.id) == key_id).with_for_update()).first()
    if row is None:
        raise NotFound(f"no key {key_id}")  # another tenant's key is indistinguishable
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.add(row)
    return row


class TenantCache:
    """Recently authenticated keys, so the submit path skips a database round trip. A key
    revoked through this process stops at once (``evict``); through another, within ``ttl_s``.
    Expiry is checked on every request against the cached ``expires_at``."""

    def __init__(self, ttl_s: float = 30.0, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Principal | None:
        with self._lock:
            entry = self._entries.get(hash_key(key))
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key: str, principal: Principal) -> None:
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[hash_key(key)] = (time.monotonic() + self.ttl_s, principal)

    def evict(self, key_id: str) -> None:
        with self._lock:
            for digest in [d for d, (_, p) in self._entries.items() if p.key_id == key_id]:
                del self._entries[digest]

    def due_for_touch(self, key_id: str) -> bool:
        """True at most once per ``LAST_USED_EVERY_S`` for a key: time to write last_used_at."""
        now = time.monotonic()
        with self._lock:
            if now - self._touched.get(key_id, float("-inf")) < LAST_USED_EVERY_S:
                return False
            if len(self._touched) >= self.max_entries:
                self._touched.clear()
            self._touched[key_id] = now
            return True

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._touched.clear()


def authenticate(*, session: Session, key: str) -> Principal:
    row = session.exec(
        select(ApiKey, Tenant)
        .join(Tenant, col(ApiKey.tenant_id) == col(Tenant.id))
        .where(ApiKey.key_hash == hash_key(key))
    ).first()
    if row is None or row[0].revoked_at is not None:
        raise Unauthorized("invalid API key: send 'Authorization: Bearer <key>' with a valid key")
    api_key, tenant = row
    principal = Principal(
        key_id=api_key.id,
        tenant=tenant,
        scopes=frozenset(api_key.scopes),
        expires_at=api_key.expires_at,
    )
    if principal.expired():
        raise Unauthorized("invalid API key: the key has expired; create a new one")
    return principal


def touch_last_used(*, session: Session, key_id: str) -> None:
    """Record that the key was used; skipped when another process did within the minute."""
    session.execute(
        sa.update(ApiKey)
        .where(
            col(ApiKey.id) == key_id,
            sa.or_(
                col(ApiKey.last_used_at).is_(None),
                col(ApiKey.last_used_at) < sa.func.now() - timedelta(seconds=LAST_USED_EVERY_S),
            ),
        )
        .values(last_used_at=sa.func.now())
    )
