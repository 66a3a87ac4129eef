"""Input the database cannot store, or that would mislead a notification, is a clear 422 before
anything touches the database: non-finite numbers, lone surrogates (keys included), nesting
past ``limits.max_json_depth``, a NUL in a cursor, several email addresses, a document of only
invisible characters, batch options in the query string. Never a 500, never a row written."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from ponder.db import get_engine
from tests.conftest import TenantKey, queued_messages

DOC = "Aspirin 81 mg daily."
JOB = {"task": "medrec_extraction", "document": DOC, "strategy": "single"}
JSON = {"content-type": "application/json"}
JSONL = {"content-type": "application/jsonl"}
ECHO = "ECHO-7f3a<script>"


@pytest.fixture
def app_client(database: None) -> Iterator[Any]:
    """A client that answers a server error with a 500 instead of raising it in the test."""
    from fastapi.testclient import TestClient

    from api.main import app

    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def rows_written() -> int:
    with get_engine().connect() as conn:
        return sum(
            int(conn.execute(sa.text(f"select count(*) from {table}")).scalar_one())
            for table in ("jobs", "batches")
        )


def assert_refused(response: Any, phrase: str, broker: Any, status: int = 422) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert phrase.lower() in body["error"].lower(), body
    assert rows_written() == 0
    assert queued_messages(broker) == 0
    return body


def nested(depth: int) -> str:
    """A JSON text of ``depth`` nested objects."""
    return '{"a": ' * depth + "1" + "}" * depth


# Raw JSON texts: json.dumps would refuse (or escape) most of these.
NON_FINITE = {"nan": "NaN", "infinity": "Infinity", "minus-infinity": "-Infinity", "1e400": "1e400"}


@pytest.mark.parametrize("number", NON_FINITE.values(), ids=NON_FINITE.keys())
def test_a_non_finite_number_in_metadata_is_422(app_client, tenant, isolated_broker, number):
    body = json.dumps(JOB)[:-1] + f', "metadata": {{"score": {number}}}}}'
    response = app_client.post(
        "/v1/jobs", content=body.encode(), headers={**tenant.headers, **JSON}
    )
    assert_refused(response, "metadata holds a number that is not finite", isolated_broker)


@pytest.mark.parametrize(
    ("field", "body"),
    [
        ("document", b'{"task": "medrec_extraction", "document": "Aspirin \\ud800 81 mg"}'),
        ("document", b'{"task": "medrec_extraction", "document": "Aspirin \xed\xa0\x80 81 mg"}'),
        ("metadata", b'{"task": "medrec_extraction", "document": "x", "metadata": {"\\udc00": 1}}'),
        (
            "metadata",
            b'{"task": "medrec_extraction", "document": "x", "metadata": {"k": "\\ud800"}}',
        ),
        ("a field name", b'{"task": "medrec_extraction", "document": "x", "\\ud800": 1}'),
    ],
    ids=["document-escape", "document-raw-bytes", "metadata-key", "metadata-value", "field-name"],
)
def test_a_lone_surrogate_in_a_job_is_422(app_client, tenant, isolated_broker, field, body):
    response = app_client.post("/v1/jobs", content=body, headers={**tenant.headers, **JSON})
    assert_refused(response, f"{field} holds a lone surrogate", isolated_broker)


@pytest.mark.parametrize("depth", [33, 400, 5000], ids=["past-limit", "hundreds", "thousands"])
def test_metadata_nested_past_the_depth_limit_is_422(app_client, tenant, isolated_broker, depth):
    body = json.dumps(JOB)[:-1] + f', "metadata": {nested(depth)}}}'
    response = app_client.post(
        "/v1/jobs", content=body.encode(), headers={**tenant.headers, **JSON}
    )
    assert_refused(response, "nested", isolated_broker)
    assert "32" in response.json()["error"] or depth > 1000


def test_metadata_nested_up_to_the_depth_limit_is_accepted(api, tenant, isolated_broker):
    body = json.dumps(JOB)[:-1] + f', "metadata": {nested(32)}}}'
    response = api.post("/v1/jobs", content=body.encode(), headers={**tenant.headers, **JSON})
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("metadata", "phrase"),
    [
        ('{"score": NaN}', "not finite"),
        ('{"\\ud800": 1}', "lone surrogate"),
        (nested(40), "nested"),
    ],
    ids=["nan", "surrogate-key", "deep"],
)
def test_bad_metadata_in_an_uploaded_job_is_422(
    app_client, tenant, isolated_broker, metadata, phrase
):
    response = app_client.post(
        "/v1/jobs",
        data={"task": "medrec_extraction", "metadata": metadata},
        files={"file": ("note.txt", DOC.encode(), "text/plain")},
        headers=tenant.headers,
    )
    assert_refused(response, phrase, isolated_broker)


@pytest.mark.parametrize(
    ("line", "phrase"),
    [
        (
            b'{"custom_id": "b", "task": "medrec_extraction", "document": "x", '
            b'"metadata": {"v": NaN}}',
            "metadata holds a number that is not finite",
        ),
        (
            b'{"custom_id": "b", "task": "medrec_extraction", "document": "x", '
            b'"metadata": {"v": 1e400}}',
            "metadata holds a number that is not finite",
        ),
        (
            b'{"custom_id": "b", "task": "medrec_extraction", "document": "a\\udfffb"}',
            "document holds a lone surrogate",
        ),
        (
            b'{"custom_id": "b", "task": "medrec_extraction", "document": "a\xed\xbf\xbfb"}',
            "document holds a lone surrogate",
        ),
        (
            b'{"custom_id": "b", "task": "medrec_extraction", "document": "x", '
            b'"metadata": {"\\ud800": 1}}',
            "metadata holds a lone surrogate",
        ),
        (
            b'{"custom_id": "b", "task": "medrec_extraction", "document": "x", "metadata": '
            + nested(300).encode()
            + b"}",
            "nested",
        ),
        (
            b'{"custom_id": "b", "task": "medrec_extraction", "document": "x", "metadata": '
            + nested(5000).encode()
            + b"}",
            "nested",
        ),
    ],  # fmt: skip
    ids=["nan", "1e400", "surrogate-escape", "surrogate-bytes", "surrogate-key", "deep", "deeper"],
)
def test_a_bad_batch_line_is_422_naming_the_line(app_client, tenant, isolated_broker, line, phrase):
    good = json.dumps({**JOB, "custom_id": "a"}).encode()
    response = app_client.post(
        "/v1/batches", content=good + b"\n" + line + b"\n", headers={**tenant.headers, **JSONL}
    )
    body = assert_refused(response, phrase, isolated_broker)
    assert [e["line"] for e in body["detail"]["errors"]] == [2]


def test_bad_batch_options_metadata_is_422(app_client, tenant, isolated_broker):
    response = app_client.post(
        "/v1/batches",
        data={"metadata": '{"run": Infinity}'},
        files={"file": ("b.jsonl", json.dumps({**JOB, "custom_id": "a"}).encode(), "text/plain")},
        headers=tenant.headers,
    )
    assert_refused(response, "metadata holds a number that is not finite", isolated_broker)


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/batches"])
@pytest.mark.parametrize(
    "raw",
    ["2026-01-01T00:00:00+00:00|job\x00x", "2026-01-01T00:00:00\x00|x", "\ud800|x"],
    ids=["nul-in-id", "nul-in-time", "surrogate"],
)
def test_a_cursor_holding_a_bad_character_is_422(app_client, tenant: TenantKey, path, raw):
    cursor = base64.urlsafe_b64encode(raw.encode("utf-8", "surrogatepass")).decode()
    response = app_client.get(path, params={"cursor": cursor}, headers=tenant.headers)
    assert response.status_code == 422, response.text
    assert "cursor is not valid" in response.json()["error"]


SEVERAL_ADDRESSES = [
    "a,b,c@example.org",
    "a@example.org,b@example.org",
    "a@example.org; b@example.org",
    "Ops <ops@example.org>",
    '"a@x"@example.org',
    "ops@example.org\r\nBcc: x@example.org",
]
ADDRESS_IDS = ["commas-in-local-part", "comma-list", "semicolon-list", "display-name",
               "quoted-local-part", "header-injection"]  # fmt: skip


@pytest.mark.parametrize("email", SEVERAL_ADDRESSES, ids=ADDRESS_IDS)
def test_a_job_email_must_be_exactly_one_address(app_client, tenant, isolated_broker, email):
    response = app_client.post("/v1/jobs", json={**JOB, "email": email}, headers=tenant.headers)
    assert_refused(response, "email must be exactly one address", isolated_broker)
    assert email not in response.text


@pytest.mark.parametrize("email", SEVERAL_ADDRESSES, ids=ADDRESS_IDS)
def test_a_batch_email_must_be_exactly_one_address(app_client, tenant, isolated_broker, email):
    response = app_client.post(
        "/v1/batches",
        data={"email": email},
        files={"file": ("b.jsonl", json.dumps({**JOB, "custom_id": "a"}).encode(), "text/plain")},
        headers=tenant.headers,
    )
    assert_refused(response, "email must be exactly one address", isolated_broker)


def test_a_single_plain_address_is_accepted(api, tenant, isolated_broker):
    response = api.post(
        "/v1/jobs", json={**JOB, "email": "ward.7+night@mail.example.org"}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("change", "phrase"),
    [
        ({"task": ECHO}, "unknown task; valid tasks: chat_completion, contract_review"),
        ({"strategy": ECHO}, "unknown strategy; valid strategies: adaptive"),
    ],
    ids=["task", "strategy"],
)
def test_an_unknown_task_or_strategy_is_not_echoed_back(
    app_client, tenant, isolated_broker, change, phrase
):
    response = app_client.post("/v1/jobs", json={**JOB, **change}, headers=tenant.headers)
    assert_refused(response, phrase, isolated_broker)
    assert "ECHO-7f3a" not in response.text


def test_an_unknown_task_in_a_batch_line_is_not_echoed_back(app_client, tenant, isolated_broker):
    line = json.dumps({**JOB, "custom_id": "a", "task": ECHO}).encode()
    response = app_client.post("/v1/batches", content=line, headers={**tenant.headers, **JSONL})
    assert_refused(response, "line 1: unknown task; valid tasks:", isolated_broker)
    assert "ECHO-7f3a" not in response.text


INVISIBLE = {
    "zero-width-spaces": "\u200b\u200b\u200b",
    "bom": "\ufeff",
    "bidi-marks": "\u200e\u200f\u202a\u202c",
    "word-joiner-nbsp": "\u2060\u00a0\u3000\n",
    "hangul-fillers": "\u3164\u115f\uffa0",
    "mongolian-separator-and-tags": "\u180e\U000e0020\U000e007f",
    "variation-selectors": "\ufe0f\u034f",
    "braille-blank": "\u2800 \u2800",
}


@pytest.mark.parametrize("document", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_a_document_of_only_invisible_characters_is_empty(
    app_client, tenant, isolated_broker, document
):
    response = app_client.post(
        "/v1/jobs", json={**JOB, "document": document}, headers=tenant.headers
    )
    assert_refused(response, "document is empty", isolated_broker)


def test_a_batch_line_of_only_invisible_characters_is_empty(app_client, tenant, isolated_broker):
    line = json.dumps({**JOB, "custom_id": "a", "document": "\u200b\ufeff"}).encode()
    response = app_client.post("/v1/batches", content=line, headers={**tenant.headers, **JSONL})
    assert_refused(response, "line 1: document is empty", isolated_broker)


def test_a_document_with_visible_text_among_invisible_characters_is_accepted(
    api, tenant, isolated_broker
):
    response = api.post(
        "/v1/jobs", json={**JOB, "document": "\ufeff\u200bAspirin 81 mg"}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "params",
    [{"name": "night-42"}, {"metadata": '{"ward": "7"}'}, {"email": "ops@example.org"}],
    ids=["name", "metadata", "email"],
)
def test_batch_options_in_the_query_string_are_refused(app_client, tenant, isolated_broker, params):
    line = json.dumps({**JOB, "custom_id": "a"}).encode()
    response = app_client.post(
        "/v1/batches", content=line, params=params, headers={**tenant.headers, **JSONL}
    )
    body = assert_refused(response, "not accepted in the query string", isolated_broker, 400)
    assert "form fields" in body["error"] and "options" in body["error"]
    assert "7" not in body["error"] and "night-42" not in response.text


def test_batch_options_can_be_sent_as_one_json_part(api, tenant, isolated_broker):
    options = {"name": "night-42", "priority": 3, "metadata": {"ward": "7"}}
    response = api.post(
        "/v1/batches",
        data={"options": json.dumps(options)},
        files={"file": ("b.jsonl", json.dumps({**JOB, "custom_id": "a"}).encode(), "text/plain")},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    batch = response.json()
    assert (batch["name"], batch["priority"], batch["metadata"]) == ("night-42", 3, {"ward": "7"})


def test_batch_options_as_both_a_json_part_and_form_fields_are_refused(
    app_client, tenant, isolated_broker
):
    response = app_client.post(
        "/v1/batches",
        data={"options": '{"name": "a"}', "priority": "3"},
        files={"file": ("b.jsonl", json.dumps({**JOB, "custom_id": "a"}).encode(), "text/plain")},
        headers=tenant.headers,
    )
    assert_refused(response, "either as form fields or as one 'options' JSON part", isolated_broker)
