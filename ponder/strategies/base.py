"""What every strategy shares: its configuration, its context (engine, task, recorder) and
the selection of the best verified candidate."""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from ponder.engines.base import Engine, GenerationRequest, GenerationResult, Sample, p_yes
from ponder.tasktypes import TaskType
from ponder.verify import (
    AskYesNo,
    Verdict,
    aggregate_score,
    failing_checks,
    passes_required,
    verify_candidate,
)

logger = logging.getLogger(__name__)


class StrategyConfig(BaseModel):
    """Frozen on the job at submission; a trace can always be replayed from it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    n: int = Field(ge=1, description="Samples drawn in one engine request.")
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(ge=1, description="Output tokens per sample.")
    seed: int | None = None
    priority: int = Field(default=5, ge=0, le=9)
    budget_tokens: int | None = Field(
        default=None, ge=1, description="Prompt + completion + thinking tokens for the whole job."
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Strategy-specific, validated by its Params model."
    )


class BudgetExhausted(Exception):
    """The job's token budget cannot pay for the next engine call."""


MIN_USEFUL_OUTPUT_TOKENS = 32

JUDGE_SYSTEM_PROMPT = "You check one claim about a document. Answer only yes or no."

_THINKING = re.compile(r"^\s*(?:<think>)?(.*?)</think>\s*", re.DOTALL)


def split_thinking(text: str) -> tuple[str | None, str]:
    """A reasoning model's ``<think>…</think>`` section, split from the answer after it
    (None when there is none). Some chat templates open the tag in the prompt, so only the
    closing tag is needed."""
    match = _THINKING.match(text)
    if match is None:
        return None, text
    return match.group(1).strip(), text[match.end() :]


@dataclass
class TokenLedger:
    """What a job has paid for, shared by a context and its scoped children."""

    spent: int = 0
    """Prompt + completion tokens, thinking included: what the budget is checked against."""
    thinking: int = 0
    """The part of ``spent`` that went on thinking rather than answers."""
    reserved: int = 0
    """Budget held back from the current calls for a step that must follow them."""


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

    def summary(self) -> dict[str, Any]:
        return {
            "candidate_id": self.id,
            "step": self.step,
            "idx": self.idx,
            "passed_required": self.passed_required,
            "score": round(self.score, 4),
            "mean_logprob": None if self.mean_logprob is None else round(self.mean_logprob, 4),
            "failing": [f["verifier"] for f in failing_checks(self.verdicts)],
        }


class Recorder(Protocol):
    """Writes the trace as it happens. Implementations refuse writes from a run that lost its
    lease (``LeaseLost``)."""

    def load_step(self, step: str) -> list[ScoredCandidate] | None: ...

    def save_step(
        self, step: str, result: GenerationResult, candidates: list[ScoredCandidate]
    ) -> None: ...

    def event(self, kind: str, data: dict[str, Any]) -> None: ...

    def charge(self, result: GenerationResult, *, thinking_tokens: int = 0) -> None:
        """Add an engine call's tokens and time to the job's accounting."""
        ...


@dataclass
class StrategyOutcome:
    status: str
    """``succeeded`` when the selected candidate passed every required verifier, else
    ``needs_review``."""
    selected: ScoredCandidate | None
    rationale: dict[str, Any] = field(default_factory=dict)


