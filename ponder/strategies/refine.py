"""``refine``: generate, verify, feed the exact failing checks back and regenerate, until every
required verifier passes, a round does not improve the score, or the round limit."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ponder.prompts import render
from ponder.strategies.context import StrategyContext
from ponder.strategies.selection import StrategyOutcome, outcome_from, select_best_candidate
from ponder.strategies.verification import ScoredCandidate
from ponder.verify import failing_checks

NAME = "refine"
DESCRIPTION = (
    "Draft, then feed the failing checks' findings back and regenerate; stops when every "
    "required check passes, a round does not improve the score, or at max_rounds."
)
N_HELP = "samples per round, in one request"
FEEDBACK_TEMPLATE = "prompts/strategies/refine_feedback.j2"


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_rounds: int = Field(
        default=3,
        ge=1,
        le=10,
        description="Most rounds of n samples each, the first draft included.",
    )


def run(ctx: StrategyContext) -> StrategyOutcome:
    params = Params.model_validate(ctx.config.params)
    # Inside adaptive, continue from the best candidate drawn so far instead of redrafting.
    seed, _ = select_best_candidate(ctx.candidates)
    drawn: list[ScoredCandidate] = []
    current = seed
    rounds = 0
    if current is None:
        drawn = ctx.sample(step="round-1", n=ctx.config.n)
        current, _ = select_best_candidate(drawn)
        rounds = 1
    while True:
        if current is None:
            reason = "the engine returned no candidate"
            break
        if current.passed_required:
            reason = "every required verifier passed"
            break
        if rounds >= params.max_rounds:
            reason = f"reached max_rounds={params.max_rounds}"
            break
        rounds += 1
        new, failures, feedback = _feedback_round(ctx, rounds, current)
        drawn.extend(new)
        best, _ = select_best_candidate(new)
        ctx.event(
            "feedback",
            round=rounds,
            step=f"round-{rounds}",
            findings=failures,
            message=feedback,
            score_before=round(current.score, 4),
            score_after=None if best is None else round(best.score, 4),
        )
        if best is None or not _improves(best, current):
            reason = f"round {rounds} did not improve the score"
            break
        current = best
    ctx.event("stop", reason=reason, rounds=rounds)
    pool = [seed, *drawn] if seed is not None else drawn
    return outcome_from(pool, ctx, stopped=reason, rounds=rounds)


def _feedback_round(
    ctx: StrategyContext, round_no: int, previous: ScoredCandidate
) -> tuple[list[ScoredCandidate], list[str], str]:
    """Regenerate after showing the model its previous answer and exactly what failed; the
    message it was shown is returned for the trace (a reader sees what the model was told)."""
    failures = _bounded(failing_checks(previous.verdicts))
    feedback = render(FEEDBACK_TEMPLATE, failures=failures)
    candidates = ctx.sample(
        step=f"round-{round_no}",
        n=ctx.config.n,
        messages=ctx.follow_up(previous.text, feedback),
    )
    return candidates, [finding for f in failures for finding in f["findings"]], feedback


MAX_FINDINGS_PER_CHECK = 3
"""Findings shown per failing check. Ten items failing ten checks would otherwise fill the
context: the previous answer, the feedback and a new answer must all fit in it."""


def _bounded(failures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Required checks first; per check, distinct findings up to the limit, then a count."""
    out = []
    for failure in sorted(failures, key=lambda f: not f["required"]):
        distinct = list(dict.fromkeys(failure["findings"]))
        shown = distinct[:MAX_FINDINGS_PER_CHECK]
        if len(distinct) > len(shown):
            shown.append(f"and {len(distinct) - len(shown)} more like these")
        out.append({**failure, "findings": shown})
    return out


def _improves(new: ScoredCandidate, old: ScoredCandidate) -> bool:
    # Passing every required check is an improvement even at an equal weighted score.
    return new.score > old.score + 1e-9 or (new.passed_required and not old.passed_required)
