"""Registered webhook endpoints: each has its own ``whsec_`` secret, rotated with a grace period
in which the old and the new secret both sign, and is disabled when its receiver answers 410."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, col

from ponder.config import Settings
from ponder.errors import Conflict, InvalidRequest, NotFound
from ponder.models import Tenant, WebhookEndpoint, utcnow
from ponder.notify.webhooks import UnsafeWebhookURL, check_webhook_url, generate_secret
from ponder.scoping import readable_endpoints

MAX_ROTATION_GRACE_S = 7 * 24 * 3600


def register(
    *,
    session: Session,
    tenant: Tenant,
    url: str,
    description: str | None,
    include_content: bool,
    settings: Settings,
) -> WebhookEndpoint:
    """The URL must pass the SSRF check now; it is checked again at every delivery."""
    try:
        check_webhook_url(url, allow_hosts=settings.notify.webhook_allow_hosts)
    except UnsafeWebhookURL as exc:
        raise InvalidRequest(f"url refused: {exc}") from exc
    endpoint = WebhookEndpoint(
        tenant_id=tenant.id,
        url=url,
        description=description,
        secret=generate_secret(),
        include_content=include_content,
    )
    session.add(endpoint)
    session.flush()
    return endpoint


def list_endpoints(*, session: Session, tenant: Tenant) -> list[WebhookEndpoint]:
    query = readable_endpoints(tenant.id).order_by(col(WebhookEndpoint.created_at))
    return list(session.exec(query).all())


def get_endpoint(*, session: Session, tenant: Tenant, endpoint_id: str) -> WebhookEndpoint:
    return _owned(session, tenant.id, endpoint_id)


def _owned(session: Session, tenant_id: str, endpoint_id: str) -> WebhookEndpoint:
    query = readable_endpoints(tenant_id).where(col(WebhookEndpoint.id) == endpoint_id)
    endpoint = session.exec(query).first()
    if endpoint is None:
        raise NotFound(f"no webhook endpoint {endpoint_id}")
    return endpoint


def usable_endpoint_id(session: Session, tenant_id: str, endpoint_id: str | None) -> str | None:
    """Check an endpoint named in a submission: it exists for this tenant and is enabled."""
    if endpoint_id is None:
        return None
    try:
        endpoint = _owned(session, tenant_id, endpoint_id)
    except NotFound as exc:
        raise InvalidRequest(
            f"webhook_endpoint_id {endpoint_id} is not one of your endpoints (GET /v1/webhooks)"
        ) from exc
    if endpoint.disabled_at is not None:
        raise InvalidRequest(
            f"webhook endpoint {endpoint_id} is disabled ({endpoint.disabled_reason}); "
            f"enable it with POST /v1/webhooks/{endpoint_id}/enable"
        )
    return endpoint.id


def rotate(*, session: Session, tenant: Tenant, endpoint_id: str, grace_s: int) -> WebhookEndpoint:
    """A new secret signs from now on; the old one signs too (a second signature) for
    ``grace_s`` seconds, so receivers can switch without losing a message."""
    if not 0 <= grace_s <= MAX_ROTATION_GRACE_S:
        raise InvalidRequest(f"grace_period_s must be between 0 and {MAX_ROTATION_GRACE_S}")
    endpoint = _owned(session, tenant.id, endpoint_id)
    session.refresh(endpoint, with_for_update=True)
    endpoint.previous_secret = endpoint.secret if grace_s else None
    endpoint.previous_secret_expires_at = utcnow() + timedelta(seconds=grace_s) if grace_s else None
    endpoint.secret = generate_secret()
    session.add(endpoint)
    return endpoint


def enable(*, session: Session, tenant: Tenant, endpoint_id: str) -> WebhookEndpoint:
    endpoint = _owned(session, tenant.id, endpoint_id)
    endpoint.disabled_at = None
    endpoint.disabled_reason = None
    session.add(endpoint)
    return endpoint


def delete(*, session: Session, tenant: Tenant, endpoint_id: str) -> None:
    """Deliveries already written for it stop; its history stays readable."""
    endpoint = _owned(session, tenant.id, endpoint_id)
    endpoint.deleted_at = utcnow()
    session.add(endpoint)


def disable(endpoint: WebhookEndpoint, reason: str) -> None:
    if endpoint.disabled_at is None:
        endpoint.disabled_at = utcnow()
        endpoint.disabled_reason = reason


def unavailable_reason(endpoint: WebhookEndpoint) -> str | None:
    if endpoint.deleted_at is not None:
        return "endpoint deleted"
    if endpoint.disabled_at is not None:
        return f"endpoint disabled: {endpoint.disabled_reason}"
    return None


def signing_secrets(endpoint: WebhookEndpoint, now: datetime | None = None) -> list[str]:
    """The current secret, then the previous one while its rotation grace period lasts."""
    secrets = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > (now or utcnow()):
        secrets.append(endpoint.previous_secret)
    return secrets


def ensure_enabled(endpoint: WebhookEndpoint) -> None:
    if reason := unavailable_reason(endpoint):
        raise Conflict(f"webhook endpoint {endpoint.id}: {reason}; enable it first")
