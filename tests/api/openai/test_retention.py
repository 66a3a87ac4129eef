"""An uploaded request file holds documents: the retention purge removes its content once
the tenant's retention period has passed (unless a batch made from it still runs or is under a
legal hold); reading it then is a 410 saying so, and a batch cannot be made from it."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import openai
import pytest
import sqlalchemy as sa

from ponder.config import get_settings
from ponder.db import get_engine
from ponder.models import utcnow
from ponder.ops.retention import purge_all_expired

NOTE = "Takes aspirin 81 mg daily."
LINE = {"custom_id": "a", "method": "POST", "url": "/v1/jobs",
        "body": {"task": "medrec_extraction", "document": NOTE}}  # fmt: skip
CONTENT = json.dumps(LINE).encode() + b"\n"


def stored(file_id: str) -> bytes | None:
    with get_engine().connect() as conn:
        return conn.execute(
            sa.text("select content from openai_files where id = :f"), {"f": file_id}
        ).scalar_one()


def purge_later(days: float) -> None:
    purge_all_expired(settings=get_settings(), now=utcnow() + timedelta(days=days))


def test_an_upload_past_retention_loses_its_content_and_says_so(client, isolated_broker):
    kept = client.files.create(file=("kept.jsonl", io.BytesIO(CONTENT)), purpose="batch")
    old = client.files.create(file=("old.jsonl", io.BytesIO(CONTENT)), purpose="batch")
    with get_engine().begin() as conn:
        conn.execute(
            sa.text("update openai_files set created_at = created_at - make_interval(days => :d) "
                    "where id = :f"),
            {"d": get_settings().retention.default_days + 1, "f": old.id},
        )  # fmt: skip
    purge_later(0)

    assert stored(old.id) is None and stored(kept.id) == CONTENT
    with pytest.raises(openai.APIStatusError) as raised:
        client.files.content(old.id)
    assert raised.value.status_code == 410
    assert "retention" in raised.value.body["message"]
    with pytest.raises(openai.BadRequestError) as refused:
        client.batches.create(input_file_id=old.id, endpoint="/v1/jobs", completion_window="24h")
    assert "retention" in refused.value.body["message"]
    assert client.files.retrieve(old.id).id == old.id  # the file's record stays


def test_an_upload_whose_batch_runs_keeps_its_content(client, isolated_broker):
    made = client.files.create(file=("running.jsonl", io.BytesIO(CONTENT)), purpose="batch")
    client.batches.create(input_file_id=made.id, endpoint="/v1/jobs", completion_window="24h")
    purge_later(get_settings().retention.default_days + 1)  # the batch has not ended
    assert stored(made.id) == CONTENT