class StrategyContext:
    def __init__(
        self,
        *,
        job_id: str,
        task: TaskType,
        document: str,
        config: StrategyConfig,
        engine: Engine,
        recorder: Recorder,
        judges: bool = False,
        time_limit_s: float | None = None,
    ) -> None:
        self.job_id = job_id
        self.task = task
        self.document = document
        self.config = config
        self.engine = engine
        self.recorder = recorder
        self.candidates: list[ScoredCandidate] = []
        """Every verified candidate of this run, in order: what a budget stop selects from."""
        self.ledger = TokenLedger()
        self.step_prefix = ""
        """Prepended to every step name, so a strategy run inside another never collides."""
        self.judges = judges
        """Whether the task's model-judge verifiers run (frozen on the job at submission)."""
        self.judged: dict[str, float] = {}
        """P(yes) by judge prompt: a greedy yes/no is asked once per job, however many
        candidates repeat the same finding."""
        self.time_limit_s = time_limit_s
        self.deadline = time.monotonic() + time_limit_s if time_limit_s else None
        """No engine call starts after it (``worker.job_time_limit_s``); the run ends with
        what it has, as when the token budget runs out."""

    @property
    def tokens_spent(self) -> int:
        return self.ledger.spent

    @tokens_spent.setter
    def tokens_spent(self, value: int) -> None:
        self.ledger.spent = value

    @property
    def thinking_tokens(self) -> int:
        return self.ledger.thinking

    @thinking_tokens.setter
    def thinking_tokens(self, value: int) -> None:
        self.ledger.thinking = value

    def scoped(self, prefix: str, *, name: str, params: dict[str, Any]) -> StrategyContext:
        """A child context for running strategy ``name`` inside this one: same engine,
        recorder, candidates and token ledger, its own params, step names under ``prefix``."""
        child = StrategyContext(
            job_id=self.job_id,
            task=self.task,
            document=self.document,
            config=self.config.model_copy(update={"name": name, "params": params}),
            engine=self.engine,
            recorder=self.recorder,
            judges=self.judges,
        )
        child.candidates = self.candidates
        child.judged = self.judged
        child.ledger = self.ledger
        child.step_prefix = self.step_prefix + prefix
        child.time_limit_s, child.deadline = self.time_limit_s, self.deadline
        return child

    def event(self, kind: str, **data: Any) -> None:
        if self.step_prefix:
            data["scope"] = self.step_prefix
        self.recorder.event(kind, data)

    def recorded(self, step: str) -> bool:
        """Whether an earlier attempt of this job already recorded ``step``, so the raw calls
        that led up to it need not be paid for again."""
        return self.recorder.load_step(self.step_prefix + step) is not None

    def follow_up(self, assistant: str, user: str) -> tuple[dict[str, str], ...]:
        """The task's messages, then an assistant turn and the user's reply to it."""
        return (
            *self.task.messages(self.document),
            {"role": "assistant", "content": assistant},
            {"role": "user", "content": user},
        )

    def remaining_budget(self) -> int | None:
        if self.config.budget_tokens is None:
            return None
        return self.config.budget_tokens - self.ledger.spent - self.ledger.reserved

    @contextmanager
    def reserving(self, tokens: int) -> Iterator[None]:
        """Hold ``tokens`` of the budget back from the calls made inside (a search), so what
        must follow (the structured answer) can still be paid for."""
        self.ledger.reserved += tokens
        try:
            yield
        finally:
            self.ledger.reserved -= tokens

    def _fit_to_budget(self, messages: tuple[dict[str, str], ...], n: int, max_tokens: int) -> int:
        """The max_tokens this call may use so the job never exceeds its budget: the prompt
        (counted with a margin for the chat template) plus n full-length samples must fit."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise BudgetExhausted(f"the job time limit of {self.time_limit_s:.0f}s was reached")
        remaining = self.remaining_budget()
        if remaining is None:
            return max_tokens
        prompt = self.estimate_prompt_tokens(messages)
        affordable = (remaining - prompt) // n
        if affordable < MIN_USEFUL_OUTPUT_TOKENS:
            raise BudgetExhausted(
                f"budget leaves {remaining} tokens; the next call needs at least "
                f"{prompt + n * MIN_USEFUL_OUTPUT_TOKENS}"
            )
        return min(max_tokens, affordable)

    def estimate_prompt_tokens(self, messages: tuple[dict[str, str], ...]) -> int:
        """The prompt's tokens, with a margin for the chat template; never below the count."""
        return sum(self.engine.count_tokens(m["content"]) + 8 for m in messages) + 16

    def _charge(self, result: GenerationResult) -> None:
        self.tokens_spent += result.prompt_tokens + result.completion_tokens

    def generate(
        self,
        *,
        step: str,
        messages: tuple[dict[str, str], ...],
        n: int = 1,
        max_tokens: int | None = None,
        temperature: float | None = None,
        json_schema: dict[str, Any] | None = None,
        choice: tuple[str, ...] | None = None,
        top_logprobs: int = 1,
        stop: tuple[str, ...] | None = None,
        thinking: bool = False,
    ) -> GenerationResult:
        """A raw engine call (free reasoning, a judge's yes/no) under the job's budget; the
        caller records what it needs of the result in the trace. ``thinking`` counts its
        completion tokens as thinking tokens too."""
        request = GenerationRequest(
            messages=messages,
            request_id=f"{self.job_id}:{self.step_prefix}{step}",
            n=n,
            temperature=self.config.temperature if temperature is None else temperature,
            max_tokens=self._fit_to_budget(messages, n, max_tokens or self.config.max_tokens),
            seed=self.config.seed,
            json_schema=json_schema,
            choice=choice,
            top_logprobs=top_logprobs,
            stop=stop,
            priority=self.config.priority,
        )
        result = self.engine.generate(request)
        self._charge(result)
        if thinking:
            self.thinking_tokens += result.completion_tokens
        self.recorder.charge(result, thinking_tokens=result.completion_tokens if thinking else 0)
        return result

    def sample(
        self,
        *,
        step: str,
        n: int,
        messages: tuple[dict[str, str], ...] | None = None,
        temperature: float | None = None,
    ) -> list[ScoredCandidate]:
        """Draw n candidates in one engine request, verify each and record them; a step
        already recorded by an earlier attempt of this job is reused, not paid for twice."""
        raw_step, step = step, self.step_prefix + step
        reused = self.recorder.load_step(step)
        if reused is not None and len(reused) == n:
            self.event("reused", step=step, candidates=len(reused))
            self.tokens_spent += sum(c.completion_tokens for c in reused)
            self.candidates.extend(reused)
            return reused
        result = self.generate(
            step=raw_step,  # generate adds the prefix itself
            messages=messages or self.task.messages(self.document),
            n=n,
            temperature=temperature,
            json_schema=self.task.json_schema(),
        )
        if len(result.samples) != n:
            # Postcondition: say so rather than select among fewer silently.
            self.event("short_sample", step=step, asked=n, got=len(result.samples))
        candidates = [self.verify(step, sample) for sample in result.samples]
        self.recorder.save_step(step, result, candidates)
        self.candidates.extend(candidates)
        self.event(
            "samples",
            step=step,
            n=len(candidates),
            prompt_tokens=result.prompt_tokens,
            cached_prompt_tokens=result.cached_prompt_tokens,
            completion_tokens=result.completion_tokens,
            engine_wall_s=round(result.engine_wall_s, 3),
            engine_started_at=result.started_at,
            engine_finished_at=result.finished_at,
            in_flight_at_admission=result.in_flight_at_admission,
            candidates=[c.summary() for c in candidates],
        )
        return candidates

    def record_synthetic(self, step: str, text: str) -> ScoredCandidate:
        """Verify and record a candidate the strategy built itself (a vote's consensus): no
        engine call, zero tokens; reused like any step on a retry."""
        step = self.step_prefix + step
        reused = self.recorder.load_step(step)
        if reused:
            self.candidates.extend(reused)
            return reused[0]
        sample = Sample(index=0, text=text, completion_tokens=0, finish_reason="synthetic")
        candidate = self.verify(step, sample)
        now = time.time()
        result = GenerationResult([sample], 0, 0, 0.0, "synthetic", now, now)
        self.recorder.save_step(step, result, [candidate])
        self.candidates.append(candidate)
        self.event("synthetic", step=step, candidate=candidate.summary())
        return candidate

    def verify(self, step: str, sample: Sample) -> ScoredCandidate:
        # The text is kept whole for the trace; a reasoning model's thinking is not the answer.
        parsed, verdicts = verify_candidate(
            text=split_thinking(sample.text)[1],
            output_model=self.task.output_model,
            document=self.document,
            verifiers=self.task.verifiers,
            ask_yes_no=self._judge_asker(step, sample.index) if self.judges else None,
        )
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

    def _judge_asker(self, step: str, idx: int) -> AskYesNo:
        """What a model-judge verifier calls for each question about candidate ``idx``: one
        greedy engine call constrained to yes or no, charged to the job like any other."""
        asked = 0
        raw_step = step.removeprefix(self.step_prefix)  # generate adds the prefix itself

        def ask_yes_no(prompt: str) -> float:
            nonlocal asked
            if prompt in self.judged:
                return self.judged[prompt]
            asked += 1
            result = self.generate(
                step=f"{raw_step}/judge-{idx}-{asked}",
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
    """Rank by: passes every required verifier, then verifier score, then mean token logprob."""
    if not candidates:
        return None, {"rule": "no candidates", "ranking": []}
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
    }


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
