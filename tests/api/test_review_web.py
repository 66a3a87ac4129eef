"""The review workspace's pages (api/review_web/) over plain HTTP: sessions, CSRF, tenants, the
lock, and the refusals that re-show the form. The browser drives the happy path in
tests/e2e/test_review_browser.py."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from ponder.config import get_settings
from ponder.db import get_engine, session_scope
from ponder.jobs.lease import finish
from ponder.models import Candidate, Job, JobStatus, Verdict
from ponder.reviews.accounts import create_reviewer
from tests.conftest import TenantKey

NOTE = (
    "Clinic follow-up.\n"
    "Medications: metoprolol 50 mg by mouth twice daily; lisinopril 10 mg by mouth daily.\n"
)
ANSWER = {
    "medications": [
        {
            "name": "metoprolol",
            "dose": "25",  # the note says 50: the reviewer corrects it
            "unit": "mg",
            "route": "oral",
            "frequency": "twice daily",
            "status": "active",
            "evidence": "metoprolol 50 mg by mouth twice daily",
        },
        {
            "name": "warfarin",
            "dose": "5",
            "unit": "mg",
            "route": "oral",
            "frequency": "daily",
            "status": "active",
            "evidence": "warfarin 5 mg nightly",  # not in the note
        },
    ]
}
PASSWORD = "correct horse battery staple"


def reviewer(tenant_name: str, email: str) -> None:
    with session_scope() as session:
        create_reviewer(session=session, tenant_name=tenant_name, email=email, password=PASSWORD)


def needs_review_job(api: TestClient, tenant: TenantKey) -> str:
    """A medrec job ended ``needs_review`` as a run would end it (no worker: the broker is
    isolated), with one candidate whose checks failed."""
    body = {"task": "medrec_extraction", "document": NOTE, "strategy": "single"}
    response = api.post("/v1/jobs", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    job_id = str(response.json()["id"])
    with session_scope() as session:
        job = session.get(Job, job_id, with_for_update=True)
        assert job is not None
        job.status = JobStatus.running.value
        candidate = Candidate(
            job_id=job_id, step="sample", idx=0, attempt=1, text="{}", parsed=ANSWER, score=0.5
        )
        session.add(candidate)
        session.flush()
        session.add(
            Verdict(
                candidate_id=candidate.id,
                verifier="evidence_grounding",
                passed=False,
                score=0.0,
                required=True,
                weight=1.0,
                findings=["warfarin: evidence not found in the note"],
            )
        )
        finish(
            session=session,
            job=job,
            status=JobStatus.needs_review,
            settings=get_settings(),
            result={
                "output": ANSWER,
                "rationale": "no candidate passed the required checks",
                "failing_checks": [{"verifier": "evidence_grounding", "findings": []}],
            },
            selected_candidate_id=candidate.id,
        )
    return job_id


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> Any:
    page = client.get("/review/sign-in")
    return client.post(
        "/review/sign-in",
        data={"email": email, "password": password, "csrf_token": csrf(page.text)},
        follow_redirects=False,
    )


def csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def state(job_id: str) -> tuple[str, int]:
    """The job's status and how many reviews it has: what a refused request must not change."""
    with get_engine().connect() as conn:
        status = conn.execute(
            sa.text("select status from jobs where id = :j"), {"j": job_id}
        ).scalar_one()
        reviews = conn.execute(
            sa.text("select count(*) from reviews where job_id = :j"), {"j": job_id}
        ).scalar_one()
    return str(status), int(reviews)


@pytest.fixture
def signed_in(api: TestClient, tenant: TenantKey, isolated_broker: Any) -> Iterator[TestClient]:
    reviewer("tenant-a", "pharmacist@example.org")
    assert sign_in(api, "pharmacist@example.org").status_code == 303
    yield api


@pytest.fixture
def second_client(database: None) -> Iterator[TestClient]:
    from api.main import app

    with TestClient(app) as client:
        yield client


def test_a_signed_out_request_is_redirected_to_sign_in(api, tenant, isolated_broker):
    for url in ("/review", "/review/stats", "/review/jobs/some-job"):
        response = api.get(url, follow_redirects=False)
        assert response.status_code == 303, url
        assert response.headers["location"].startswith("/review/sign-in?next=/review")


def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(
    api, tenant, isolated_broker
):
    reviewer("tenant-a", "pharmacist@example.org")
    wrong = sign_in(api, "pharmacist@example.org", "not the password")
    unknown = sign_in(api, "nobody@example.org")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "wrong email or password" in response.text
    assert api.get("/review", follow_redirects=False).status_code == 303


