"""Files on the OpenAI-compatible surface with the official client: upload, retrieve, list,
content, delete; another tenant's key finds neither the file nor the batch (a 404)."""

from __future__ import annotations

import io
import json

import openai
import pytest

from tests.api.openai.conftest import rows

NOTE = "Takes aspirin 81 mg daily."
LINE = {"custom_id": "a", "method": "POST", "url": "/v1/jobs",
        "body": {"task": "medrec_extraction", "document": NOTE}}  # fmt: skip
CONTENT = json.dumps(LINE).encode() + b"\n"


def test_a_file_is_uploaded_read_listed_and_deleted(client):
    made = client.files.create(file=("requests.jsonl", io.BytesIO(CONTENT)), purpose="batch")
    assert made.id.startswith("file-") and made.object == "file"
    assert (made.bytes, made.filename, made.purpose) == (len(CONTENT), "requests.jsonl", "batch")

    assert client.files.retrieve(made.id).model_dump() == made.model_dump()
    assert client.files.content(made.id).content == CONTENT
    second = client.files.create(file=("more.jsonl", io.BytesIO(CONTENT)), purpose="batch")
    listed = client.files.list()
    assert [f.id for f in listed.data] == [second.id, made.id]  # newest first
    page = client.files.list(limit=1, after=second.id)  # type: ignore[call-arg]
    assert [f.id for f in page.data] == [made.id]

    deleted = client.files.delete(made.id)
    assert deleted.id == made.id and deleted.deleted is True
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(made.id)
    with pytest.raises(openai.NotFoundError):
        client.files.delete(made.id)
    assert rows("openai_files") == 1


def test_another_tenants_key_gets_404_on_the_file_and_the_batch(
    client, other_client, isolated_broker
):
    made = client.files.create(file=("requests.jsonl", io.BytesIO(CONTENT)), purpose="batch")
    batch = client.batches.create(
        input_file_id=made.id, endpoint="/v1/jobs", completion_window="24h"
    )
    assert batch.status == "in_progress" and batch.request_counts is not None
    assert batch.request_counts.total == 1

    for read in (
        lambda: other_client.files.retrieve(made.id),
        lambda: other_client.files.content(made.id),
        lambda: other_client.files.delete(made.id),
        lambda: other_client.batches.retrieve(batch.id),
        lambda: other_client.batches.cancel(batch.id),
        lambda: other_client.batches.create(
            input_file_id=made.id, endpoint="/v1/jobs", completion_window="24h"
        ),
    ):
        with pytest.raises(openai.NotFoundError) as raised:
            read()
        assert isinstance(raised.value.body, dict)
        assert raised.value.body["type"] == "invalid_request_error"
    assert other_client.files.list().data == []
    assert other_client.batches.list().data == []
    # The owner still has both, unchanged.
    assert client.files.content(made.id).content == CONTENT
    assert client.batches.retrieve(batch.id).status == "in_progress"
    assert rows("batches") == 1
