"""Prometheus metrics: ``GET /metrics`` (no document content, ids or tenants in labels).

Not public by default: the scraper sends ``Authorization: Bearer <metrics.scrape_token>``, or
an operator an API key with the ``admin`` scope. ``metrics.public`` opens it (refused in
production). See docs/security.md for a Prometheus scrape config."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Response
from fastapi.routing import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import SettingsDep, get_principal
from api.scopes import require_scope
from ponder.models import Scope
from ponder.ops.metrics import registry

router = APIRouter(tags=["operations"])


async def authorize_scrape(
    settings: SettingsDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> None:
    if settings.metrics.public:
        return
    token = settings.metrics.scrape_token
    scheme, _, credential = (authorization or "").partition(" ")
    if (
        token
        and scheme.lower() == "bearer"
        and hmac.compare_digest(credential.strip().encode(), token.encode())
    ):
        return
    principal = await get_principal(authorization)
    require_scope(principal, Scope.admin)


@router.get("/metrics", response_class=Response, dependencies=[Depends(authorize_scrape)])
def metrics(settings: SettingsDep) -> Response:
    return Response(generate_latest(registry(settings)), media_type=CONTENT_TYPE_LATEST)
