"""Prometheus metrics read from PostgreSQL and Redis at scrape time.

PostgreSQL is the truth, so the figures come from it rather than from counters in each
process: every API replica reports the same numbers, and a restarted process loses none.
They are read from rollups (ponder/ops/rollups.py) that triggers keep in the transaction of
each event, so a scrape reads a few dozen rows however long the history. Counters only grow:
the retention purge blanks content and deletes no counted row.
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
from ponder.ops.rollups import Labels, compact_and_read

LATENCY_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
"""Kept in SQL too (migration 0008, ``ponder_latency_le``): change both together."""
QUEUES = ("reasoning", "quarantine", "notify", "default")
TOKEN_KINDS = ("prompt", "completion", "thinking", "cached")

Rollups = dict[str, dict[Labels, float]]


class PonderCollector(Collector):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        engine = get_engine()
        rollups = compact_and_read(engine)
        with engine.connect() as conn:
            yield _alerts(conn, self.settings)
            yield from _models(conn)
        yield from _jobs(rollups)
        yield from _latency(rollups)
        yield from _verifiers(rollups)
        yield from _escalations(rollups)
        yield from _cache(rollups)
        yield from _handoffs(rollups)
        yield from _deliveries(rollups)
        yield from _reviews(rollups)
        yield from _arms(rollups)
        yield _queue_depth(self.settings)


def _jobs(rollups: Rollups) -> Iterator[Metric]:
    by_state = GaugeMetricFamily("ponder_jobs", "Jobs by state and task", labels=["status", "task"])
    tokens = CounterMetricFamily(
        "ponder_tokens", "Tokens spent by jobs, by kind and task", labels=["kind", "task"]
    )
    cost = CounterMetricFamily("ponder_cost", "Cost of jobs (configured prices)", labels=["task"])
    tasks: set[str] = set()
    for (status, task), count in sorted(rollups.get("jobs", {}).items()):
        tasks.add(task)
        if count:  # a state no job is in any more reads as absent, as a scan would find it
            by_state.add_metric([status, task], count)
    spent = rollups.get("tokens", {})
    costs = rollups.get("cost", {})
    for task in sorted(tasks):
        for kind in TOKEN_KINDS:
            tokens.add_metric([kind, task], spent.get((kind, task), 0.0))
        cost.add_metric([task], costs.get((task,), 0.0))
    yield by_state
    yield tokens
    yield cost


def _models(conn: sa.Connection) -> Iterator[Metric]:
    """Jobs by the registry model they asked for and the one that ran them (a fallback when
    they differ). A grouped scan of the jobs table: no rollup holds it yet."""
    by_model = GaugeMetricFamily(
        "ponder_jobs_by_model",
        "Jobs by registry model requested and used, and state",
        labels=["requested", "used", "status"],
    )
    fallbacks = GaugeMetricFamily(
        "ponder_fallbacks", "Jobs run on their task's fallback model", labels=["requested", "used"]
    )
    rows = conn.execute(
        sa.text(
            "SELECT config->>'model_requested', config->>'model_used', status, count(*) "
            "FROM jobs WHERE config ? 'model_used' GROUP BY 1, 2, 3"
        )
    ).all()
    moved: dict[tuple[str, str], float] = {}
    for requested, used, status, count in rows:
        pair = (requested or "", used or "")
        by_model.add_metric([*pair, status], count)
        if requested != used:
            moved[pair] = moved.get(pair, 0) + count
    for labels, count in sorted(moved.items()):
        fallbacks.add_metric(list(labels), count)
    yield by_model
    yield fallbacks


def _arms(rollups: Rollups) -> Iterator[Metric]:
    """The A/B arms (ponder/jobs/arms.py): jobs in an experiment by arm and state, their
    tokens and cost, and review decisions (migration 0012); ``ponder arms`` has the rates."""
    by_state = GaugeMetricFamily(
        "ponder_arm_jobs",
        "Jobs in an A/B experiment by task, arm and state",
        labels=["task", "arm", "status"],
    )
    tokens = CounterMetricFamily(
        "ponder_arm_tokens",
        "Tokens spent by jobs in an A/B experiment, by kind, task and arm",
        labels=["kind", "task", "arm"],
    )
    cost = CounterMetricFamily(
        "ponder_arm_cost",
        "Cost of jobs in an A/B experiment (configured prices)",
        labels=["task", "arm"],
    )
    reviews = CounterMetricFamily(
        "ponder_arm_reviews",
        "Review decisions on jobs in an A/B experiment",
        labels=["task", "arm", "decision"],
    )
    for labels, count in sorted(rollups.get("arm_jobs", {}).items()):
        if count:
            by_state.add_metric(list(labels), count)
    for labels, value in sorted(rollups.get("arm_tokens", {}).items()):
        tokens.add_metric(list(labels), value)
    for labels, value in sorted(rollups.get("arm_cost", {}).items()):
        cost.add_metric(list(labels), value)
    for labels, count in sorted(rollups.get("arm_reviews", {}).items()):
        reviews.add_metric(list(labels), count)
    yield by_state
    yield tokens
    yield cost
    yield reviews


def _latency(rollups: Rollups) -> Iterator[Metric]:
    """Submission to terminal state, for ended jobs; p50/p95/p99 come from the buckets."""
    family = HistogramMetricFamily(
        "ponder_job_latency_seconds", "Time from submission to the end of a job", labels=["task"]
    )
    per_bucket: dict[str, dict[float, float]] = {}
    for (task, le), count in rollups.get("latency", {}).items():
        bound = float("inf") if le == "+Inf" else float(le)
        per_bucket.setdefault(task, {})[bound] = count
    sums = rollups.get("latency_sum", {})
    for task, counts in sorted(per_bucket.items()):
        total = sum(counts.values())
        if not total:
            continue
        buckets: list[tuple[str, float]] = []
        running = 0.0
        for bound in LATENCY_BUCKETS:
            running += counts.get(bound, 0.0)
            buckets.append((str(bound), running))
        buckets.append(("+Inf", total))
        family.add_metric([task], buckets, sums.get((task,), 0.0))
    yield family


def _verifiers(rollups: Rollups) -> Iterator[Metric]:
    family = CounterMetricFamily(
        "ponder_verdicts",
        "Verifier verdicts by verifier and outcome",
        labels=["verifier", "passed"],
    )
    for (verifier, passed), count in sorted(rollups.get("verdicts", {}).items()):
        if count:
            family.add_metric([verifier, passed], count)
    yield family


def _escalations(rollups: Rollups) -> Iterator[Metric]:
    family = CounterMetricFamily("ponder_escalations", "Adaptive strategy escalations")
    family.add_metric([], rollups.get("escalations", {}).get((), 0.0))
    yield family


def _handoffs(rollups: Rollups) -> Iterator[Metric]:
    family = CounterMetricFamily(
        "ponder_handoffs",
        "Jobs handed to another model's pool by an adaptive ladder rung",
        labels=["from_model", "to_model"],
    )
    for (source, target), count in sorted(rollups.get("handoffs", {}).items()):
        family.add_metric([source, target], count)
    yield family


def _cache(rollups: Rollups) -> Iterator[Metric]:
    hits = CounterMetricFamily(
        "ponder_cache_hits", "Jobs answered from the result cache", labels=["task"]
    )
    saved = CounterMetricFamily(
        "ponder_cache_tokens_saved",
        "Engine tokens (prompt + completion) the cache's answers did not spend",
        labels=["task"],
    )
    for (task,), count in sorted(rollups.get("cache_hits", {}).items()):
        hits.add_metric([task], count)
    for (task,), tokens in sorted(rollups.get("cache_tokens_saved", {}).items()):
        saved.add_metric([task], tokens)
    yield hits
    yield saved


def _deliveries(rollups: Rollups) -> Iterator[Metric]:
    family = CounterMetricFamily(
        "ponder_delivery_attempts",
        "Notification delivery attempts by channel and outcome",
        labels=["channel", "outcome"],
    )
    for (channel, outcome), count in sorted(rollups.get("deliveries", {}).items()):
        family.add_metric([channel, outcome], count)
    yield family


def _reviews(rollups: Rollups) -> Iterator[Metric]:
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
    by_decision: dict[tuple[str, str], int] = {}
    for (task, decision, was_sampled), total in rollups.get("reviews", {}).items():
        count, sampled = int(total), was_sampled == "true"
        if not count:
            continue
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
        extra = [q for q in settings.registry.queues() if q not in QUEUES]  # other models' pools
        for queue in (*QUEUES, *extra):
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
