"""Strategies: one module each, one signature ``run(ctx) -> StrategyOutcome``, and this
explicit registry (no discovery, no global state mutated per job)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ponder.strategies import best_of_n, single
from ponder.strategies.base import StrategyContext, StrategyOutcome


@dataclass(frozen=True)
class Strategy:
    name: str
    description: str
    run: Callable[[StrategyContext], StrategyOutcome]
    fixed_n: int | None = None
    """Strategies that always draw a set number of samples."""


STRATEGIES: dict[str, Strategy] = {
    single.NAME: Strategy(single.NAME, single.DESCRIPTION, single.run, fixed_n=1),
    best_of_n.NAME: Strategy(best_of_n.NAME, best_of_n.DESCRIPTION, best_of_n.run),
}
