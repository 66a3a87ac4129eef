"""Request dependencies: the session (which commits, then sends buffered work) and the tenant."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.concurrency import run_in_threadpool
from sqlmodel import Session

from api.ratelimit import TokenBuckets, retry_after
from ponder.config import Settings, get_settings
from ponder.db import get_engine, session_scope
from ponder.errors import InvalidRequest, RateLimited, Unauthorized
from ponder.models import Tenant
from ponder.storable import NUL
from ponder.tenants import Principal, TenantCache, authenticate, touch_last_used


def get_session(request: Request) -> Iterator[Session]:
    """The request's transaction: committed when the route returns, then buffered work sent.
    What a dependency left in ``request.state.before_commit`` (the audit record of the access,
    api/scopes.py) joins it, so only an access that succeeded is recorded."""
    with session_scope() as session:
        yield session
        for step in getattr(request.state, "before_commit", ()):
            step(session)


# scope="function": commit before the response is sent, so a client that reads its job
# right after creating it always finds it.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def refuse_nul_in_url(request: Request) -> None:
    """An id or a filter holding a NUL character can match nothing PostgreSQL stores."""
    query = request.query_params.multi_items()
    if NUL in request.scope["path"] or any(NUL in k or NUL in v for k, v in query):
        raise InvalidRequest("the URL holds a NUL character (%00), which is refused")


_tenants = TenantCache()
_buckets = TokenBuckets()


def _authenticate_uncached(key: str) -> Principal:
    with Session(get_engine(), expire_on_commit=False) as session:
        principal = authenticate(session=session, key=key)
        session.expunge(principal.tenant)  # a detached snapshot: only its id and secret are read
        return principal


def _touch_last_used(key_id: str) -> None:
    with session_scope() as session:
        touch_last_used(session=session, key_id=key_id)


async def get_principal(
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal:
    """The calling key: authenticated (cached), not expired, within its tenant's rate."""
    if not authorization:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    scheme, _, key = authorization.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized("malformed Authorization header: use 'Authorization: Bearer <key>'")
    principal = _tenants.get(key)
    if principal is None:
        principal = await run_in_threadpool(_authenticate_uncached, key)
        _tenants.put(key, principal)
    if principal.expired():
        raise Unauthorized("invalid API key: the key has expired; create a new one")
    if _tenants.due_for_touch(principal.key_id):
        await run_in_threadpool(_touch_last_used, principal.key_id)
    tenant = principal.tenant
    limits = get_settings().limits
    wait = _buckets.take(tenant.id, rate=limits.tenant_rate_per_s, burst=limits.tenant_burst)
    if wait:
        raise RateLimited(
            f"too many requests for this tenant (limit {limits.tenant_rate_per_s:g}/s); "
            f"retry in {retry_after(wait)} s",
            retry_after_s=retry_after(wait),
        )
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_tenant(principal: PrincipalDep) -> Tenant:
    return principal.tenant


def forget_key(key_id: str) -> None:
    """A key revoked through this process stops working at once, not when its cache entry ages."""
    _tenants.evict(key_id)


TenantDep = Annotated[Tenant, Depends(get_tenant)]
