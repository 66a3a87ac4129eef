"""What a strategy sees: its configuration, the task and document, engine calls (generate,
sample), the verified candidates, trace events and the budget; nothing about persistence."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict, Unpack

from ponder.engines.base import Engine, GenerationResult
from ponder.strategies.budget import Budget, Messages, TokenLedger
from ponder.strategies.calls import EngineCalls, Recorder
from ponder.strategies.config import StrategyConfig
from ponder.strategies.early_stop import EarlyStopParams
from ponder.strategies.verification import ScoredCandidate, Verification
from ponder.tasktypes import TaskType


class CallOptions(TypedDict, total=False):
    """What a raw engine call may set besides its step and messages (``EngineCalls.generate``
    gives the defaults: the job's sampling settings, one sample, no constraint)."""

    n: int
    max_tokens: int | None
    temperature: float | None
    json_schema: dict[str, Any] | None
    choice: tuple[str, ...] | None
    top_logprobs: int
    stop: tuple[str, ...] | None
    thinking: bool
    thinking_token_budget: int | None


@dataclass(frozen=True)
class HandOffRecord:
    """A hand-off an earlier run of this job made (its ``handoff`` trace event)."""

    from_model: str
    to_model: str
    rung: int
    """The ladder position (1-based) whose model it handed the job to."""


class ModelHandOff(Exception):  # noqa: N818 - a hand-off, not an error
    """The strategy needs another model for its next step: the run ends without finishing the
    job, which continues on that model's pool with everything recorded so far reused."""

    def __init__(self, *, to_model: str, rung: int, strategy: str, confidence: float) -> None:
        super().__init__(to_model)
        self.to_model = to_model
        self.rung = rung
        self.strategy = strategy
        self.confidence = confidence


class StrategyContext:
    def __init__(
        self,
        *,
        task: TaskType,
        document: str,
        config: StrategyConfig,
        calls: EngineCalls,
        model: str | None = None,
        handoffs: tuple[HandOffRecord, ...] = (),
    ) -> None:
        self.task = task
        self.document = document
        self.config = config
        self._calls = calls
        self.model = model
        """The registry model this run's engine serves (None: a run outside the registry)."""
        self.handoffs = handoffs
        """The hand-offs earlier runs of this job made, oldest first."""

    @classmethod
    def for_job(
        cls,
        *,
        job_id: str,
        task: TaskType,
        document: str,
        config: StrategyConfig,
        engine: Engine,
        recorder: Recorder,
        ledger: TokenLedger | None = None,
        judges: bool = False,
        time_limit_s: float | None = None,
        complete_by: datetime | None = None,
        model: str | None = None,
        handoffs: tuple[HandOffRecord, ...] = (),
    ) -> StrategyContext:
        """The context of one run of a job. ``ledger`` holds what earlier attempts already
        spent (the job's counters at claim), so the budget is the whole job's. ``model``: the
        registry model of ``engine``; ``handoffs``: those earlier runs made (``hand_off``)."""
        budget = Budget(
            limit=config.budget_tokens,
            ledger=ledger or TokenLedger(),
            count_tokens=engine.count_tokens,
            time_limit_s=time_limit_s,
            complete_by=complete_by,
        )
        calls = EngineCalls(
            job_id=job_id,
            engine=engine,
            recorder=recorder,
            budget=budget,
            verification=Verification(task=task, document=document, judges=judges),
            config=config,
        )
        return cls(
            task=task,
            document=document,
            config=config,
            calls=calls,
            model=model,
            handoffs=handoffs,
        )

    @property
    def budget(self) -> Budget:
        """The job's token budget and time limit, shared with every scoped child."""
        return self._calls.budget

    @property
    def reasoning_parser(self) -> str | None:
        """The engine's vLLM reasoning parser: the model thinks before it answers and the
        engine separates and budgets the thinking (None: a plain model)."""
        return self._calls.reasoning_parser

    @property
    def candidates(self) -> list[ScoredCandidate]:
        """Every verified candidate of this run, in order: what a budget stop selects from."""
        return self._calls.candidates

    def scoped(
        self, prefix: str, *, name: str, params: dict[str, Any], n: int | None = None
    ) -> StrategyContext:
        """A child context for running strategy ``name`` inside this one: same engine,
        recorder, candidates and budget, its own params (and ``n`` if given), step names
        under ``prefix``."""
        update: dict[str, Any] = {"name": name, "params": params}
        if n is not None:
            update["n"] = n
        return StrategyContext(
            task=self.task,
            document=self.document,
            config=self.config.model_copy(update=update),
            calls=self._calls.scoped(prefix),
            model=self.model,
            handoffs=self.handoffs,
        )

    def needs_hand_off(self, model: str | None, rung: int) -> bool:
        """Whether ladder position ``rung`` (1-based), which names ``model``, must run on that
        model's pool rather than here: it names another model, and no later hand-off from that
        model shows the rung already ran there (then it is replayed here from the trace)."""
        if model is None or self.model is None or model == self.model:
            return False
        return not any(h.from_model == model and h.rung > rung for h in self.handoffs)

    def hand_off(self, *, to_model: str, rung: int, strategy: str, confidence: float) -> None:
        """End this run so that ``to_model``'s pool continues the job (``ModelHandOff``)."""
        raise ModelHandOff(to_model=to_model, rung=rung, strategy=strategy, confidence=confidence)

    def event(self, kind: str, **data: Any) -> None:
        self._calls.event(kind, data)

    def recorded(self, step: str) -> bool:
        """Whether an earlier attempt of this job already recorded ``step``, so the raw calls
        that led up to it need not be paid for again."""
        return self._calls.recorded(step)

    def follow_up(self, assistant: str, user: str) -> Messages:
        """The task's messages, then an assistant turn and the user's reply to it."""
        return (
            *self.task.messages(self.document),
            {"role": "assistant", "content": assistant},
            {"role": "user", "content": user},
        )

    def generate(
        self, *, step: str, messages: Messages, **options: Unpack[CallOptions]
    ) -> GenerationResult:
        """A raw engine call (free reasoning, a judge's yes/no) under the job's budget; the
        caller records what it needs of the result in the trace. ``thinking=True`` counts its
        completion tokens as thinking tokens too."""
        return self._calls.generate(step=self._calls.step(step), messages=messages, **options)

    def sample(
        self,
        *,
        step: str,
        n: int,
        messages: Messages | None = None,
        temperature: float | None = None,
        early_stop: EarlyStopParams | None = None,
        thinking_token_budget: int | None = None,
    ) -> list[ScoredCandidate]:
        """n candidates under the task's output schema in one engine request, verified and
        recorded (by default on the task's own messages); a step an earlier attempt of this
        job recorded is reused, not paid for twice. ``early_stop`` lets the engine stop
        hopeless samples mid-way (recorded, never selected). ``thinking_token_budget``: a
        reasoning engine's thinking per sample before its answer (see ``reasoning_parser``)."""
        engine_early_stop = early_stop.for_request(n) if early_stop is not None else None
        if early_stop is not None and engine_early_stop is None:
            self.event(
                "early_stop_off", step=step, n=n, warmup=early_stop.warmup,
                reason="the warm-up takes every sample of this request",
            )  # fmt: skip
        return self._calls.sample(
            step=step,
            n=n,
            messages=messages or self.task.messages(self.document),
            json_schema=self.task.json_schema(),
            temperature=temperature,
            early_stop=engine_early_stop,
            thinking_token_budget=thinking_token_budget,
        )

    def record_synthetic(self, step: str, text: str) -> ScoredCandidate:
        """Verify and record a candidate the strategy built itself (a vote's consensus): no
        engine call, zero tokens; reused like any step on a retry."""
        return self._calls.record_synthetic(step, text)
