"""The job's token budget, time limit and deadline: one ledger of what the job has paid for, checked
before every engine call."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

MIN_USEFUL_OUTPUT_TOKENS = 32

Messages = tuple[dict[str, str], ...]


class BudgetExhausted(Exception):
    """The job's token budget (or its time limit) cannot pay for the next engine call."""


class DeadlineReached(BudgetExhausted):
    """The job's ``complete_by`` passed: no engine call starts after it."""


@dataclass
class TokenLedger:
    """What the job has paid for over all its attempts. Seeded at claim from the job's
    counters (the earlier attempts' charges) and moved by every charge of this run together
    with them, so the budget and ``tokens`` on the job count the same tokens."""

    spent: int = 0
    """Prompt + completion tokens, thinking included: what the budget is checked against."""
    thinking: int = 0
    """The part of ``spent`` that went on thinking rather than answers."""


class Budget:
    """``budget_tokens`` and the job time limit, shared by a context and its scoped children:
    each engine call is fitted to what is left, and a call that cannot fit is refused."""

    def __init__(
        self,
        *,
        limit: int | None,
        ledger: TokenLedger,
        count_tokens: Callable[[str], int],
        time_limit_s: float | None = None,
        complete_by: datetime | None = None,
    ) -> None:
        self.limit = limit
        self.ledger = ledger
        self._count_tokens = count_tokens
        self.reserved = 0
        """Held back from the current calls for a step that must follow them."""
        self.time_limit_s = time_limit_s
        self.deadline = time.monotonic() + time_limit_s if time_limit_s else None
        """No engine call starts after it (``worker.job_time_limit_s``); the run ends with
        what it has, as when the token budget runs out."""
        self.complete_by = complete_by
        """The caller's deadline (wall clock): the same stop, with the deadline as reason."""

    @property
    def spent(self) -> int:
        return self.ledger.spent

    @property
    def thinking(self) -> int:
        return self.ledger.thinking

    def remaining(self) -> int | None:
        """Tokens the next calls may use (None: no budget), less any reservation."""
        if self.limit is None:
            return None
        return self.limit - self.ledger.spent - self.reserved

    @contextmanager
    def reserving(self, tokens: int) -> Iterator[None]:
        """Hold ``tokens`` of the budget back from the calls made inside (a search), so what
        must follow (the structured answer) can still be paid for."""
        self.reserved += tokens
        try:
            yield
        finally:
            self.reserved -= tokens

    def estimate_prompt_tokens(self, messages: Messages) -> int:
        """The prompt's tokens, with a margin for the chat template; never below the count."""
        return sum(self._count_tokens(m["content"]) + 8 for m in messages) + 16

    def fit(self, messages: Messages, n: int, max_tokens: int) -> int:
        """The max_tokens a call may use so the job never exceeds its budget: the prompt
        (counted with a margin for the chat template) plus n full-length samples must fit."""
        if self.complete_by is not None and datetime.now(UTC) >= self.complete_by:
            raise DeadlineReached(
                f"the job's deadline (complete_by {self.complete_by.isoformat()}) passed"
            )
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise BudgetExhausted(f"the job time limit of {self.time_limit_s:.0f}s was reached")
        remaining = self.remaining()
        if remaining is None:
            return max_tokens
        prompt = self.estimate_prompt_tokens(messages)
        affordable = (remaining - prompt) // n
        if affordable < MIN_USEFUL_OUTPUT_TOKENS:
            raise BudgetExhausted(
                f"budget leaves {remaining} tokens; the next call needs at least "
                f"{prompt + n * MIN_USEFUL_OUTPUT_TOKENS}"
            )
        return min(max_tokens, affordable)

    def charge(self, tokens: int, *, thinking: int = 0) -> None:
        """Add an engine call's prompt + completion tokens, ``thinking`` of them thinking."""
        self.ledger.spent += tokens
        self.ledger.thinking += thinking
