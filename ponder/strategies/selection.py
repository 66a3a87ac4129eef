"""Selecting the best verified candidate, and a strategy's outcome from it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ponder.strategies.verification import ScoredCandidate
from ponder.verify import failing_checks

if TYPE_CHECKING:
    from ponder.strategies.context import StrategyContext


@dataclass
class StrategyOutcome:
    status: str
    """``succeeded`` when the selected candidate passed every required verifier, else
    ``needs_review``."""
    selected: ScoredCandidate | None
    rationale: dict[str, Any] = field(default_factory=dict)


def selection_key(candidate: ScoredCandidate) -> tuple[bool, float, float]:
    logprob = candidate.mean_logprob
    return (
        candidate.passed_required,
        round(candidate.score, 6),
        logprob if logprob is not None and math.isfinite(logprob) else -math.inf,
    )


def select_best_candidate(
    candidates: list[ScoredCandidate],
) -> tuple[ScoredCandidate | None, dict[str, Any]]:
    """Rank by: passes every required verifier, then verifier score, then mean token logprob.
    A sample the engine stopped early is an unfinished answer: never selected."""
    stopped = [c for c in candidates if c.stopped]
    candidates = [c for c in candidates if not c.stopped]
    if not candidates:
        return None, {"rule": "no candidates", "ranking": [], **_stopped(stopped)}
    ranked = sorted(candidates, key=selection_key, reverse=True)
    best = ranked[0]
    if best.passed_required:
        reason = (
            f"candidate {best.step}/{best.idx} passed every required verifier; "
            f"{sum(c.passed_required for c in candidates)} of {len(candidates)} did; "
            "ties broken by verifier score, then mean token logprob"
        )
    else:
        reason = (
            f"no candidate passed every required verifier; candidate {best.step}/{best.idx} "
            "has the best verifier score and is attached for review"
        )
    return best, {
        "rule": "passed_required > score > mean_logprob",
        "reason": reason,
        "ranking": [c.summary() for c in ranked],
        **_stopped(stopped),
    }


def _stopped(stopped: list[ScoredCandidate]) -> dict[str, Any]:
    if not stopped:
        return {}
    return {"stopped_early": [f"{c.step}/{c.idx}" for c in stopped]}


def outcome_from(
    candidates: list[ScoredCandidate], ctx: StrategyContext, **extra: Any
) -> StrategyOutcome:
    best, rationale = select_best_candidate(candidates)
    rationale.update(extra)
    status = "succeeded" if best is not None and best.passed_required else "needs_review"
    if best is not None and not best.passed_required:
        rationale["failing_checks"] = failing_checks(best.verdicts)
    ctx.event("selection", status=status, **rationale)
    return StrategyOutcome(status=status, selected=best, rationale=rationale)
