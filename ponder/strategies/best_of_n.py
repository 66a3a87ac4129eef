"""``best_of_n``: n samples in one engine request (one prefill, shared KV cache), every
candidate verified, the best verified one selected."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ponder.strategies.context import StrategyContext
from ponder.strategies.early_stop import EarlyStopParams
from ponder.strategies.selection import StrategyOutcome, outcome_from

NAME = "best_of_n"
DESCRIPTION = (
    "n samples in one request; select by required verifiers, then score, then mean logprob."
)


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    early_stop: EarlyStopParams | None = Field(
        default=None,
        description="Stop samples whose token confidence falls below the first finished "
        "ones' ({window, warmup, percentile, top_k}); off by default.",
    )


def run(ctx: StrategyContext) -> StrategyOutcome:
    params = Params.model_validate(ctx.config.params)
    samples = ctx.sample(step="sample", n=ctx.config.n, early_stop=params.early_stop)
    return outcome_from(samples, ctx)