def test_signing_in_sets_an_http_only_same_site_cookie_and_opens_the_queue(
    api, tenant, isolated_broker
):
    reviewer("tenant-a", "pharmacist@example.org")
    response = sign_in(api, "pharmacist@example.org")
    assert response.status_code == 303 and response.headers["location"] == "/review"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/review" in cookie
    assert "Max-Age=28800" in cookie
    assert "Secure" not in cookie  # test environment; production sets it
    assert "Awaiting review" in api.get("/review").text


def test_the_queue_lists_the_job_awaiting_review_with_its_failing_check(signed_in, tenant):
    job_id = needs_review_job(signed_in, tenant)
    page = signed_in.get("/review").text
    assert f"/review/jobs/{job_id}" in page
    assert "medrec_extraction: 1" in page and "evidence_grounding" in page
    filtered = signed_in.get("/review", params={"task": "math_answer"}).text
    assert f"/review/jobs/{job_id}" not in filtered


def test_the_job_page_highlights_located_evidence_and_marks_a_quote_not_found(signed_in, tenant):
    job_id = needs_review_job(signed_in, tenant)
    page = signed_in.get(f"/review/jobs/{job_id}").text
    assert re.search(
        r'<mark class="evidence"[^>]*id="span-0"[^>]*>metoprolol 50 mg by mouth twice daily</mark>',
        page,
    )
    assert 'href="#span-0"' in page
    assert "not found in the document" in page  # warfarin's quote
    # The form follows the schema: units, routes and statuses are choices.
    assert '<select name="answer.medications.0.unit"' in page
    assert '<option value="subcutaneous"' in page and '<option value="discontinued"' in page


def test_a_form_post_without_the_csrf_token_is_refused_and_writes_nothing(signed_in, tenant):
    job_id = needs_review_job(signed_in, tenant)
    signed_in.get(f"/review/jobs/{job_id}")
    for data in ({"decision": "approved"}, {"decision": "approved", "csrf_token": "forged"}):
        response = signed_in.post(
            f"/review/jobs/{job_id}/decision", data=data, follow_redirects=False
        )
        assert response.status_code == 403
        assert "security token" in response.text
    assert state(job_id) == ("needs_review", 0)


