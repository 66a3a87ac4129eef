"""Resources owned by a tenant, one of each kind that a route can name by id."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ponder import config
from tests.conftest import TenantKey

HOOK = "http://127.0.0.1:9/hook"  # on the test allowlist; nothing listens, nothing is sent
JOB = {"task": "medrec_extraction", "document": "Aspirin 81 mg daily.", "strategy": "single"}
BATCH_LINE = {**JOB, "custom_id": "item-1"}


def create_resources(api: Any, tenant: TenantKey) -> dict[str, str]:
    """One job (queued), batch, webhook endpoint, delivery and API key of ``tenant``, by the
    name of the path parameter that names each. The delivery comes from a second job, cancelled."""

    def created(response: Any) -> dict[str, Any]:
        assert response.status_code == 201, response.text
        return response.json()

    headers = tenant.headers
    job = created(api.post("/v1/jobs", json=JOB, headers=headers))
    notified = created(api.post("/v1/jobs", json={**JOB, "webhook_url": HOOK}, headers=headers))
    assert api.post(f"/v1/jobs/{notified['id']}/cancel", headers=headers).status_code == 200
    (delivery,) = api.get(f"/v1/jobs/{notified['id']}/deliveries", headers=headers).json()
    batch = created(
        api.post(
            "/v1/batches",
            content=json.dumps(BATCH_LINE).encode() + b"\n",
            headers={**headers, "content-type": "application/jsonl"},
        )
    )
    endpoint = created(api.post("/v1/webhooks", json={"url": HOOK}, headers=headers))
    key = created(api.post("/v1/keys", json={"scopes": ["read"]}, headers=headers))
    return {
        "job_id": job["id"],
        "batch_id": batch["id"],
        "endpoint_id": endpoint["id"],
        "delivery_id": delivery["id"],
        "key_id": key["id"],
    }


@pytest.fixture
def limits() -> Iterator[Callable[..., None]]:
    """Set ``PONDER_LIMITS__*`` for one test: ``limits(tenant_rate_per_s=0)``."""
    with pytest.MonkeyPatch.context() as patch:

        def apply(**values: float) -> None:
            for name, value in values.items():
                patch.setenv(f"PONDER_LIMITS__{name.upper()}", str(value))
            config.get_settings.cache_clear()

        yield apply
    config.get_settings.cache_clear()
