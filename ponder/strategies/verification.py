"""A sample verified into a scored candidate: the task's verifiers on the answer after its
thinking, and the model-judge questions asked once per job however many candidates repeat
them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel

from ponder.engines.base import GenerationResult, Sample, p_yes
from ponder.engines.confidence import EARLY_STOP_REASON
from ponder.strategies.thinking import split_thinking
from ponder.tasktypes import TaskType
from ponder.verify import (
    SCHEMA_VERIFIER,
    AskYesNo,
    Verdict,
    aggregate_score,
    failing_checks,
    passes_required,
    verify_candidate,
)

JUDGE_SYSTEM_PROMPT = "You check one claim about a document. Answer only yes or no."
STOPPED_FINDING = "stopped early by its token confidence; an unfinished answer is not checked"


@dataclass
class ScoredCandidate:
    step: str
    idx: int
    text: str
    parsed: BaseModel | None
    verdicts: list[Verdict]
    mean_logprob: float | None
    min_logprob: float | None
    completion_tokens: int
    finish_reason: str | None
    id: str | None = None

    @property
    def score(self) -> float:
        return aggregate_score(self.verdicts)

    @property
    def passed_required(self) -> bool:
        return passes_required(self.verdicts)

    @property
    def stopped(self) -> bool:
        """Stopped early by the engine: an unfinished answer, never selected, never voting."""
        return self.finish_reason == EARLY_STOP_REASON

    def summary(self) -> dict[str, Any]:
        return {
            "candidate_id": self.id,
            "step": self.step,
            "idx": self.idx,
            "passed_required": self.passed_required,
            "score": round(self.score, 4),
            "mean_logprob": None if self.mean_logprob is None else round(self.mean_logprob, 4),
            "failing": [f["verifier"] for f in failing_checks(self.verdicts)],
            **({"stopped": EARLY_STOP_REASON} if self.stopped else {}),
        }


class JudgeCall(Protocol):
    """One engine call for a judge question, charged to the job; ``step`` is the full step
    name (scope included)."""

    def __call__(
        self,
        *,
        step: str,
        messages: tuple[dict[str, str], ...],
        choice: tuple[str, ...],
        top_logprobs: int,
        max_tokens: int,
        temperature: float,
    ) -> GenerationResult: ...


class Verification:
    """Verifies samples of one job: shared by a context and its scoped children, so the judge
    memo spans the whole job."""

    def __init__(self, *, task: TaskType, document: str, judges: bool) -> None:
        self.task = task
        self.document = document
        self.judges = judges
        """Whether the task's model-judge verifiers run (frozen on the job at submission)."""
        self.judged: dict[str, float] = {}
        """P(yes) by judge prompt: a greedy yes/no is asked once per job, however many
        candidates repeat the same finding."""

    def verify(self, step: str, sample: Sample, *, judge_call: JudgeCall) -> ScoredCandidate:
        if sample.stopped is not None:
            parsed, verdicts = None, self._not_checked(STOPPED_FINDING)
        else:
            parsed, verdicts = self._check(step, sample, judge_call)
        return ScoredCandidate(
            step=step,
            idx=sample.index,
            text=sample.text,
            parsed=parsed,
            verdicts=verdicts,
            mean_logprob=sample.mean_logprob,
            min_logprob=sample.min_logprob,
            completion_tokens=sample.completion_tokens,
            finish_reason=sample.finish_reason,
        )

    def _not_checked(self, finding: str) -> list[Verdict]:
        """A failed verdict from every verifier that would have run, so the trace stays whole
        for a candidate that is not checked."""
        specs = [s for s in self.task.verifiers if self.judges or not s.judge]
        return [
            Verdict(SCHEMA_VERIFIER, False, 0.0, True, 1.0, [finding]),
            *(Verdict(s.name, False, 0.0, s.required, s.weight, [finding]) for s in specs),
        ]

    def _check(
        self, step: str, sample: Sample, judge_call: JudgeCall
    ) -> tuple[BaseModel | None, list[Verdict]]:
        # The text is kept whole for the trace; a reasoning model's thinking is not the answer.
        return verify_candidate(
            text=split_thinking(sample.text)[1],
            output_model=self.task.output_model,
            document=self.document,
            verifiers=self.task.verifiers,
            parse=self.task.parse_output,
            ask_yes_no=self._judge_asker(step, sample.index, judge_call) if self.judges else None,
        )

    def _judge_asker(self, step: str, idx: int, judge_call: JudgeCall) -> AskYesNo:
        """What a model-judge verifier calls for each question about candidate ``idx``: one
        greedy engine call constrained to yes or no, charged to the job like any other."""
        asked = 0

        def ask_yes_no(prompt: str) -> float:
            nonlocal asked
            if prompt in self.judged:
                return self.judged[prompt]
            asked += 1
            result = judge_call(
                step=f"{step}/judge-{idx}-{asked}",
                messages=(
                    {"role": "system", "content": JUDGE_SYSTEM_PROMPT},
                    {"role": "user", "content": prompt},
                ),
                choice=("yes", "no"),
                top_logprobs=5,
                max_tokens=2,
                temperature=0.0,
            )
            self.judged[prompt] = p_yes(result.samples[0]) if result.samples else 0.0
            return self.judged[prompt]

        return ask_yes_no
