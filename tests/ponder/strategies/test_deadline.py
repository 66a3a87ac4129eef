"""The budget refuses an engine call once the job's ``complete_by`` passed, with the deadline
as the reason (the runner then ends the job with what it has; tests/e2e/test_deadlines.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ponder.strategies.budget import Budget, DeadlineReached, TokenLedger

MESSAGES = ({"role": "user", "content": "Metoprolol 50 mg twice daily."},)


def budget(complete_by: datetime | None, **kw: object) -> Budget:
    return Budget(limit=None, ledger=TokenLedger(), count_tokens=len, complete_by=complete_by,
                  **kw)  # type: ignore[arg-type]  # fmt: skip


def test_a_call_after_the_deadline_is_refused_naming_the_deadline():
    past = datetime.now(UTC) - timedelta(seconds=1)
    with pytest.raises(DeadlineReached, match="deadline .*complete_by"):
        budget(past).fit(MESSAGES, n=1, max_tokens=64)


def test_a_call_before_the_deadline_or_without_one_goes_ahead():
    future = datetime.now(UTC) + timedelta(hours=1)
    assert budget(future).fit(MESSAGES, n=1, max_tokens=64) == 64
    assert budget(None).fit(MESSAGES, n=1, max_tokens=64) == 64


def test_the_deadline_is_named_before_the_time_limit_when_both_passed():
    past = datetime.now(UTC) - timedelta(seconds=1)
    with pytest.raises(DeadlineReached):
        budget(past, time_limit_s=1e-9).fit(MESSAGES, n=1, max_tokens=64)
