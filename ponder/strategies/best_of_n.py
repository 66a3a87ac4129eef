"""``best_of_n``: n samples in one engine request (one prefill, shared KV cache), every
candidate verified, the best verified one selected."""

from __future__ import annotations

from ponder.strategies.context import StrategyContext
from ponder.strategies.selection import StrategyOutcome, outcome_from

NAME = "best_of_n"
DESCRIPTION = (
    "n samples in one request; select by required verifiers, then score, then mean logprob."
)


def run(ctx: StrategyContext) -> StrategyOutcome:
    return outcome_from(ctx.sample(step="sample", n=ctx.config.n), ctx)
