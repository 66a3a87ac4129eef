"""Tenants and their API keys. Keys are random, shown once, and stored as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass

from sqlmodel import Session, col, select

from ponder.errors import Conflict, Unauthorized
from ponder.models import ApiKey, Tenant
from ponder.notify.webhooks import generate_secret

KEY_PREFIX = "pk_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    tenant: Tenant
    key: str
    """The only time the key exists in clear."""


def create_tenant(*, session: Session, name: str) -> Tenant:
    if session.exec(select(Tenant).where(Tenant.name == name)).first() is not None:
        raise Conflict(f"tenant {name!r} already exists")
    tenant = Tenant(name=name, webhook_secret=generate_secret())
    session.add(tenant)
    session.flush()
    return tenant


def issue_key(*, session: Session, tenant_name: str) -> IssuedKey:
    """Create a key for the tenant, creating the tenant on first use."""
    tenant = session.exec(select(Tenant).where(Tenant.name == tenant_name)).first()
    if tenant is None:
        tenant = create_tenant(session=session, name=tenant_name)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiKey(tenant_id=tenant.id, key_hash=hash_key(key), prefix=key[:10]))
    session.flush()
    return IssuedKey(tenant=tenant, key=key)


class TenantCache:
    """Recently authenticated keys, so the submit path skips a database round trip. A revoked
    key stops working within ``ttl_s``."""

    def __init__(self, ttl_s: float = 30.0, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Tenant]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Tenant | None:
        with self._lock:
            entry = self._entries.get(hash_key(key))
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key: str, tenant: Tenant) -> None:
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[hash_key(key)] = (time.monotonic() + self.ttl_s, tenant)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def authenticate(*, session: Session, key: str) -> Tenant:
    row = session.exec(
        select(Tenant)
        .join(ApiKey, col(ApiKey.tenant_id) == col(Tenant.id))
        .where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))  # type: ignore[union-attr]
    ).first()
    if row is None:
        raise Unauthorized("invalid API key: send 'Authorization: Bearer <key>' with a valid key")
    return row
