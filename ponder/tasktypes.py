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
    template: str | None
    """Jinja2 template under ``templates/`` rendering the user message; gets ``document``.
    None for a task whose messages come with each document (``chat_completion``), which
    overrides ``messages`` and ``template_version``."""
    system_prompt: str
    verifiers: tuple[VerifierSpec, ...]
    max_document_chars: int = 50_000
    max_output_tokens: int = 512
    temperature: float = 0.7
    """Sampling temperature of the job's samples (a judge's yes/no call sets its own)."""
    strategies: frozenset[str] | None = None
    """The strategies a job of this task may ask for; None: every one."""
    normalise: Callable[[Any], Hashable] | None = None
    """Maps a parsed output to a hashable key for voting (self-consistency)."""
    items_field: str | None = None
    """The output model's list field of extracted items (``medications``), for item votes."""
    item_key: Callable[[Any], Hashable] | None = None
    """Normalised identity of one item of ``items_field``: candidates agree on an item when
    their keys are equal."""
    difficulty_signals: Callable[[str], dict[str, float]] | None = None
    """Cheap cues of how hard a document is (medication mentions, clause headings), each in
    [0, 1] with 1 the hardest, for the ``auto`` strategy's router; the same keys for every
    document, since the knobs file weighs them by name. See ``difficulty``."""

    def __post_init__(self) -> None:
        if (self.items_field is None) != (self.item_key is None):
            raise ValueError(f"task {self.name}: items_field and item_key go together")
        if self.items_field is not None and self.items_field not in self.output_model.model_fields:
            raise ValueError(f"task {self.name}: output model has no field {self.items_field!r}")

    def for_document(self, document: str) -> TaskType:
        """The task type one job runs as, checked at submission and bound again by the run.
        Most task types are the same for every document; one whose messages and answer schema
        come with each request (``chat_completion``) binds them here, raising ``ValueError``
        that names what is wrong with a document it cannot run."""
        return self

    def json_schema(self) -> dict[str, Any] | None:
        """The schema structured decoding holds each sample to; None: free text."""
        return self.output_model.model_json_schema()

    def parse_output(self, text: str) -> BaseModel:
        """A sample's answer as the output model; ``ValueError`` when it does not fit."""
        return self.output_model.model_validate_json(text)

    def messages(self, document: str, **extra: object) -> tuple[dict[str, str], ...]:
        if self.template is None:
            raise TypeError(f"task {self.name} has no template: it overrides messages")
        return (
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": render(self.template, document=document, **extra)},
        )

    def difficulty(self, document: str) -> dict[str, float]:
        """The router's signals for ``document``, each clamped to [0, 1]: ``length`` (a share
        of the task's character limit, unless the task scales it itself) and the task's own
        ``difficulty_signals``."""
        signals = {"length": len(document) / self.max_document_chars}
        if self.difficulty_signals is not None:
            signals.update(self.difficulty_signals(document))
        return {name: min(1.0, max(0.0, value)) for name, value in signals.items()}

    def template_version(self) -> str:
        if self.template is None:
            raise TypeError(f"task {self.name} has no template: it overrides template_version")
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
