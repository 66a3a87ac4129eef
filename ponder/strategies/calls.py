"""The job's engine calls: fitted to the budget, charged once (to the ledger and the job's
counters together), verified and recorded; a step an earlier attempt recorded is reused."""

from __future__ import annotations

import time
from typing import Any, Protocol

from ponder.engines.base import Engine, GenerationRequest, GenerationResult, Sample
from ponder.engines.confidence import EarlyStop
from ponder.strategies.budget import Budget, Messages
from ponder.strategies.config import StrategyConfig
from ponder.strategies.early_stop import stop_event
from ponder.strategies.thinking import sample_thinking
from ponder.strategies.verification import ScoredCandidate, Verification


class Recorder(Protocol):
    """Writes the trace and the job's accounting as they happen. Implementations refuse writes
    from a run that lost its lease (``LeaseLost``)."""

    def load_step(self, step: str) -> list[ScoredCandidate] | None: ...

    def save_step(
        self, step: str, result: GenerationResult, candidates: list[ScoredCandidate]
    ) -> None: ...

    def event(self, kind: str, data: dict[str, Any]) -> None: ...

    def charge(self, result: GenerationResult, *, thinking_tokens: int = 0) -> None:
        """Add an engine call's tokens and time to the job's accounting."""
        ...


class EngineCalls:
    """Engine calls under one step prefix (a strategy run inside another has its own), sharing
    the job's engine, recorder, budget, verification and candidates with every other prefix.

    Every call is charged when it is made; a reused step is charged nothing: the attempt that
    recorded it paid for it, and the job's counters that seed the ledger already hold it."""

    def __init__(
        self,
        *,
        job_id: str,
        engine: Engine,
        recorder: Recorder,
        budget: Budget,
        verification: Verification,
        config: StrategyConfig,
        prefix: str = "",
        candidates: list[ScoredCandidate] | None = None,
    ) -> None:
        self.job_id = job_id
        self.engine = engine
        self.recorder = recorder
        self.budget = budget
        self.verification = verification
        self.config = config
        """The job's sampling defaults (temperature, max_tokens, seed, priority)."""
        self.prefix = prefix
        """Prepended to every step name, so a strategy run inside another never collides."""
        self.candidates = [] if candidates is None else candidates
        """Every verified candidate of this run, in order: what a budget stop selects from."""

    @property
    def reasoning_parser(self) -> str | None:
        """The engine's reasoning parser: it separates thinking from answers and enforces a
        thinking budget itself (None: a plain model)."""
        parser: str | None = getattr(self.engine, "reasoning_parser", None)
        return parser

    def scoped(self, prefix: str) -> EngineCalls:
        return EngineCalls(
            job_id=self.job_id,
            engine=self.engine,
            recorder=self.recorder,
            budget=self.budget,
            verification=self.verification,
            config=self.config,
            prefix=self.prefix + prefix,
            candidates=self.candidates,
        )

    def event(self, kind: str, data: dict[str, Any]) -> None:
        if self.prefix:
            data["scope"] = self.prefix
        self.recorder.event(kind, data)

    def recorded(self, step: str) -> bool:
        return self.recorder.load_step(self.step(step)) is not None

    def step(self, name: str) -> str:
        """The full name of step ``name`` of this scope, as the trace records it."""
        return self.prefix + name

    def generate(
        self,
        *,
        step: str,
        messages: Messages,
        n: int = 1,
        max_tokens: int | None = None,
        temperature: float | None = None,
        json_schema: dict[str, Any] | None = None,
        choice: tuple[str, ...] | None = None,
        top_logprobs: int = 1,
        stop: tuple[str, ...] | None = None,
        thinking: bool = False,
        early_stop: EarlyStop | None = None,
        thinking_token_budget: int | None = None,
    ) -> GenerationResult:
        """One engine call under the full step name ``step``, fitted to the budget and
        charged; ``thinking`` counts its completion tokens as thinking tokens too.
        ``thinking_token_budget`` (a reasoning engine only) bounds each sample's thinking, on
        top of ``max_tokens`` for what follows it."""
        answer_tokens = max_tokens or self.config.max_tokens
        fitted = self.budget.fit(messages, n, answer_tokens + (thinking_token_budget or 0))
        if thinking_token_budget is not None:
            # A budget cut takes from the thinking first: the answer must never be starved.
            thinking_token_budget = min(thinking_token_budget, max(0, fitted - answer_tokens))
        request = GenerationRequest(
            messages=messages,
            request_id=f"{self.job_id}:{step}",
            n=n,
            temperature=self.config.temperature if temperature is None else temperature,
            max_tokens=fitted,
            seed=self.config.seed,
            json_schema=json_schema,
            choice=choice,
            top_logprobs=top_logprobs,
            stop=stop,
            priority=self.config.priority,
            early_stop=early_stop,
            thinking_token_budget=thinking_token_budget,
        )
        result = self.engine.generate(request)
        thinking_tokens = self._thinking_tokens(result, thinking_call=thinking)
        # The job's counters first: the ledger never counts what the job row does not.
        self.recorder.charge(result, thinking_tokens=thinking_tokens)
        self.budget.charge(
            result.prompt_tokens + result.completion_tokens, thinking=thinking_tokens
        )
        return result

    def _thinking_tokens(self, result: GenerationResult, *, thinking_call: bool) -> int:
        """A thinking call thinks with every token; any other call thinks as far as the
        engine's reasoning parser says, or (a plain engine) in the ``<think>`` section a
        sample opens with."""
        if thinking_call:
            return result.completion_tokens
        parsed = self.reasoning_parser is not None
        count = self.engine.count_tokens
        return sum(sample_thinking(s, count, engine_parsed=parsed)[1] for s in result.samples)

    def sample(
        self,
        *,
        step: str,
        n: int,
        messages: Messages,
        json_schema: dict[str, Any] | None,
        temperature: float | None = None,
        early_stop: EarlyStop | None = None,
        thinking_token_budget: int | None = None,
    ) -> list[ScoredCandidate]:
        """Draw n candidates in one engine request, verify each and record them; a step
        already recorded by an earlier attempt of this job is reused, not paid for twice.
        Under ``early_stop`` the engine may stop some mid-way: they are recorded too. With
        ``thinking_token_budget`` a reasoning engine thinks first; the answers are verified."""
        step = self.step(step)
        reused = self.recorder.load_step(step)
        if reused is not None and len(reused) == n:
            self.event("reused", {"step": step, "candidates": len(reused)})
            self.candidates.extend(reused)
            return reused
        result = self.generate(
            step=step,
            messages=messages,
            n=n,
            temperature=temperature,
            json_schema=json_schema,
            early_stop=early_stop,
            thinking_token_budget=thinking_token_budget,
        )
        if len(result.samples) != n:
            # Postcondition: say so rather than select among fewer silently.
            self.event("short_sample", {"step": step, "asked": n, "got": len(result.samples)})
        candidates = [self._verify(step, sample) for sample in result.samples]
        self.recorder.save_step(step, result, candidates)
        self.candidates.extend(candidates)
        self.event(
            "samples",
            {
                "step": step,
                "n": len(candidates),
                "prompt_tokens": result.prompt_tokens,
                "cached_prompt_tokens": result.cached_prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "engine_wall_s": round(result.engine_wall_s, 3),
                "engine_started_at": result.started_at,
                "engine_finished_at": result.finished_at,
                "in_flight_at_admission": result.in_flight_at_admission,
                "candidates": [c.summary() for c in candidates],
            },
        )
        if early_stop is not None:
            self.event("early_stop", stop_event(step, result))
        self._trace_thinking(result, candidates, thinking_token_budget)
        return candidates

    def _trace_thinking(
        self,
        result: GenerationResult,
        candidates: list[ScoredCandidate],
        thinking_token_budget: int | None,
    ) -> None:
        """A reasoning model thinks before its answer: trace that apart, with the tokens it
        was charged as thinking (and the budget the engine held it to)."""
        parsed = self.reasoning_parser is not None
        for sample, c in zip(result.samples, candidates, strict=True):
            hidden, tokens = sample_thinking(sample, self.engine.count_tokens, engine_parsed=parsed)
            if hidden is None:
                continue
            data: dict[str, Any] = {
                "step": c.step, "idx": c.idx, "text": hidden, "tokens": tokens, "inline": True,
            }  # fmt: skip
            if parsed:
                data.update(parser=self.reasoning_parser, max_tokens=thinking_token_budget)
            self.event("thinking", data)

    def record_synthetic(self, step: str, text: str) -> ScoredCandidate:
        """Verify and record a candidate the strategy built itself (a vote's consensus): no
        engine call, zero tokens; reused like any step on a retry."""
        step = self.step(step)
        reused = self.recorder.load_step(step)
        if reused:
            self.candidates.extend(reused)
            return reused[0]
        sample = Sample(index=0, text=text, completion_tokens=0, finish_reason="synthetic")
        candidate = self._verify(step, sample)
        now = time.time()
        result = GenerationResult([sample], 0, 0, 0.0, "synthetic", now, now)
        self.recorder.save_step(step, result, [candidate])
        self.candidates.append(candidate)
        self.event("synthetic", {"step": step, "candidate": candidate.summary()})
        return candidate

    def _verify(self, step: str, sample: Sample) -> ScoredCandidate:
        return self.verification.verify(step, sample, judge_call=self.generate)