def test_an_expired_session_redirects_and_writes_nothing(signed_in, tenant, monkeypatch):
    import itsdangerous.timed

    job_id = needs_review_job(signed_in, tenant)
    token = csrf(signed_in.get(f"/review/jobs/{job_id}").text)
    later = time.time() + get_settings().review.session_ttl_s + 60

    class Clock:
        @staticmethod
        def time() -> float:
            return later

    monkeypatch.setattr(itsdangerous.timed, "time", Clock)
    response = signed_in.post(
        f"/review/jobs/{job_id}/decision",
        data={"decision": "approved", "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/review/sign-in?next=/review/jobs/{job_id}"
    assert state(job_id) == ("needs_review", 0)


def test_another_tenants_reviewer_gets_404_for_the_job_page(
    signed_in, tenant, other_tenant, second_client
):
    job_id = needs_review_job(signed_in, tenant)
    reviewer("tenant-b", "lawyer@example.org")
    assert sign_in(second_client, "lawyer@example.org").status_code == 303
    for url in (f"/review/jobs/{job_id}", "/review/jobs/no-such-job"):
        response = second_client.get(url)
        assert response.status_code == 404
        assert NOTE[:20] not in response.text
    response = second_client.post(
        f"/review/jobs/{job_id}/decision",
        data={"decision": "approved", "csrf_token": csrf(second_client.get("/review").text)},
    )
    assert response.status_code == 404
    assert state(job_id) == ("needs_review", 0)


def test_another_tenants_reviewer_sees_none_of_its_stats_or_queue(
    signed_in, tenant, other_tenant, second_client
):
    job_id = needs_review_job(signed_in, tenant)
    page = signed_in.get(f"/review/jobs/{job_id}").text
    signed_in.post(
        f"/review/jobs/{job_id}/decision", data={"decision": "approved", "csrf_token": csrf(page)}
    )
    assert "medrec_extraction" in signed_in.get("/review/stats").text
    reviewer("tenant-b", "lawyer@example.org")
    sign_in(second_client, "lawyer@example.org")
    stats = second_client.get("/review/stats")
    assert stats.status_code == 200
    assert "medrec_extraction" not in stats.text and "No reviews yet" in stats.text
    assert job_id not in second_client.get("/review").text


def test_a_second_reviewer_opening_the_same_job_sees_the_lock_read_only(
    signed_in, tenant, second_client
):
    job_id = needs_review_job(signed_in, tenant)
    assert signed_in.get(f"/review/jobs/{job_id}").status_code == 200
    reviewer("tenant-a", "second@example.org")
    sign_in(second_client, "second@example.org")
    page = second_client.get(f"/review/jobs/{job_id}").text
    assert "Locked by pharmacist@example.org until" in page
    assert 'id="save-correction"' not in page and 'id="approve"' not in page
    assert "disabled" in page
    assert "pharmacist@example.org" in second_client.get("/review").text  # the queue shows it
    response = second_client.post(
        f"/review/jobs/{job_id}/decision", data={"decision": "approved", "csrf_token": csrf(page)}
    )
    assert response.status_code == 409
    assert "locked by pharmacist@example.org until" in response.text
    assert state(job_id) == ("needs_review", 0)


def _correction(job_id: str, token: str, dose: str, reason: str = "") -> dict[str, str]:
    form = {"csrf_token": token, "decision": "corrected", "reason": reason}
    for i, med in enumerate(ANSWER["medications"][:1]):
        for key, value in med.items():
            form[f"answer.medications.{i}.{key}"] = "" if value is None else str(value)
    form["answer.medications.0.dose"] = dose
    return form


def test_a_correction_that_does_not_fit_the_schema_reshows_the_form_naming_the_field(
    signed_in, tenant
):
    job_id = needs_review_job(signed_in, tenant)
    token = csrf(signed_in.get(f"/review/jobs/{job_id}").text)
    too_long = "5" * 25  # the schema allows 20 characters
    response = signed_in.post(
        f"/review/jobs/{job_id}/decision", data=_correction(job_id, token, too_long, "typo")
    )
    assert response.status_code == 422
    assert "medications.0.dose" in response.text
    assert 'id="answer-form"' in response.text  # the form, re-shown
    assert f'value="{too_long}"' in response.text  # the edit is kept, not lost
    assert state(job_id) == ("needs_review", 0)


def test_a_reject_without_a_reason_reshows_the_page_with_the_message(signed_in, tenant):
    job_id = needs_review_job(signed_in, tenant)
    token = csrf(signed_in.get(f"/review/jobs/{job_id}").text)
    response = signed_in.post(
        f"/review/jobs/{job_id}/decision",
        data={"csrf_token": token, "decision": "rejected", "reason": "  "},
    )
    assert response.status_code == 422
    assert "reason" in response.text and 'role="alert"' in response.text
    assert 'id="answer-form"' in response.text  # the job page, re-shown
    assert state(job_id) == ("needs_review", 0)


def test_checking_a_correction_shows_the_verdicts_and_writes_nothing(signed_in, tenant):
    job_id = needs_review_job(signed_in, tenant)
    token = csrf(signed_in.get(f"/review/jobs/{job_id}").text)
    form = {**_correction(job_id, token, "50"), "decision": "check"}
    response = signed_in.post(f"/review/jobs/{job_id}/decision", data=form)
    assert response.status_code == 200
    assert "Checks on this answer" in response.text and "evidence_grounding" in response.text
    assert state(job_id) == ("needs_review", 0)


def test_a_dose_correction_is_saved_with_its_diff_and_shown_reviewed(signed_in, tenant):
    job_id = needs_review_job(signed_in, tenant)
    token = csrf(signed_in.get(f"/review/jobs/{job_id}").text)
    response = signed_in.post(
        f"/review/jobs/{job_id}/decision",
        data=_correction(job_id, token, "50", reason="warfarin is not in the note"),
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert state(job_id) == ("reviewed", 1)
    with get_engine().connect() as conn:
        diff = conn.execute(
            sa.text("select diff from reviews where job_id = :j"), {"j": job_id}
        ).scalar_one()
    assert {"path": "medications.0.dose", "before": "25", "after": "50"} in diff
    page = signed_in.get(f"/review/jobs/{job_id}").text
    assert "Reviewed: corrected" in page and "medications.0.dose" in page


def test_signing_out_ends_the_session(signed_in, tenant):
    token = csrf(signed_in.get("/review").text)
    response = signed_in.post(
        "/review/sign-out", data={"csrf_token": token}, follow_redirects=False
    )
    assert response.status_code == 303
    assert signed_in.get("/review", follow_redirects=False).status_code == 303


def test_the_stats_page_draws_the_outcomes_as_svg(signed_in, tenant):
    job_id = needs_review_job(signed_in, tenant)
    page = signed_in.get(f"/review/jobs/{job_id}").text
    signed_in.post(
        f"/review/jobs/{job_id}/decision", data={"decision": "approved", "csrf_token": csrf(page)}
    )
    stats = signed_in.get("/review/stats").text
    assert '<svg role="img" aria-label="Outcomes"' in stats
    assert re.search(r'<g class="bar o-approved">\s*<text[^>]*>approved</text>', stats)
