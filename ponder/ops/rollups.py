"""Metric counters kept in PostgreSQL: triggers (migration 0008) append deltas in the
transaction of each event; here the deltas are folded into totals and read back.

Appending never takes a lock on a shared row, so no two writers wait on each other for a
counter; one compactor at a time (an advisory lock) moves the deltas into ``metric_totals``.
A read sums the totals and the deltas not yet folded in one statement (one snapshot), so it
never sees a delta twice or not at all.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

logger = logging.getLogger(__name__)

COMPACT_LOCK = 0x504F4E44  # "POND": one compactor at a time; the others skip

Labels = tuple[str, ...]

_COMPACT = sa.text(
    """
    with moved as (delete from metric_deltas returning metric, labels, value)
    insert into metric_totals (metric, labels, value)
    select metric, labels, sum(value) from moved group by metric, labels
    on conflict (metric, labels) do update set value = metric_totals.value + excluded.value
    """
)

_READ = sa.text(
    """
    select metric, labels, sum(value) from (
        select metric, labels, value from metric_totals
        union all
        select metric, labels, value from metric_deltas
    ) rollups group by metric, labels
    """
)


_ADD = sa.text(
    "insert into metric_deltas (metric, labels, value) values (:metric, :labels, :value)"
)


def add(conn: sa.Connection, metric: str, labels: Labels, value: float) -> None:
    """A counter's delta written by code rather than a trigger (an event no table's change
    says alone, such as a cache hit), in the caller's transaction."""
    conn.execute(_ADD, {"metric": metric, "labels": list(labels), "value": value})


def compact(conn: sa.Connection) -> bool:
    """Fold the deltas into the totals, in the caller's transaction. False when another
    compactor holds the lock (it folds the same deltas)."""
    taken = conn.execute(
        sa.text("select pg_try_advisory_xact_lock(:key)"), {"key": COMPACT_LOCK}
    ).scalar_one()
    if not taken:
        return False
    conn.execute(_COMPACT)
    return True


def read_totals(conn: sa.Connection) -> dict[str, dict[Labels, float]]:
    """Every counter, by metric and label values: a few dozen rows after a compaction."""
    totals: dict[str, dict[Labels, float]] = {}
    for metric, labels, value in conn.execute(_READ):
        totals.setdefault(metric, {})[tuple(labels)] = float(value)
    return totals


def compact_and_read(engine: sa.Engine) -> dict[str, dict[Labels, float]]:
    """What a scrape does: fold what has accumulated since the last one, then read."""
    try:
        with engine.begin() as conn:
            compact(conn)
    except sa.exc.DBAPIError as exc:  # a read is still right without the fold
        logger.warning("metric compaction skipped: %s", type(exc).__name__)
    with engine.connect() as conn:
        return read_totals(conn)
