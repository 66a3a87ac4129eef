"""Webhook endpoints: register (the secret is shown once), list, rotate the secret, re-enable
after a 410, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from api.deps import SessionDep, SettingsDep, TenantDep
from api.schemas import ErrorPublic, WebhookEndpointCreate, WebhookEndpointPublic
from ponder.models import WebhookEndpoint
from ponder.notify import endpoints

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorPublic} for code in (401, 404, 409, 422)
}


def to_public(endpoint: WebhookEndpoint, *, with_secret: bool = False) -> WebhookEndpointPublic:
    return WebhookEndpointPublic(
        id=endpoint.id,
        url=endpoint.url,
        description=endpoint.description,
        include_content=endpoint.include_content,
        created_at=endpoint.created_at,
        disabled_at=endpoint.disabled_at,
        disabled_reason=endpoint.disabled_reason,
        previous_secret_expires_at=endpoint.previous_secret_expires_at,
        secret=endpoint.secret if with_secret else None,
    )


@router.post("", status_code=201, response_model=WebhookEndpointPublic, responses=_ERRORS)
def create_endpoint(
    body: WebhookEndpointCreate, session: SessionDep, tenant: TenantDep, settings: SettingsDep
) -> WebhookEndpointPublic:
    """Register a receiver. The answer holds its signing secret: the only time it is shown."""
    endpoint = endpoints.register(
        session=session,
        tenant=tenant,
        url=body.url,
        description=body.description,
        include_content=body.include_content,
        settings=settings,
    )
    return to_public(endpoint, with_secret=True)


@router.get("", response_model=list[WebhookEndpointPublic], responses=_ERRORS)
def list_endpoints(session: SessionDep, tenant: TenantDep) -> list[WebhookEndpointPublic]:
    return [to_public(e) for e in endpoints.list_endpoints(session=session, tenant=tenant)]


@router.get("/{endpoint_id}", response_model=WebhookEndpointPublic, responses=_ERRORS)
def get_endpoint(endpoint_id: str, session: SessionDep, tenant: TenantDep) -> WebhookEndpointPublic:
    return to_public(
        endpoints.get_endpoint(session=session, tenant=tenant, endpoint_id=endpoint_id)
    )


@router.post("/{endpoint_id}/rotate", response_model=WebhookEndpointPublic, responses=_ERRORS)
def rotate_secret(
    endpoint_id: str,
    session: SessionDep,
    tenant: TenantDep,
    grace_period_s: Annotated[int, Query(ge=0, le=endpoints.MAX_ROTATION_GRACE_S)] = 86_400,
) -> WebhookEndpointPublic:
    """A new secret (shown once). Until ``previous_secret_expires_at`` every message carries
    two signatures, one per secret, so the receiver can switch at its own pace."""
    endpoint = endpoints.rotate(
        session=session, tenant=tenant, endpoint_id=endpoint_id, grace_s=grace_period_s
    )
    return to_public(endpoint, with_secret=True)


@router.post("/{endpoint_id}/enable", response_model=WebhookEndpointPublic, responses=_ERRORS)
def enable_endpoint(
    endpoint_id: str, session: SessionDep, tenant: TenantDep
) -> WebhookEndpointPublic:
    """Re-enable an endpoint disabled by a 410; deliveries that were skipped stay skipped
    (replay them with POST /v1/deliveries/{id}/redeliver)."""
    return to_public(endpoints.enable(session=session, tenant=tenant, endpoint_id=endpoint_id))


@router.delete("/{endpoint_id}", status_code=204, responses=_ERRORS)
def delete_endpoint(endpoint_id: str, session: SessionDep, tenant: TenantDep) -> Response:
    endpoints.delete(session=session, tenant=tenant, endpoint_id=endpoint_id)
    return Response(status_code=204)
