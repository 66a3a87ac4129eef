"""What reviews say, per task: outcomes, time to review, which verifiers failed on answers
people approved as is (checks that may be too strict) and on answers they corrected, and the
production precision of ``succeeded`` estimated from the QA sample, with a 95 % Wilson
interval."""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime
from typing import Any

from sqlmodel import Session, col

from ponder.models import Job, Review, ReviewDecision
from ponder.scoping import readable_reviews

Z_95 = 1.959963984540054
"""The standard normal quantile for a two-sided 95 % interval."""


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion: unlike the normal approximation
    it stays inside [0, 1] and is sensible for small samples and proportions near 1, which
    is where a QA sample of a good system lands."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def precision_estimate(approved_as_is: int, n: int) -> dict[str, Any]:
    """``precision`` (None without a sample), its 95 % Wilson ``low`` and ``high``, and ``n``."""
    low, high = wilson_interval(approved_as_is, n)
    return {"precision": approved_as_is / n if n else None, "low": low, "high": high, "n": n}


def _percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (PostgreSQL's percentile_cont)."""
    if not values:
        return None
    ordered = sorted(values)
    at = q * (len(ordered) - 1)
    lower = math.floor(at)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (at - lower)


def review_stats(*, session: Session, tenant_id: str, now: datetime | None = None) -> dict:
    """Per task: ``outcomes`` (a count per decision and ``total``), ``review_time_s`` (p50,
    p90), ``failing_on_approved`` and ``failing_on_corrected`` (verifier → jobs where the
    machine's answer failed it, most first) and ``qa`` (the precision estimate)."""
    rows = session.execute(
        readable_reviews(tenant_id)
        .with_only_columns(
            col(Job.task),
            col(Review.decision),
            col(Review.seconds_to_review),
            col(Review.was_sampled),
            col(Job.result)["failing_checks"],
        )
        .join(Job, col(Job.id) == col(Review.job_id))
    ).all()
    tasks: dict[str, dict[str, Any]] = {}
    for task, decision, seconds, sampled, failing in rows:
        acc = tasks.setdefault(
            task,
            {
                "outcomes": Counter(),
                "seconds": [],
                "failing_on_approved": Counter(),
                "failing_on_corrected": Counter(),
                "qa_n": 0,
                "qa_ok": 0,
            },
        )
        acc["outcomes"][decision] += 1
        if seconds is not None:
            acc["seconds"].append(float(seconds))
        names = {f.get("verifier") for f in failing or [] if isinstance(f, dict)}
        if decision == ReviewDecision.approved:
            acc["failing_on_approved"].update(names)
        elif decision == ReviewDecision.corrected:
            acc["failing_on_corrected"].update(names)
        if sampled:
            acc["qa_n"] += 1
            acc["qa_ok"] += decision == ReviewDecision.approved
    return {
        task: {
            "outcomes": {
                **{d.value: acc["outcomes"][d.value] for d in ReviewDecision},
                "total": sum(acc["outcomes"].values()),
            },
            "review_time_s": {
                "p50": _percentile(acc["seconds"], 0.5),
                "p90": _percentile(acc["seconds"], 0.9),
            },
            "failing_on_approved": dict(acc["failing_on_approved"].most_common()),
            "failing_on_corrected": dict(acc["failing_on_corrected"].most_common()),
            "qa": precision_estimate(acc["qa_ok"], acc["qa_n"]),
        }
        for task, acc in sorted(tasks.items())
    }
