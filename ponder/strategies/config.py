"""A strategy's configuration: frozen on the job at submission, so a trace can always be
replayed from it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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
