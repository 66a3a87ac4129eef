"""A scripted engine double and an in-memory recorder, for unit tests of strategy logic only."""

from __future__ import annotations

from typing import Any

from ponder.engines.base import GenerationRequest, GenerationResult, Sample
from ponder.strategies.base import ScoredCandidate


class ScriptedEngine:
    model_name = "scripted"

    def __init__(self, texts: list[str], logprobs: list[float] | None = None) -> None:
        self.texts = texts
        self.logprobs = logprobs or [-0.5] * len(texts)
        self.requests: list[GenerationRequest] = []

    def generate(self, request: GenerationRequest) -> GenerationResult:
        self.requests.append(request)
        start = len(self.requests) - 1
        samples = [
            Sample(
                index=i,
                text=self.texts[(start + i) % len(self.texts)],
                completion_tokens=10,
                finish_reason="stop",
                token_logprobs=[self.logprobs[(start + i) % len(self.logprobs)]] * 10,
            )
            for i in range(request.n)
        ]
        return GenerationResult(samples, 20, 0, 0.01, "scripted", 0.0, 0.01)

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def close(self) -> None:
        pass


class MemoryRecorder:
    def __init__(self) -> None:
        self.steps: dict[str, list[ScoredCandidate]] = {}
        self.events: list[tuple[str, dict[str, Any]]] = []

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
