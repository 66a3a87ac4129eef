"""The model registry: the models a deployment serves, each by its own pool of reasoning
workers on its own queue. With no registry configured it is one entry built from the
``engine`` settings (the embedded model), so a deployment that never names a model runs as
before.

    PONDER_MODELS='[
      {"name": "small", "kind": "vllm", "model": "/models/qwen3-1.7b", "dtype": "bfloat16",
       "max_model_len": 8192, "prices": {"per_gpu_hour": 1.2}},
      {"name": "large", "kind": "openai", "model": "Qwen/Qwen3-32B",
       "base_url": "http://vllm-large:8000/v1", "dtype": "bfloat16", "max_model_len": 32768,
       "reasoning_parser": "qwen3", "prices": {"per_gpu_hour": 4.0}}
    ]'
    PONDER_DEFAULT_MODEL=small
"""

from __future__ import annotations

import functools
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_QUEUE_NAME = "reasoning"
"""The default model's queue keeps the name it had before the registry, so existing workers,
scalers and tests are unchanged; another model's queue is ``reasoning.<name>``."""


class ModelPrices(BaseModel):
    """Prices for the cost of a job run on this model; all 0: no cost reported."""

    model_config = ConfigDict(extra="forbid")

    currency: str = "USD"
    per_million_prompt_tokens: float = Field(default=0.0, ge=0)
    per_million_completion_tokens: float = Field(default=0.0, ge=0)
    per_gpu_hour: float = Field(default=0.0, ge=0)
    """Charged on the engine time of the job's requests (self-hosted engines)."""

    def cost(self, *, prompt: int, completion: int, engine_s: float) -> float | None:
        if not (
            self.per_million_prompt_tokens
            or self.per_million_completion_tokens
            or self.per_gpu_hour
        ):
            return None
        return (
            prompt * self.per_million_prompt_tokens / 1e6
            + completion * self.per_million_completion_tokens / 1e6
            + engine_s / 3600 * self.per_gpu_hour
        )


class ModelEntry(BaseModel):
    """One model of the registry. Every field but ``base_url`` (only for ``openai``),
    ``reasoning_parser`` and ``prices`` must be given: a half-described model is refused at
    start-up rather than run with a guess."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")
    """What jobs, knobs and ``PONDER_WORKER__MODEL`` call it; also names its queue."""
    kind: Literal["vllm", "openai"]
    """``vllm``: an engine inside the worker process; ``openai``: an OpenAI-compatible
    server (``vllm serve``) the worker calls."""
    model: str
    """A model directory (``vllm``; empty: the embedded SmolLM2-135M-Instruct) or the served
    model name (``openai``)."""
    base_url: str = ""
    """The server's ``/v1`` URL; required for ``openai``."""
    dtype: str
    max_model_len: int = Field(ge=256)
    reasoning_parser: str | None = None
    """A vLLM reasoning parser name (``qwen3``, ``deepseek_r1``, ...): the engine separates
    the thinking from the answer with it. Checked against vLLM's registry at start-up."""
    prices: ModelPrices = Field(default_factory=ModelPrices)

    @model_validator(mode="before")
    @classmethod
    def _every_field_named(cls, data: Any) -> Any:
        # Before the fields' own checks, so the refusal names the entry, not its index.
        if isinstance(data, dict):
            required = ("name", "kind", "model", "dtype", "max_model_len")
            if missing := [field for field in required if field not in data]:
                raise ValueError(
                    f"models entry {data.get('name', '(no name)')!r}: missing {', '.join(missing)}"
                )
        return data


def queue_name(model: str, *, default: bool) -> str:
    return DEFAULT_QUEUE_NAME if default else f"{DEFAULT_QUEUE_NAME}.{model}"


class UnknownModel(ValueError):
    """A name that is not in the registry; the message lists the known ones."""


class Registry:
    """The registry in force: the entries by name and which one is the default."""

    def __init__(self, entries: list[ModelEntry], default: str) -> None:
        self.entries = {entry.name: entry for entry in entries}
        self.default = default

    def names(self) -> list[str]:
        return sorted(self.entries)

    def get(self, name: str | None) -> ModelEntry:
        """The named entry (None: the default); ``UnknownModel`` listing the known ones."""
        entry = self.entries.get(self.default if name is None else name)
        if entry is None:
            raise UnknownModel(f"unknown model; known models: {', '.join(self.names())}")
        return entry

    def queue(self, name: str | None) -> str:
        """The queue of the pool that serves the model: ``reasoning`` for the default."""
        entry = self.get(name)
        return queue_name(entry.name, default=entry.name == self.default)

    def queues(self) -> list[str]:
        return [self.queue(name) for name in self.names()]


def check_entries(entries: list[ModelEntry], default: str) -> None:
    """Refuse a registry that cannot be served, naming the entry: duplicate names, an
    ``openai`` entry without its URL, an unknown reasoning parser, a default not listed."""
    names = [entry.name for entry in entries]
    if duplicates := sorted({name for name in names if names.count(name) > 1}):
        raise ValueError(f"models: names must be unique; repeated: {', '.join(duplicates)}")
    for entry in entries:
        if entry.kind == "openai" and not entry.base_url:
            raise ValueError(f"models entry {entry.name!r}: kind openai needs base_url")
        if entry.kind == "openai" and not entry.model:
            raise ValueError(f"models entry {entry.name!r}: kind openai needs the served model")
        if entry.reasoning_parser is not None:
            known = reasoning_parsers()
            if entry.reasoning_parser not in known:
                raise ValueError(
                    f"models entry {entry.name!r}: unknown reasoning_parser "
                    f"{entry.reasoning_parser!r}; vLLM knows {', '.join(sorted(known))}"
                )
    if entries and default not in names:
        raise ValueError(
            f"default_model {default!r} is not in the registry; known models: "
            f"{', '.join(sorted(names))}"
        )


@functools.lru_cache(maxsize=1)
def reasoning_parsers() -> frozenset[str]:
    """The names vLLM's reasoning parser registry knows (imported only when an entry names
    one: vLLM is heavy to import in the API)."""
    from vllm.reasoning import ReasoningParserManager

    return frozenset(ReasoningParserManager.reasoning_parsers) | frozenset(
        ReasoningParserManager.lazy_parsers
    )
