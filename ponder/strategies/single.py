"""``single``: one sample, verified. The baseline every other strategy is measured against."""

from __future__ import annotations

from ponder.strategies.context import StrategyContext
from ponder.strategies.selection import StrategyOutcome, outcome_from

NAME = "single"
DESCRIPTION = "One sample, verified; needs_review if it fails a required check."


def run(ctx: StrategyContext) -> StrategyOutcome:
    return outcome_from(ctx.sample(step="sample", n=1), ctx)
