"""The engine protocol: one generation request in, n samples out, with their token accounting.

Strategies talk to this protocol only, so the in-process vLLM engine, a remote
OpenAI-compatible server and the scripted double of the unit tests are interchangeable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol


class EngineError(Exception):
    """Base class of engine failures."""


class EngineUnavailable(EngineError):
    """The engine could not be reached or failed transiently; the job may be retried."""


class EngineAborted(EngineError):
    """The request was aborted in flight because its job stopped (cancelled by the caller, or
    its run lost the lease); the run finds out why from the job row."""


class EngineRequestError(EngineError):
    """The request itself cannot be served (for example the prompt exceeds the context).
    Retrying will not help; the job fails with this message."""


@dataclass(frozen=True)
class GenerationRequest:
    """One request to the engine; ``n`` samples share one prefill of the prompt."""

    messages: tuple[dict[str, str], ...]
    """Chat messages (role, content); the engine applies the model's chat template."""
    request_id: str
    """Names the job and step, for engine-side tracing. Never contains document text."""
    n: int = 1
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 512
    seed: int | None = None
    json_schema: dict[str, Any] | None = None
    """Constrain each sample to this JSON schema (structured decoding)."""
    choice: tuple[str, ...] | None = None
    """Constrain each sample to one of these strings (for yes/no judges)."""
    stop: tuple[str, ...] | None = None
    """Stop strings (the stop string itself is not returned)."""
    top_logprobs: int = 1
    """Logprobs per generated token: 1 gives the sampled token's; more gives alternatives."""
    priority: int = 0
    """Lower runs first, as in vLLM's priority scheduling."""

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError("n must be at least 1")
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        if self.json_schema is not None and self.choice is not None:
            raise ValueError("json_schema and choice are mutually exclusive")


@dataclass
class Sample:
    index: int
    text: str
    completion_tokens: int
    finish_reason: str | None
    token_logprobs: list[float] = field(default_factory=list)
    """Log probability of each sampled token."""
    top_alternatives: list[dict[str, float]] = field(default_factory=list)
    """Per position, the top tokens and their logprobs (when top_logprobs > 1)."""

    @property
    def mean_logprob(self) -> float | None:
        if not self.token_logprobs:
            return None
        return sum(self.token_logprobs) / len(self.token_logprobs)

    @property
    def min_logprob(self) -> float | None:
        finite = [lp for lp in self.token_logprobs if math.isfinite(lp)]
        return min(finite) if finite else None


@dataclass
class GenerationResult:
    samples: list[Sample]
    prompt_tokens: int
    cached_prompt_tokens: int
    engine_wall_s: float
    model: str
    started_at: float
    """Wall-clock (epoch seconds) when the engine admitted the request."""
    finished_at: float
    in_flight_at_admission: int = 0
    """Other requests already in the engine when this one was admitted: evidence that
    jobs share a batch."""

    @property
    def completion_tokens(self) -> int:
        return sum(s.completion_tokens for s in self.samples)


def p_yes(sample: Sample) -> float:
    """P(yes) of a yes/no answer: a softmax over the yes and no alternatives at the first
    position (tokens such as " Yes" or "y" count for their word); the sampled choice when the
    engine gave no alternatives."""
    first = sample.top_alternatives[0] if sample.top_alternatives else {}
    mass = {"yes": 0.0, "no": 0.0}
    for token, logprob in first.items():
        word = token.strip().lower()
        for answer in mass:
            if word and answer.startswith(word):
                mass[answer] += math.exp(logprob)
    total = mass["yes"] + mass["no"]
    if total > 0:
        return mass["yes"] / total
    return 1.0 if sample.text.strip().lower() == "yes" else 0.0


class Engine(Protocol):
    model_name: str

    def generate(self, request: GenerationRequest) -> GenerationResult:
        """Blocking and thread-safe: many job threads call it at once."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def abort_job(self, job_id: str) -> None:
        """Abort the job's requests in flight (request ids ``{job_id}:...``): their
        ``generate`` calls raise ``EngineAborted``. Best effort and idempotent."""
        ...

    def close(self) -> None: ...
