"""Prometheus metrics read from PostgreSQL and Redis at scrape time.

PostgreSQL is the truth, so the figures are computed from it rather than counted in each
process: every API replica reports the same numbers, and a restarted process loses none.
Totals only grow (jobs are not deleted), so counters stay monotonic.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from ponder.config import Settings
from ponder.db import get_engine

LATENCY_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
QUEUES = ("reasoning", "quarantine", "notify", "default")


class PonderCollector(Collector):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        with get_engine().connect() as conn:
            yield _alerts(conn, self.settings)
            yield from _jobs(conn)
            yield from _latency(conn)
            yield from _verifiers(conn)
            yield from _escalations(conn)
            yield from _deliveries(conn)
            yield from _reviews(conn)
        yield _queue_depth(self.settings)


def _jobs(conn: sa.Connection) -> Iterator[Metric]:
    by_state = GaugeMetricFamily("ponder_jobs", "Jobs by state and task", labels=["status", "task"])
    tokens = CounterMetricFamily(
        "ponder_tokens", "Tokens spent by jobs, by kind and task", labels=["kind", "task"]
    )
    cost = CounterMetricFamily("ponder_cost", "Cost of jobs (configured prices)", labels=["task"])
    rows = conn.execute(
        sa.text(
            "select status, task, count(*), sum(prompt_tokens), sum(completion_tokens), "
            "sum(thinking_tokens), sum(cached_tokens), sum(coalesce(cost, 0)) "
            "from jobs group by status, task"
        )
    ).all()
    totals: dict[str, list[float]] = {}
    for status, task, count, prompt, completion, thinking, cached, spent in rows:
        by_state.add_metric([status, task], count)
        acc = totals.setdefault(task, [0, 0, 0, 0, 0.0])
        for i, value in enumerate((prompt, completion, thinking, cached, spent)):
            acc[i] += value or 0
    for task, (prompt, completion, thinking, cached, spent) in totals.items():
        for kind, value in (
            ("prompt", prompt),
            ("completion", completion),
            ("thinking", thinking),
            ("cached", cached),
        ):
            tokens.add_metric([kind, task], value)
        cost.add_metric([task], spent)
    yield by_state
    yield tokens
    yield cost


def _latency(conn: sa.Connection) -> Iterator[Metric]:
    """Submission to terminal state, for ended jobs; p50/p95/p99 come from the buckets."""
    family = HistogramMetricFamily(
        "ponder_job_latency_seconds", "Time from submission to the end of a job", labels=["task"]
    )
    cases = ", ".join(
        f"count(*) filter (where extract(epoch from finished_at - created_at) <= {b})"
        for b in LATENCY_BUCKETS
    )
    rows = conn.execute(
        sa.text(
            f"select task, {cases}, count(*), "
            "coalesce(sum(extract(epoch from finished_at - created_at)), 0) "
            "from jobs where finished_at is not null group by task"
        )
    ).all()
    for row in rows:
        task, counts, total, seconds = row[0], row[1:-2], row[-2], row[-1]
        buckets: list[tuple[str, float]] = [
            (str(b), float(c)) for b, c in zip(LATENCY_BUCKETS, counts, strict=True)
        ]
        buckets.append(("+Inf", float(total)))
        family.add_metric([task], buckets, float(seconds))
    yield family


def _verifiers(conn: sa.Connection) -> Iterator[Metric]:
    family = CounterMetricFamily(
        "ponder_verdicts",
        "Verifier verdicts by verifier and outcome",
        labels=["verifier", "passed"],
    )
    for verifier, passed, count in conn.execute(
        sa.text("select verifier, passed, count(*) from verdicts group by verifier, passed")
    ):
        family.add_metric([verifier, str(passed).lower()], count)
    yield family


def _escalations(conn: sa.Connection) -> Iterator[Metric]:
    family = CounterMetricFamily("ponder_escalations", "Adaptive strategy escalations")
    count = conn.execute(
        sa.text("select count(*) from trace_events where kind = 'escalate'")
    ).scalar_one()
    family.add_metric([], count)
    yield family


def _deliveries(conn: sa.Connection) -> Iterator[Metric]:
    family = CounterMetricFamily(
        "ponder_delivery_attempts",
        "Notification delivery attempts by channel and outcome",
        labels=["channel", "outcome"],
    )
    rows = conn.execute(
        sa.text(
            "select n.channel, case when a.status_code between 200 and 299 then 'success' "
            "when a.status_code is null and a.error is null then 'success' "
            "else 'failure' end, count(*) from delivery_attempts a "
            "join notifications n on n.id = a.notification_id group by 1, 2"
        )
    ).all()
    for channel, outcome, count in rows:
        family.add_metric([channel, outcome], count)
    yield family


def _reviews(conn: sa.Connection) -> Iterator[Metric]:
    """Review outcomes per task (a counter: review rows are never deleted, retention only
    blanks their content) and the QA precision estimate of ``succeeded`` per task with its
    95 % Wilson interval. No tenant labels: every tenant's reviews together."""
    from ponder.reviews.stats import precision_estimate

    outcomes = CounterMetricFamily(
        "ponder_reviews", "Review decisions by task and decision", labels=["task", "decision"]
    )
    precision = GaugeMetricFamily(
        "ponder_qa_precision",
        "Share of QA-sampled succeeded jobs a reviewer approved as is",
        labels=["task"],
    )
    low = GaugeMetricFamily(
        "ponder_qa_precision_low", "Lower bound of the 95 % Wilson interval", labels=["task"]
    )
    high = GaugeMetricFamily(
        "ponder_qa_precision_high", "Upper bound of the 95 % Wilson interval", labels=["task"]
    )
    sample = GaugeMetricFamily(
        "ponder_qa_reviewed", "QA-sampled succeeded jobs reviewed", labels=["task"]
    )
    qa: dict[str, list[int]] = {}
    rows = conn.execute(
        sa.text(
            "select j.task, r.decision, r.was_sampled, count(*) from reviews r "
            "join jobs j on j.id = r.job_id group by 1, 2, 3"
        )
    ).all()
    by_decision: dict[tuple[str, str], int] = {}
    for task, decision, sampled, count in rows:
        by_decision[(task, decision)] = by_decision.get((task, decision), 0) + count
        if sampled:
            acc = qa.setdefault(task, [0, 0])
            acc[0] += count if decision == "approved" else 0
            acc[1] += count
    for (task, decision), count in sorted(by_decision.items()):
        outcomes.add_metric([task, decision], count)
    for task, (approved, n) in sorted(qa.items()):
        estimate = precision_estimate(approved, n)
        precision.add_metric([task], estimate["precision"])
        low.add_metric([task], estimate["low"])
        high.add_metric([task], estimate["high"])
        sample.add_metric([task], n)
    yield outcomes
    yield precision
    yield low
    yield high
    yield sample


def _alerts(conn: sa.Connection, settings: Settings) -> Metric:
    from ponder.ops.alerts import check_alerts

    family = GaugeMetricFamily(
        "ponder_alert_active", "1 while an alert condition holds", labels=["kind", "task"]
    )
    for alert in check_alerts(conn, settings):
        family.add_metric([alert.kind, alert.task], 1)
    return family


def _queue_depth(settings: Settings) -> Metric:
    import redis

    family = GaugeMetricFamily(
        "ponder_queue_depth", "Messages waiting in the broker, by queue", labels=["queue"]
    )
    client: Any = redis.Redis.from_url(settings.broker.url, socket_timeout=2)
    try:
        for queue in QUEUES:
            # Celery's Redis priorities live in sub-lists named queue:<priority>.
            keys = [queue, *(f"{queue}:{p}" for p in range(1, 10))]
            family.add_metric([queue], sum(int(client.llen(k)) for k in keys))
    finally:
        client.close()
    return family


def registry(settings: Settings) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(PonderCollector(settings))
    return reg
