"""``adaptive``: start cheap, measure confidence, and escalate along a ladder of strategies only
while the confidence stays below a threshold; the final selection is over every candidate."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ponder.strategies.context import StrategyContext
from ponder.strategies.early_stop import EarlyStopParams
from ponder.strategies.selection import StrategyOutcome, outcome_from, select_best_candidate
from ponder.strategies.verification import ScoredCandidate
from ponder.tasktypes import TaskType

NAME = "adaptive"
DESCRIPTION = (
    "initial_n samples, then escalate along the ladder of strategies until the confidence "
    "(verifiers, agreement, token logprobs) reaches the threshold."
)
N_HELP = "samples per request of an escalation such as best_of_n"
WEIGHTS = {"verification": 0.5, "agreement": 0.25, "tokens": 0.25}
"""Verifiers are deterministic evidence, so they weigh most; the model's self-agreement and
token certainty are weaker signals of the same thing."""


class Rung(BaseModel):
    """A ladder rung that says more than a strategy's name: the model that runs it (another
    model's pool takes the job over: "Escalation across models" in docs/strategies.md), its
    samples per request and its params."""

    model_config = ConfigDict(extra="forbid")

    strategy: str = Field(description="The strategy this rung runs.")
    model: str | None = Field(
        default=None,
        description="The registry model whose pool runs the rung (None: where the job is).",
    )
    n: int | None = Field(
        default=None, ge=1, le=64, description="Samples per request (None: the job's n)."
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="The strategy's params (checked against it)."
    )

    @model_validator(mode="after")
    def _known_model_and_params(self) -> Rung:
        from ponder.config import get_settings
        from ponder.strategies import STRATEGIES  # the registry imports this module

        registry = get_settings().registry
        if self.model is not None and self.model not in registry.entries:
            # The caller's value is not echoed back (error bodies reflect no input).
            raise ValueError(f"model is not in the registry; known models: "
                             f"{', '.join(registry.names())}")  # fmt: skip
        if self.strategy in STRATEGIES:  # an unknown name is refused with the ladder's list
            self.params = STRATEGIES[self.strategy].validate_params(self.params)
        return self


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    initial_n: int = Field(default=2, ge=1, le=2, description="Samples in the cheap first try.")
    threshold: float = Field(
        default=0.8, ge=0.0, le=1.0, description="Confidence at which to stop escalating."
    )
    ladder: list[str | Rung] = Field(
        default=["best_of_n", "refine", "extended_reasoning"],
        min_length=1,
        max_length=5,
        description="Strategies to escalate to in order: a name (its default params, on the "
        'same model) or {"strategy", "model", "n", "params"}.',
    )
    early_stop: EarlyStopParams | None = Field(
        default=None,
        description="Early stop for the rungs that sample (the first try when initial_n is "
        "above the warm-up, best_of_n, self_consistency); off by default.",
    )

    @field_validator("ladder")
    @classmethod
    def _known_strategies(cls, ladder: list[str | Rung]) -> list[str | Rung]:
        from ponder.strategies import STRATEGIES  # the registry imports this module

        for position, rung in enumerate(ladder):
            name = rung if isinstance(rung, str) else rung.strategy
            if name == NAME:
                raise ValueError("adaptive cannot escalate to itself")
            if name == "auto":
                # auto routes a document to a configuration once, from its knobs table; as a
                # rung it would have no table of its own.
                raise ValueError(f"ladder[{position}]: auto routes a job, it is not a rung")
            if name not in STRATEGIES:
                # The caller's value is not echoed back (error bodies reflect no input).
                known = ", ".join(sorted(set(STRATEGIES) - {NAME, "auto"}))
                raise ValueError(f"ladder[{position}] is not a known strategy; known: {known}")
        return ladder


@dataclass(frozen=True)
class Confidence:
    """Weighted mean of the components present (``WEIGHTS``), each in [0, 1]:

    - verification: ½ × share of required verifiers the best candidate passes + ½ × its
      weighted verifier score;
    - agreement: share of the stage's candidates whose normalised answer is the most common
      one (absent with one candidate: a sample agrees with itself);
    - tokens: 0.8 × exp(mean logprob) + 0.2 × exp(min logprob) of the best candidate, so one
      near-impossible token lowers it (absent without logprobs, e.g. a vote's consensus).
    """

    verification: float
    agreement: float | None
    tokens: float | None
    value: float
    passed_required: bool


def measure_confidence(task: TaskType, candidates: list[ScoredCandidate]) -> Confidence:
    # A sample stopped early is unfinished: it neither agrees nor disagrees.
    candidates = [c for c in candidates if not c.stopped]
    best, _ = select_best_candidate(candidates)
    if best is None:
        return Confidence(0.0, None, None, 0.0, False)
    required = [v for v in best.verdicts if v.required]
    passed_share = sum(v.passed for v in required) / len(required) if required else 1.0
    parts: dict[str, float | None] = {
        "verification": 0.5 * passed_share + 0.5 * best.score,
        "agreement": _agreement(task, candidates),
        "tokens": _token_certainty(best),
    }
    present = {k: v for k, v in parts.items() if v is not None}
    value = sum(WEIGHTS[k] * v for k, v in present.items()) / sum(WEIGHTS[k] for k in present)
    return Confidence(
        verification=present["verification"],
        agreement=parts["agreement"],
        tokens=parts["tokens"],
        value=value,
        passed_required=best.passed_required,
    )


def run(ctx: StrategyContext) -> StrategyOutcome:
    from ponder.strategies import STRATEGIES  # the registry imports this module

    params = Params.model_validate(ctx.config.params)
    latest = ctx.sample(step="initial", n=params.initial_n, early_stop=params.early_stop)
    stage = "initial"
    for level in range(len(params.ladder) + 1):
        confidence = measure_confidence(ctx.task, latest)
        ctx.event("confidence", stage=stage, threshold=params.threshold, **_rounded(confidence))
        # A candidate failing a required check is never confident, however sure the model is.
        if confidence.passed_required and confidence.value >= params.threshold:
            reason = f"confidence {confidence.value:.3f} after {stage} reached the threshold"
            break
        if level == len(params.ladder):
            reason = f"ladder exhausted; confidence {confidence.value:.3f} after {stage}"
            break
        rung, prefix = _as_rung(params.ladder[level]), f"esc{level + 1}/"
        name = rung.strategy
        if ctx.needs_hand_off(rung.model, level + 1):
            assert rung.model is not None
            # Its own model's pool runs the rung; everything so far is kept and replayed there.
            ctx.hand_off(to_model=rung.model, rung=level + 1, strategy=name,
                         confidence=round(confidence.value, 4))  # fmt: skip
        why = (
            f"confidence {confidence.value:.3f} below threshold {params.threshold}"
            if confidence.passed_required
            else "the best candidate fails a required verifier"
        )
        ctx.event("escalate", to=name, prefix=prefix, reason=why,
                  **({"model": rung.model} if rung.model else {}))  # fmt: skip
        before = len(ctx.candidates)
        child = ctx.scoped(prefix, name=name, params=_rung_params(rung, params), n=rung.n)
        STRATEGIES[name].run(child)  # its candidates and tokens land in ctx
        # A rung may add nothing (refine with nothing to fix): judge the last ones again.
        latest, stage = ctx.candidates[before:] or latest, name
    ctx.event("stop", reason=reason, stage=stage)
    return outcome_from(ctx.candidates, ctx, stopped=reason, confidence=round(confidence.value, 4))


def _as_rung(rung: str | Rung) -> Rung:
    return Rung(strategy=rung) if isinstance(rung, str) else rung


def _rung_params(rung: Rung, params: Params) -> dict[str, Any]:
    """A rung's params (its own, or its strategy's defaults), with the early stop given to
    adaptive where the rung takes one and does not set its own."""
    from ponder.strategies import STRATEGIES  # the registry imports this module

    strategy = STRATEGIES[rung.strategy]
    given: dict[str, Any] = dict(rung.params)
    if (
        params.early_stop is not None
        and "early_stop" in strategy.params_model.model_fields
        and given.get("early_stop") is None
    ):
        given["early_stop"] = params.early_stop.model_dump()
    return strategy.validate_params(given)


def _agreement(task: TaskType, candidates: list[ScoredCandidate]) -> float | None:
    if len(candidates) < 2:
        return None
    normalise = task.normalise or (lambda parsed: parsed.model_dump_json())
    keys = Counter(normalise(c.parsed) for c in candidates if c.parsed is not None)
    # Unparsed candidates stay in the denominator: they agree with nothing.
    return keys.most_common(1)[0][1] / len(candidates) if keys else 0.0


def _token_certainty(best: ScoredCandidate) -> float | None:
    mean = best.mean_logprob
    if mean is None or not math.isfinite(mean):
        return None
    low = best.min_logprob if best.min_logprob is not None else mean
    return 0.8 * math.exp(mean) + 0.2 * math.exp(low)


def _rounded(confidence: Confidence) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(confidence).items()}
