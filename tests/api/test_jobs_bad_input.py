"""Bad input gets a clear 4xx, writes no row and queues nothing."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from ponder.db import get_engine
from tests.conftest import TenantKey, queued_messages

VALID = {"task": "medrec_extraction", "document": "Metoprolol 50 mg twice daily.", "n": 2}


def job_rows() -> int:
    with get_engine().connect() as conn:
        return int(conn.execute(sa.text("select count(*) from jobs")).scalar_one())


def assert_nothing_changed(response: Any, status: int, phrase: str, broker: Any) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert phrase.lower() in body["error"].lower(), body
    assert job_rows() == 0
    assert queued_messages(broker) == 0


def test_valid_submission_writes_a_row_and_queues_one_message(api, tenant, isolated_broker):
    # The control for every case below: the checks can see a row and a message.
    response = api.post("/v1/jobs", json=VALID, headers=tenant.headers)
    assert response.status_code == 201, response.text
    assert job_rows() == 1
    assert queued_messages(isolated_broker) == 1


@pytest.mark.parametrize(
    ("change", "status", "phrase"),
    [
        ({"document": ""}, 422, "document is empty"),
        ({"document": "   \n "}, 422, "document is empty"),
        ({"task": "poetry"}, 422, "unknown task; valid tasks: chat_completion, contract_review, "),
        ({"strategy": "guess"}, 422, "valid strategies: adaptive, auto, beam, best_of_n"),
        ({"n": 0}, 422, "n must be between 1 and 16"),
        ({"n": 17}, 422, "n must be between 1 and 16"),
        ({"strategy": "single", "n": 3}, 422, "draws exactly 1"),
        ({"webhook_url": "ftp://example.org/hook"}, 422, "webhook_url refused"),
        ({"webhook_url": "http://10.0.0.5/hook"}, 422, "webhook_url refused"),
        ({"webhook_url": "http://localhost:9/hook"}, 422, "webhook_url refused"),
        ({"webhook_url": "http://169.254.169.254/latest"}, 422, "webhook_url refused"),
        ({"priority": 12}, 422, "priority"),
        ({"email": "not-an-address"}, 422, "email"),
        ({"unknown_field": 1}, 422, "unknown_field"),
        (
            {"strategy": "refine", "params": {"rounds": 3}},
            422,
            "invalid params for strategy refine",
        ),
        ({"strategy": "refine", "params": {"max_rounds": 0}}, 422, "max_rounds"),
        ({"strategy": "beam", "params": {"width": 99}}, 422, "width"),
        ({"budget_tokens": -5}, 422, "budget_tokens"),
        ({"budget_tokens": 50}, 422, "too small for even one sample"),
        (
            {"strategy": "adaptive", "params": {"ladder": ["best_of_n", "magic"]}},
            422,
            "ladder[1] is not a known strategy",  # named by position, not echoed
        ),
        ({"strategy": "adaptive", "params": {"ladder": ["adaptive"]}}, 422, "adaptive"),
    ],
    ids=[
        "empty-document",
        "blank-document",
        "unknown-task",
        "unknown-strategy",
        "n-zero",
        "n-too-large",
        "n-with-single",
        "webhook-not-http",
        "webhook-private",
        "webhook-loopback-name",
        "webhook-metadata",
        "priority-out-of-range",
        "bad-email",
        "unknown-field",
        "unknown-strategy-param",
        "param-out-of-range",
        "beam-width-out-of-range",
        "negative-budget",
        "budget-too-small",
        "ladder-unknown-strategy",
        "ladder-names-adaptive",
    ],
)
def test_invalid_job_is_refused(api, tenant, isolated_broker, change, status, phrase):
    response = api.post("/v1/jobs", json={**VALID, **change}, headers=tenant.headers)
    assert_nothing_changed(response, status, phrase, isolated_broker)


def test_webhook_loopback_refused_without_allowlist(api, tenant, isolated_broker, monkeypatch):
    from ponder import config

    monkeypatch.setenv("PONDER_NOTIFY__WEBHOOK_ALLOW_HOSTS", "[]")
    config.get_settings.cache_clear()
    try:
        body = {**VALID, "webhook_url": "http://127.0.0.1:8080/hook"}
        response = api.post("/v1/jobs", json=body, headers=tenant.headers)
    finally:
        monkeypatch.undo()
        config.get_settings.cache_clear()
    assert_nothing_changed(response, 422, "webhook_url refused", isolated_broker)


def test_document_over_the_size_limit_is_413(api, tenant, isolated_broker):
    body = {**VALID, "document": "x" * 60_001}
    response = api.post("/v1/jobs", json=body, headers=tenant.headers)
    assert_nothing_changed(response, 413, "limit for task medrec_extraction", isolated_broker)


def test_request_body_over_the_byte_limit_is_413(api, tenant, isolated_broker):
    body = {**VALID, "document": "y" * 1_100_000}
    response = api.post("/v1/jobs", json=body, headers=tenant.headers)
    assert_nothing_changed(response, 413, "limit", isolated_broker)


def test_malformed_json_is_422_with_the_parse_error(api, tenant, isolated_broker):
    response = api.post(
        "/v1/jobs",
        content=b'{"task": "medrec_extraction", "document": ',
        headers={**tenant.headers, "content-type": "application/json"},
    )
    assert_nothing_changed(response, 422, "not valid JSON", isolated_broker)


def test_json_that_is_not_an_object_is_refused(api, tenant, isolated_broker):
    response = api.post("/v1/jobs", json=["a"], headers=tenant.headers)
    assert_nothing_changed(response, 422, "must be a JSON object", isolated_broker)


def test_unsupported_content_type_is_415(api, tenant, isolated_broker):
    response = api.post(
        "/v1/jobs", content=b"task=x", headers={**tenant.headers, "content-type": "text/plain"}
    )
    assert_nothing_changed(response, 415, "application/json or multipart", isolated_broker)


@pytest.mark.parametrize(
    ("filename", "content", "ctype"),
    [
        ("scan.pdf", b"%PDF-1.7 ...", "application/pdf"),
        ("image.png", b"\x89PNG\r\n\x1a\n", "image/png"),
        ("note.txt", b"text with a \x00 byte", "text/plain"),
        ("note.txt", b"\xff\xfe\xfa latin junk", "text/plain"),
    ],
    ids=["pdf", "png", "binary-named-txt", "not-utf8"],
)
def test_upload_that_is_not_text_is_415(api, tenant, isolated_broker, filename, content, ctype):
    response = api.post(
        "/v1/jobs",
        data={"task": "medrec_extraction"},
        files={"file": (filename, content, ctype)},
        headers=tenant.headers,
    )
    assert_nothing_changed(response, 415, "", isolated_broker)


def test_upload_without_file_part_is_refused(api, tenant, isolated_broker):
    response = api.post(
        "/v1/jobs",
        data={"task": "medrec_extraction"},
        files={"other": ("a.txt", b"x", "text/plain")},
        headers=tenant.headers,
    )
    assert_nothing_changed(response, 422, "needs a 'file' part", isolated_broker)


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/batches"])
def test_multipart_without_a_boundary_is_refused(api, tenant, isolated_broker, path):
    response = api.post(
        path,
        content=b"--x\r\ncontent-disposition: form-data; name=file\r\n\r\nabc\r\n--x--\r\n",
        headers={**tenant.headers, "content-type": "multipart/form-data"},
    )
    assert_nothing_changed(response, 422, "multipart upload is not valid", isolated_broker)
    assert "boundary" in response.json()["error"]
    with get_engine().connect() as conn:
        assert conn.execute(sa.text("select count(*) from batches")).scalar_one() == 0


def test_unknown_route_and_wrong_method_answer_in_our_error_shape(api, tenant, isolated_broker):
    response = api.get("/v1/jobz", headers=tenant.headers)
    assert_nothing_changed(response, 404, "no such route", isolated_broker)
    response = api.delete("/v1/jobs", headers=tenant.headers)
    assert_nothing_changed(response, 405, "method not allowed", isolated_broker)
    assert "POST" in response.json()["error"] and "POST" in response.headers["allow"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer pk_wrong"}, {"Authorization": "Basic abc"}],
    ids=["missing-key", "wrong-key", "wrong-scheme"],
)
def test_missing_or_wrong_api_key_is_401(api, tenant, isolated_broker, headers):
    response = api.post("/v1/jobs", json=VALID, headers=headers)
    assert_nothing_changed(response, 401, "key" if headers else "missing API key", isolated_broker)


def test_unknown_job_id_is_404(api, tenant: TenantKey, isolated_broker):
    for path in ("/v1/jobs/nope", "/v1/jobs/nope/trace"):
        response = api.get(path, headers=tenant.headers)
        assert response.status_code == 404
        assert "no job nope" in response.json()["error"]
    response = api.post("/v1/jobs/nope/cancel", headers=tenant.headers)
    assert response.status_code == 404


def test_bad_list_filters_are_refused(api, tenant, isolated_broker):
    assert api.get("/v1/jobs?status=done", headers=tenant.headers).status_code == 422
    assert api.get("/v1/jobs?cursor=%%%", headers=tenant.headers).status_code == 422
    assert api.get("/v1/jobs?limit=0", headers=tenant.headers).status_code == 422
