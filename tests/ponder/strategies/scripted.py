"""A scripted engine double and an in-memory recorder, for unit tests of strategy logic only."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ponder.engines.base import GenerationRequest, GenerationResult, Sample
from ponder.strategies import STRATEGIES
from ponder.strategies.budget import BudgetExhausted, TokenLedger
from ponder.strategies.config import StrategyConfig
from ponder.strategies.context import StrategyContext
from ponder.strategies.selection import StrategyOutcome, outcome_from
from ponder.strategies.verification import ScoredCandidate
from ponder.tasktypes import TaskType

Respond = Callable[[GenerationRequest], Sequence[str | Sample]]
"""Answers one request with its samples: texts, or Samples for full control (alternatives)."""


class ScriptedEngine:
    model_name = "scripted"

    def __init__(
        self,
        texts: list[str] | None = None,
        logprobs: list[float] | None = None,
        *,
        respond: Respond | None = None,
        completion_tokens: int = 10,
    ) -> None:
        self.texts = texts or []
        self.logprobs = logprobs or [-0.5] * max(len(self.texts), 1)
        self.respond = respond
        self.completion_tokens = completion_tokens
        self.requests: list[GenerationRequest] = []
        self.results: list[GenerationResult] = []

    def generate(self, request: GenerationRequest) -> GenerationResult:
        self.requests.append(request)
        start = len(self.requests) - 1
        if self.respond is not None:
            scripted = list(self.respond(request))
        else:
            scripted = [self.texts[(start + i) % len(self.texts)] for i in range(request.n)]
        samples = [
            s if isinstance(s, Sample) else self._sample(i, s, start, request)
            for i, s in enumerate(scripted)
        ]
        # Reports what the context's budget check counts: the prompt's words and at most
        # max_tokens per sample.
        prompt = sum(self.count_tokens(m["content"]) for m in request.messages)
        result = GenerationResult(samples, prompt, 0, 0.01, "scripted", 0.0, 0.01)
        self.results.append(result)
        return result

    def _sample(self, i: int, text: str, start: int, request: GenerationRequest) -> Sample:
        tokens = min(self.completion_tokens, request.max_tokens)
        logprob = self.logprobs[(start + i) % len(self.logprobs)]
        return Sample(i, text, tokens, "stop", token_logprobs=[logprob] * tokens)

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def abort_job(self, job_id: str) -> None:
        pass  # calls return at once; nothing is ever in flight

    def close(self) -> None:
        pass


def by_step(responses: dict[str, Respond | Sequence[str]]) -> Respond:
    """Scripts each step separately, by its full name ("esc1/round-2") or else its kind (the
    last part without numbers: "round"): a list of texts is cycled over n, a callable answers."""

    def respond(request: GenerationRequest) -> Sequence[str | Sample]:
        step = request.request_id.split(":", 1)[1]
        kind = step.split("/")[-1].rstrip("0123456789-")
        script = responses[step] if step in responses else responses[kind]
        if callable(script):
            return script(request)
        return [script[i % len(script)] for i in range(request.n)]

    return respond


class MemoryRecorder:
    def __init__(self) -> None:
        self.steps: dict[str, list[ScoredCandidate]] = {}
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.charged: list[tuple[int, int, int]] = []

    def load_step(self, step: str) -> list[ScoredCandidate] | None:
        return self.steps.get(step)

    def save_step(
        self, step: str, result: GenerationResult, candidates: list[ScoredCandidate]
    ) -> None:
        for c in candidates:
            c.id = f"{step}-{c.idx}"
        self.steps[step] = candidates

    def event(self, kind: str, data: dict[str, Any]) -> None:
        self.events.append((kind, data))

    def charge(self, result: GenerationResult, *, thinking_tokens: int = 0) -> None:
        self.charged.append((result.prompt_tokens, result.completion_tokens, thinking_tokens))

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [data for k, data in self.events if k == kind]


def make_context(
    task: TaskType,
    document: str,
    engine: ScriptedEngine,
    *,
    name: str,
    n: int = 1,
    max_tokens: int = 256,
    budget_tokens: int | None = None,
    params: dict[str, Any] | None = None,
    recorder: MemoryRecorder | None = None,
    time_limit_s: float | None = None,
    ledger: TokenLedger | None = None,
    judges: bool = False,
) -> StrategyContext:
    config = StrategyConfig(
        name=name,
        n=n,
        max_tokens=max_tokens,
        budget_tokens=budget_tokens,
        params=STRATEGIES[name].validate_params(params),
    )
    return StrategyContext.for_job(
        job_id="job-1",
        task=task,
        document=document,
        config=config,
        engine=engine,
        recorder=recorder or MemoryRecorder(),
        ledger=ledger,
        judges=judges,
        time_limit_s=time_limit_s,
    )


def run_like_runner(ctx: StrategyContext) -> StrategyOutcome:
    """What the runner does: run the strategy, and on a budget stop select what was bought."""
    try:
        return STRATEGIES[ctx.config.name].run(ctx)
    except BudgetExhausted as exc:
        ctx.event("budget_stop", reason=str(exc), tokens_spent=ctx.budget.spent)
        return outcome_from(ctx.candidates, ctx, stopped_by="budget")
