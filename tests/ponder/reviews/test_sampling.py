"""QA sampling: decided from a hash of the job id when a job ends succeeded."""

from __future__ import annotations

import uuid

from sqlmodel import select

from ponder.db import session_scope
from ponder.models import Job, JobStatus
from ponder.reviews.sampling import is_sampled
from ponder.reviews.service import review_queue
from tests.ponder.reviews.jobs import GOOD, ended_job

# Two-sided 99.9 % bounds for Binomial(20, 0.5): P(X <= 3) = 1351 / 2**20 = 0.00129 > 0.0005
# but P(X <= 2) = 211 / 2**20 = 0.0002 <= 0.0005, so 3..17 holds 99.96 % of the mass.
LOW, HIGH = 3, 17
IDS = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"ponder-qa-{i}")) for i in range(20)]
"""Fixed ids: the count is the same on every run (it is 10), and within the bounds."""


def test_a_rate_of_one_half_samples_a_binomial_share_of_succeeded_jobs_by_job_id(
    tenant, isolated_broker, qa_rate
):
    qa_rate(0.5)
    for job_id in IDS:
        ended_job(tenant.tenant_id, status=JobStatus.succeeded, output=GOOD, failing=(),
                  job_id=job_id)  # fmt: skip
    with session_scope() as session:
        sampled = {j.id for j in session.exec(select(Job).where(Job.qa_sampled)).all()}
        items, _, counts = review_queue(session=session, tenant_id=tenant.tenant_id, limit=100)
    assert LOW <= len(sampled) <= HIGH
    assert sampled == {j for j in IDS if is_sampled(j, 0.5)}  # deterministic by id
    assert {i.job_id for i in items} == sampled  # queued for review, next to needs_review
    assert counts == {"medrec_extraction": len(sampled)}


def test_binomial_bounds_are_right():
    from math import comb

    below = sum(comb(20, k) for k in range(LOW)) / 2**20
    above = sum(comb(20, k) for k in range(HIGH + 1, 21)) / 2**20
    assert below <= 0.0005 and above <= 0.0005
    assert sum(comb(20, k) for k in range(LOW + 1)) / 2**20 > 0.0005  # and they are tight
