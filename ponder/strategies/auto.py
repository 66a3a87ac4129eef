"""``auto``: spend on a document only what its difficulty needs. Cheap signals (its length, the
task's own cues, optionally the model's P(yes) that it is hard) give a score in [0, 1]; the
task's band table in the knobs file maps the score to a strategy configuration, which then
runs as if the job had asked for it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from ponder.engines.base import p_yes
from ponder.prompts import render
from ponder.strategies.context import StrategyContext
from ponder.strategies.selection import StrategyOutcome
from ponder.tasktypes import TaskType
from ponder.validation import validation_problems

NAME = "auto"
DESCRIPTION = (
    "Score the document's difficulty from cheap signals and run the strategy of its band "
    "in the knobs file's [tasks.<task>.auto] table."
)
N_HELP = "samples per request of a band that sets no n"
MODEL_SIGNAL = "model"
"""The signal of the optional yes/no question: the model's P(yes) that the document is hard."""
QUESTION_TEMPLATE = "prompts/strategies/auto_difficulty.j2"


class Band(BaseModel):
    """Scores above the previous band's ``max_score`` (0 for the first), up to and including
    this band's, run ``strategy`` with ``n`` and ``params``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_score: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Optional, for reading: must equal the previous band's max_score (0 first).",
    )
    max_score: float = Field(gt=0.0, le=1.0, description="The highest score of this band.")
    strategy: str
    n: int | None = Field(
        default=None, ge=1, description="Samples per request; the job's n when not set."
    )
    params: dict[str, Any] = Field(default_factory=dict, validate_default=True)

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        # Only what was set, so ``ponder strategies`` shows the default table in a few words.
        return [(k, v) for k, v in super().__repr_args__() if k in self.model_fields_set]

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, name: str) -> str:
        from ponder.strategies import STRATEGIES  # the registry imports this module

        if name == NAME:
            raise ValueError("a band cannot route to auto itself")
        if name not in STRATEGIES:
            known = ", ".join(sorted(set(STRATEGIES) - {NAME}))
            raise ValueError(f"unknown strategy {name!r}; valid: {known}")
        return name

    @field_validator("n")
    @classmethod
    def _n_fits_the_strategy(cls, n: int | None, info: ValidationInfo) -> int | None:
        from ponder.strategies import STRATEGIES

        strategy = STRATEGIES.get(info.data.get("strategy", ""))
        if n is not None and strategy is not None and strategy.fixed_n not in (None, n):
            raise ValueError(
                f"strategy {strategy.name} draws exactly {strategy.fixed_n} sample; drop n"
            )
        return n

    @field_validator("params")
    @classmethod
    def _valid_params(cls, params: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """The strategy's own validation, defaults filled in: the job freezes every value."""
        from ponder.strategies import STRATEGIES

        strategy = STRATEGIES.get(info.data.get("strategy", ""))
        if strategy is None:
            return params  # the strategy's own error says why
        try:
            return strategy.validate_params(params)
        except ValidationError as exc:
            problems = "; ".join(validation_problems(exc))
            raise ValueError(
                f"invalid params for strategy {strategy.name}: {problems}; "
                f"valid parameters: {', '.join(strategy.parameter_help()) or 'none'}"
            ) from None


Weight = Annotated[float, Field(ge=0.0, le=100.0)]


class Params(BaseModel):
    """The band table: a task's ``[tasks.<task>.auto]`` section of the knobs file, copied
    into the job's params at submission so that its route can be replayed."""

    model_config = ConfigDict(extra="forbid")

    bands: list[Band] = Field(
        default_factory=lambda: [Band(max_score=1.0, strategy="best_of_n")],
        min_length=1,
        max_length=8,
        description="Contiguous score bands in increasing max_score, the last ending at 1.0 "
        "(a knobs table must list them; one best_of_n band otherwise).",
    )
    weights: dict[str, Weight] = Field(
        default_factory=dict,
        description="Weight of each signal in the score by name (1 when not set; 0 ignores it).",
    )
    ask_model: bool = Field(
        default=False,
        description="Also ask the model one short yes/no question (is this hard?), whose "
        "P(yes) is the 'model' signal.",
    )

    @field_validator("bands")
    @classmethod
    def _contiguous(cls, bands: list[Band]) -> list[Band]:
        previous = 0.0
        for position, band in enumerate(bands):
            start = previous if band.min_score is None else band.min_score
            if start > previous:
                before = "the band before ends" if position else "scores start"
                raise ValueError(
                    f"bands[{position}] leaves a gap: it starts at {start} but {before} at "
                    f"{previous}; start it at {previous}"
                )
            if start < previous or band.max_score <= previous:
                raise ValueError(
                    f"bands[{position}] overlaps the band before it, which ends at {previous}; "
                    "list bands in increasing max_score, each starting where the last ends"
                )
            previous = band.max_score
        if previous != 1.0:
            raise ValueError(
                f"the last band ends at {previous}, leaving higher scores without a band; "
                "end it at max_score = 1.0"
            )
        return bands

    def band_for(self, score: float) -> tuple[int, Band]:
        """The band holding ``score`` and its position; the table covers all of [0, 1]."""
        for position, band in enumerate(self.bands):
            if score <= band.max_score:
                return position, band
        return len(self.bands) - 1, self.bands[-1]


def signal_names(task: TaskType) -> set[str]:
    """The signals ``auto`` may measure for ``task``: what ``weights`` can name."""
    return {*task.difficulty(""), MODEL_SIGNAL}


def difficulty_score(signals: dict[str, float], weights: dict[str, float]) -> float:
    """Weighted mean of the signals (weight 1 unless set); 0 when every weight is 0."""
    total = sum(weights.get(name, 1.0) for name in signals)
    if total == 0:
        return 0.0
    return sum(weights.get(name, 1.0) * value for name, value in signals.items()) / total


def run(ctx: StrategyContext) -> StrategyOutcome:
    from ponder.strategies import STRATEGIES  # the registry imports this module

    params = Params.model_validate(ctx.config.params)
    signals = ctx.task.difficulty(ctx.document)
    if params.ask_model:
        signals[MODEL_SIGNAL] = _model_says_hard(ctx)
    score = difficulty_score(signals, params.weights)
    position, band = params.band_for(score)
    strategy = STRATEGIES[band.strategy]
    n = strategy.fixed_n or band.n or ctx.config.n
    route = {"band": position, "strategy": band.strategy, "n": n, "score": round(score, 4)}
    ctx.event(
        "route",
        signals={name: round(value, 4) for name, value in signals.items()},
        weights=params.weights,
        max_score=band.max_score,
        params=band.params,
        **route,
    )
    child = ctx.scoped(f"{band.strategy}/", name=band.strategy, params=band.params)
    child.config = child.config.model_copy(update={"n": n})
    outcome = strategy.run(child)  # its candidates and tokens land in ctx
    outcome.rationale["route"] = route
    return outcome


def _model_says_hard(ctx: StrategyContext) -> float:
    """One greedy yes/no call on the task's own prompt (its prefix is cached for the samples
    that follow): P(yes) that the document is hard."""
    system, user = ctx.task.messages(ctx.document)
    prompt = render(QUESTION_TEMPLATE, task_prompt=user["content"])
    result = ctx.generate(
        step="route",
        messages=(system, {"role": "user", "content": prompt}),
        choice=("yes", "no"),
        top_logprobs=5,
        max_tokens=2,
        temperature=0.0,
    )
    return p_yes(result.samples[0]) if result.samples else 0.0
