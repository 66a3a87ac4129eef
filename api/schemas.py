"""Public request and response shapes. Table classes never go over the wire."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str = Field(description="Task type, e.g. contract_review or medrec_extraction.")
    document: str = Field(description="The document text.")
    strategy: str | None = Field(
        default=None,
        description="A strategy name (`ponder strategies`); default: the task's default from "
        "the knobs file, else best_of_n.",
    )
    n: int | None = Field(default=None, description="Samples for best_of_n (default 4).")
    priority: int = Field(default=5, ge=0, le=9, description="0 runs first, 9 last.")
    webhook_url: str | None = Field(default=None, max_length=2048)
    email: str | None = Field(default=None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    metadata: dict[str, Any] | None = Field(
        default=None, description="Echoed back in results and notifications."
    )
    params: dict[str, Any] | None = Field(
        default=None, description="Strategy parameters; `ponder strategies` lists them."
    )
    seed: int | None = Field(
        default=None,
        ge=0,
        le=2**31 - 1,
        description="Sampling seed for reproducible runs; sample i of a request uses seed + i.",
    )
    budget_tokens: int | None = Field(
        default=None, ge=1, description="Token budget for the whole job (prompt + output)."
    )


class Tokens(BaseModel):
    prompt: int
    completion: int
    cached_prompt: int
    thinking: int


class JobPublic(BaseModel):
    id: str
    task: str
    status: str
    priority: int
    config: dict[str, Any]
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    result: dict[str, Any] | None
    error: str | None
    tokens: Tokens
    engine_wall_s: float
    cost: float | None
    metadata: dict[str, Any] | None
    cancel_requested: bool


class JobPage(BaseModel):
    items: list[JobPublic]
    next_cursor: str | None


class TracePublic(BaseModel):
    job_id: str
    status: str
    strategy: dict[str, Any]
    candidates: list[dict[str, Any]]
    selection: dict[str, Any] | None
    steps: list[dict[str, Any]]


class ErrorPublic(BaseModel):
    error: str
    detail: dict[str, Any] = Field(default_factory=dict)
