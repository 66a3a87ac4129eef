"""``/metrics`` carries review outcomes and the QA precision estimate with its interval."""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families

from tests.ponder.reviews.conftest import qa_rate  # noqa: F401 - a fixture
from tests.ponder.reviews.test_stats import APPROVED, CORRECTED, hand_wilson, reviewed_qa_sample


def test_metrics_show_review_outcomes_and_the_qa_precision_interval(
    api,
    tenant,
    isolated_broker,
    qa_rate,  # noqa: F811
):
    qa_rate(1.0)
    reviewed_qa_sample(tenant.tenant_id)
    text = api.get("/metrics", headers=tenant.headers).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    task = (("task", "medrec_extraction"),)
    p, low, high = hand_wilson(APPROVED, APPROVED + CORRECTED)
    assert samples[("ponder_qa_precision", task)] == p
    assert math.isclose(samples[("ponder_qa_precision_low", task)], low, abs_tol=1e-4)
    assert math.isclose(samples[("ponder_qa_precision_high", task)], high, abs_tol=1e-4)
    assert samples[("ponder_qa_reviewed", task)] == APPROVED + CORRECTED
    approved = (("decision", "approved"), ("task", "medrec_extraction"))
    assert samples[("ponder_reviews_total", approved)] == APPROVED + 1
    assert not any("tenant" in dict(labels) for _, labels in samples)
