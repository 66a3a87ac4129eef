"""Operational knobs without code: a TOML file with, per task type, the default strategy and
its parameters, and per-tenant caps. Re-read when it changes; a malformed file is refused
with its path, line and reason, and the previous configuration stays in force.

    [tasks.medrec_extraction]
    strategy = "adaptive"
    n = 4
    budget_tokens = 8000
    params = { threshold = 0.85, ladder = ["best_of_n", "refine"] }
    qa_sample_rate = 0.05    # 5 % of succeeded jobs go to the review queue as a QA sample

    [tenants.default]        # caps for every tenant without a section of its own
    max_n = 8
    max_budget_tokens = 50000
    highest_priority = 3     # a job asking for priority 0-2 runs at 3
"""

from __future__ import annotations

import functools
import logging
import threading
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ponder.validation import validation_problems

logger = logging.getLogger(__name__)


class TaskKnobs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: str | None = None
    n: int | None = Field(default=None, ge=1)
    budget_tokens: int | None = Field(default=None, ge=1)
    params: dict[str, Any] = Field(default_factory=dict)
    qa_sample_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    """Share of this task's ``succeeded`` jobs picked for QA review when they end (0: none),
    so that production precision can be estimated (ponder/reviews/sampling.py)."""

    @model_validator(mode="after")
    def _known_strategy(self) -> TaskKnobs:
        from ponder.strategies import STRATEGIES

        if self.strategy is not None:
            strategy = STRATEGIES.get(self.strategy)
            if strategy is None:
                raise ValueError(
                    f"unknown strategy {self.strategy!r}; valid: {', '.join(sorted(STRATEGIES))}"
                )
            strategy.validate_params(self.params)
        return self


class TenantCaps(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_n: int | None = Field(default=None, ge=1)
    max_budget_tokens: int | None = Field(default=None, ge=1)
    highest_priority: int | None = Field(default=None, ge=0, le=9)
    """The most urgent priority this tenant's jobs may have (0 is served first): a job asking
    for more is lowered to it (``jobs.capped_priority``), so one tenant cannot jump ahead of
    everyone in the broker and in the engine's scheduler. None: no cap."""


class Knobs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tasks: dict[str, TaskKnobs] = Field(default_factory=dict)
    tenants: dict[str, TenantCaps] = Field(default_factory=dict)

    def for_task(self, task: str) -> TaskKnobs:
        return self.tasks.get(task, TaskKnobs())

    def caps_for(self, tenant: str) -> TenantCaps:
        return self.tenants.get(tenant) or self.tenants.get("default") or TenantCaps()


class KnobsError(ValueError):
    """The knobs file cannot be used; the message names the file, the line and the reason."""


def parse_knobs(path: Path) -> Knobs:
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise KnobsError(f"{path}: {exc}") from exc  # "Invalid value (at line 3, column 9)"
    except OSError as exc:
        raise KnobsError(f"{path}: cannot be read: {exc.strerror}") from exc
    try:
        return Knobs.model_validate(raw)
    except ValidationError as exc:
        text = path.read_text()
        problems = [
            f"line {_line_of(text, err['loc'])}: {problem}"
            for err, problem in zip(exc.errors(), validation_problems(exc), strict=True)
        ]
        raise KnobsError(f"{path}: " + "; ".join(problems)) from exc


def _line_of(text: str, loc: tuple[Any, ...]) -> int:
    """The line of the table or key a validation error points at (best effort)."""
    keys = [str(p) for p in loc if isinstance(p, str)]
    lines = text.splitlines()
    for depth in range(len(keys), 0, -1):
        header = "[" + ".".join(keys[:depth]) + "]"
        for number, line in enumerate(lines, 1):
            stripped = line.strip()
            if stripped.startswith(header) or stripped.split("=")[0].strip() == keys[depth - 1]:
                return number
    return 1


class KnobsStore:
    """The knobs in force: re-read when the file's modification time changes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._knobs = Knobs()
        self._mtime: float | None = None
        self._lock = threading.Lock()
        self.last_error: str | None = None

    def current(self) -> Knobs:
        if self.path is None:
            return self._knobs
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            return self._knobs
        with self._lock:
            if mtime != self._mtime:
                self._mtime = mtime
                try:
                    self._knobs = parse_knobs(self.path)
                    self.last_error = None
                    logger.info("knobs loaded from %s", self.path)
                except KnobsError as exc:
                    # Keep what was in force: a typo must not take the service down.
                    self.last_error = str(exc)
                    logger.error("knobs file refused, previous configuration kept: %s", exc)
            return self._knobs


@functools.lru_cache(maxsize=4)
def knobs_store(path: Path | None) -> KnobsStore:
    return KnobsStore(path)
