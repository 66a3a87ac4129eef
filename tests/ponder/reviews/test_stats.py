"""Review statistics: the QA precision estimate and its 95 % Wilson interval."""

from __future__ import annotations

import math

from ponder.config import get_settings
from ponder.db import session_scope
from ponder.models import JobStatus
from ponder.reviews.service import decide
from ponder.reviews.stats import review_stats
from tests.ponder.reviews.jobs import GOOD, answer, ended_job

APPROVED, CORRECTED = 5, 2


def hand_wilson(k: int, n: int) -> tuple[float, float, float]:
    """p, low, high written out: (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)."""
    z = 1.96  # the 97.5 % normal quantile, to the precision a table gives
    p = k / n
    denominator = 1 + z**2 / n
    centre = p + z**2 / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return p, (centre - spread) / denominator, (centre + spread) / denominator


def reviewed_qa_sample(tenant_id: str) -> None:
    """Seven QA-sampled succeeded jobs: five approved as is, two corrected; one needs_review
    job approved (not in the sample)."""
    ids = [
        ended_job(tenant_id, status=JobStatus.succeeded, output=GOOD, failing=())
        for _ in range(APPROVED + CORRECTED)
    ]
    flagged = ended_job(tenant_id)
    with session_scope() as session:
        for i, job_id in enumerate(ids):
            corrected = i >= APPROVED
            decide(session=session, tenant_id=tenant_id, job_id=job_id, reviewer_id=None,
                   api_key_id=None, decision="corrected" if corrected else "approved",
                   answer=answer(dose="80") if corrected else None,
                   reason="the note says 80" if corrected else None,
                   settings=get_settings())  # fmt: skip
        decide(session=session, tenant_id=tenant_id, job_id=flagged, reviewer_id=None,
               api_key_id=None, decision="approved", settings=get_settings())  # fmt: skip


def test_qa_precision_and_its_wilson_interval_match_a_hand_computation(
    tenant, isolated_broker, qa_rate
):
    qa_rate(1.0)
    reviewed_qa_sample(tenant.tenant_id)
    with session_scope() as session:
        stats = review_stats(session=session, tenant_id=tenant.tenant_id)["medrec_extraction"]
    p, low, high = hand_wilson(APPROVED, APPROVED + CORRECTED)
    qa = stats["qa"]
    assert qa["n"] == APPROVED + CORRECTED
    assert qa["precision"] == p
    assert math.isclose(qa["low"], low, abs_tol=1e-4)
    assert math.isclose(qa["high"], high, abs_tol=1e-4)
    assert stats["outcomes"]["approved"] == APPROVED + 1
    assert stats["outcomes"]["corrected"] == CORRECTED
    assert stats["failing_on_approved"] == {"completeness": 1}


def test_the_stats_page_shows_the_same_precision_and_interval(
    api, tenant, isolated_broker, qa_rate
):
    from tests.api.test_review_web import reviewer, sign_in

    qa_rate(1.0)
    reviewed_qa_sample(tenant.tenant_id)
    reviewer("tenant-a", "qa@example.org")
    assert sign_in(api, "qa@example.org").status_code == 303
    page = api.get("/review/stats").text
    p, low, high = hand_wilson(APPROVED, APPROVED + CORRECTED)
    shown = f"precision {p:.3f}, 95 % interval [{low:.3f}, {high:.3f}], n = {APPROVED + CORRECTED}"
    assert shown in page
