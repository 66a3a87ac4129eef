"""What a task type declares. Task types themselves live in ``tasks/<name>/`` packages, listed
in the explicit registry ``tasks/registry.py``."""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass
from typing import Any

from annotated_types import MaxLen
from pydantic import BaseModel

from ponder.prompts import render, template_version
from ponder.verify import VerifierSpec


def list_limit(model: type[BaseModel], field: str) -> int | None:
    """The most items the schema allows in ``model``'s list ``field`` (its ``max_length``):
    checks and gold builders read the bound from the schema instead of repeating it."""
    metadata = model.model_fields[field].metadata
    return next((m.max_length for m in metadata if isinstance(m, MaxLen)), None)


@dataclass(frozen=True)
class TaskType:
    name: str
    description: str
    output_model: type[BaseModel]
    """Bounded pydantic model; its JSON schema is sent to the engine for structured decoding."""
    template: str
    """Jinja2 template under ``templates/`` rendering the user message; gets ``document``."""
    system_prompt: str
    verifiers: tuple[VerifierSpec, ...]
    max_document_chars: int = 50_000
    max_output_tokens: int = 512
    normalise: Callable[[Any], Hashable] | None = None
    """Maps a parsed output to a hashable key for voting (self-consistency)."""
    items_field: str | None = None
    """The output model's list field of extracted items (``medications``), for item votes."""
    item_key: Callable[[Any], Hashable] | None = None
    """Normalised identity of one item of ``items_field``: candidates agree on an item when
    their keys are equal."""

    def __post_init__(self) -> None:
        if (self.items_field is None) != (self.item_key is None):
            raise ValueError(f"task {self.name}: items_field and item_key go together")
        if self.items_field is not None and self.items_field not in self.output_model.model_fields:
            raise ValueError(f"task {self.name}: output model has no field {self.items_field!r}")

    def json_schema(self) -> dict[str, Any]:
        return self.output_model.model_json_schema()

    def messages(self, document: str, **extra: object) -> tuple[dict[str, str], ...]:
        return (
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": render(self.template, document=document, **extra)},
        )

    def template_version(self) -> str:
        return template_version(self.template)

    def judges_enabled(self, judge_verifiers: Collection[str]) -> bool:
        """Whether this task's model-judge verifiers run, given the task types the caller's
        settings enable them for (``settings.tasks.judge_verifiers``, set with
        ``PONDER_TASKS__JUDGE_VERIFIERS='["contract_review"]'``; off by default)."""
        return self.name in judge_verifiers

    def verifier_names(self, *, judges: bool = False) -> list[str]:
        """The verifiers a job of this task runs (frozen on the job at submission); model
        judges only when ``judges`` (see ``judges_enabled``)."""
        return [v.name for v in self.verifiers if judges or not v.judge]
