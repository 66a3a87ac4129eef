"""The ``early_stop`` parameter of the sampling strategies (``best_of_n``, ``self_consistency``
and the sampling rungs of ``adaptive``): its bounds, its one conversion to the engine's
setting, and what the trace records of the stops."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ponder.engines.base import GenerationResult
from ponder.engines.confidence import EarlyStop


class EarlyStopParams(BaseModel):
    """Stop a sample mid-generation when its token confidence falls below what the first
    finished samples showed (DeepConf); stopped samples are kept in the trace, never selected
    and never vote."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: int = Field(
        default=32, ge=1, le=1024, description="Tokens per sliding window of confidence."
    )
    warmup: int = Field(
        default=2,
        ge=1,
        le=15,
        description="Samples that finish before the threshold is set (never stopped); "
        "must be below n.",
    )
    percentile: float = Field(
        default=10.0,
        ge=0.0,
        le=100.0,
        description="Percentile of the warm-up samples' lowest window confidence used as the "
        "threshold: higher stops more.",
    )
    top_k: int = Field(
        default=5, ge=1, le=20, description="Alternatives per token scored for its confidence."
    )

    def for_request(self, n: int) -> EarlyStop | None:
        """The engine's setting for a request of ``n`` samples; None when the warm-up would
        take them all (nothing left to stop)."""
        if n <= self.warmup:
            return None
        return EarlyStop(
            window=self.window, warmup=self.warmup, percentile=self.percentile, top_k=self.top_k
        )


def stop_event(step: str, result: GenerationResult) -> dict[str, Any]:
    """What the trace records of a request's early stops: the threshold and, for each stopped
    sample, when (tokens generated) and why (its window confidence against the threshold)."""
    stops = [(s, s.stopped) for s in result.samples if s.stopped is not None]
    return {
        "step": step,
        # One threshold per request: the warm-up samples set it once.
        "threshold": round(stops[0][1].threshold, 4) if stops else None,
        "finished": len(result.samples) - len(stops),
        "stopped": [
            {
                "idx": sample.index,
                "tokens": record.tokens,
                "window_confidence": round(record.window_confidence, 4),
                "threshold": round(record.threshold, 4),
            }
            for sample, record in stops
        ],
        "stopped_tokens": sum(record.tokens for _, record in stops),
    }
