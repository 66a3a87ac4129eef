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
OPENAI_REQUEST = {"custom_id": "item-1", "method": "POST", "url": "/v1/jobs", "body": JOB}
"""A request line of the OpenAI-compatible surface's batch input files."""


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
    # The batch comes from the OpenAI-compatible surface: it is a native batch as well (the
    # same id), so that every route naming a batch, of either surface, has one to name.
    upload = api.post(
        "/openai/v1/files",
        files={"file": ("requests.jsonl", json.dumps(OPENAI_REQUEST).encode() + b"\n")},
        data={"purpose": "batch"},
        headers=headers,
    )
    assert upload.status_code == 200, upload.text
    file_id = upload.json()["id"]
    from_file = {"input_file_id": file_id, "endpoint": "/v1/jobs", "completion_window": "24h"}
    batch = api.post("/openai/v1/batches", json=from_file, headers=headers)
    assert batch.status_code == 200, batch.text
    endpoint = created(api.post("/v1/webhooks", json={"url": HOOK}, headers=headers))
    key = created(api.post("/v1/keys", json={"scopes": ["read"]}, headers=headers))
    return {
        "job_id": job["id"],
        "batch_id": batch.json()["id"],
        "file_id": file_id,
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
