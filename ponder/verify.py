"""Verifiers: checks of one candidate output (deterministic, and optionally a model judge that
asks the engine a yes/no question), and their aggregation into a score.

Every candidate gets a verdict from every verifier of its task type, including when its
output did not parse (then each check fails with that reason), so a trace is never partial.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from pydantic import BaseModel

from ponder.engines.base import EngineAborted

SCHEMA_VERIFIER = "schema"


@dataclass(frozen=True)
class CheckResult:
    """What a check function returns."""

    passed: bool
    score: float
    """0.0 to 1.0; a partial pass (3 of 4 quotes grounded) scores between."""
    findings: list[str] = field(default_factory=list)
    """Human-readable, specific: which quote was not found, which unit is invalid. Stored in
    PostgreSQL and fed back to the model by refinement; never logged."""


@dataclass(frozen=True)
class Verdict:
    verifier: str
    passed: bool
    score: float
    required: bool
    weight: float
    findings: list[str]


CheckFn = Callable[[Any, str], CheckResult]
"""``check(output, document)``: output is the task's parsed pydantic model."""

AskYesNo = Callable[[str], float]
"""``ask_yes_no(prompt) -> P(yes)``: asks the engine a question constrained to yes or no."""

JudgeCheckFn = Callable[[Any, str, AskYesNo], CheckResult]
"""``check(output, document, ask_yes_no)``: a check that asks the model."""


@dataclass(frozen=True)
class VerifierSpec:
    name: str
    check: CheckFn | JudgeCheckFn
    description: str
    weight: float = 1.0
    required: bool = True
    judge: bool = False
    """A model-judge verifier: its check is a ``JudgeCheckFn`` and calls the engine. It runs
    only when the caller passes ``ask_yes_no`` (off by default, so verification stays
    deterministic and off the engine); see ``TaskType.judges_enabled``."""

    def __post_init__(self) -> None:
        if self.weight <= 0:
            raise ValueError(f"verifier {self.name}: weight must be positive")


def verify_candidate(
    *,
    text: str,
    output_model: type[BaseModel],
    document: str,
    verifiers: Sequence[VerifierSpec],
    ask_yes_no: AskYesNo | None = None,
    parse: Callable[[str], BaseModel] | None = None,
) -> tuple[BaseModel | None, list[Verdict]]:
    """Parse ``text`` into the output model (with ``parse`` when given: a task's own reading,
    such as free text) and run every verifier on it; model-judge verifiers run only when
    ``ask_yes_no`` is given."""
    verdicts: list[Verdict] = []
    parsed: BaseModel | None
    try:
        parsed = (parse or output_model.model_validate_json)(text)
        verdicts.append(Verdict(SCHEMA_VERIFIER, True, 1.0, True, 1.0, []))
    except ValueError as exc:
        parsed = None
        reason = _schema_reason(exc)
        verdicts.append(Verdict(SCHEMA_VERIFIER, False, 0.0, True, 1.0, [reason]))
    for spec in verifiers:
        if spec.judge and ask_yes_no is None:
            continue
        if parsed is None:
            result = CheckResult(False, 0.0, ["output did not match the schema; not checked"])
        else:
            try:
                if spec.judge:
                    assert ask_yes_no is not None
                    result = cast(JudgeCheckFn, spec.check)(parsed, document, ask_yes_no)
                else:
                    result = cast(CheckFn, spec.check)(parsed, document)
            except EngineAborted:  # a judge's call aborted because the job stopped
                raise
            except Exception as exc:  # a verifier bug must not pass a candidate
                result = CheckResult(False, 0.0, [f"verifier error: {type(exc).__name__}"])
        verdicts.append(
            Verdict(
                spec.name,
                result.passed,
                max(0.0, min(1.0, result.score)),
                spec.required,
                spec.weight,
                list(result.findings),
            )
        )
    return parsed, verdicts


def _schema_reason(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[:3]
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in first]
        return "output is not valid for the schema: " + "; ".join(parts)
    return "output is not valid JSON"


def aggregate_score(verdicts: Sequence[Verdict]) -> float:
    """Weighted mean of verifier scores."""
    total = sum(v.weight for v in verdicts)
    return sum(v.weight * v.score for v in verdicts) / total if total else 0.0


def passes_required(verdicts: Sequence[Verdict]) -> bool:
    return all(v.passed for v in verdicts if v.required)


def failing_checks(verdicts: Sequence[Verdict]) -> list[dict[str, Any]]:
    return [
        {"verifier": v.verifier, "required": v.required, "findings": v.findings}
        for v in verdicts
        if not v.passed
    ]
