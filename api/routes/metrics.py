"""Prometheus metrics: ``GET /metrics`` (no document content, ids or tenants in labels)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import SettingsDep
from ponder.metrics import registry

router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=Response)
def metrics(settings: SettingsDep) -> Response:
    return Response(generate_latest(registry(settings)), media_type=CONTENT_TYPE_LATEST)
