"""Operational knobs without code: a TOML file with, per task type, the default strategy and
its parameters, and per-tenant caps. Re-read when it changes; a malformed file is refused
with its path, line and reason, and the previous configuration stays in force.

    [tasks.medrec_extraction]
    strategy = "adaptive"
    n = 4
    budget_tokens = 8000
    params = { threshold = 0.85, ladder = ["best_of_n", "refine"] }
    qa_sample_rate = 0.05    # 5 % of succeeded jobs go to the review queue as a QA sample

    [tasks.medrec_extraction.auto]   # the band table of strategy "auto" for this task
    bands = [
      { max_score = 0.3, strategy = "single" },
      { max_score = 0.7, strategy = "best_of_n", n = 4 },
      { max_score = 1.0, strategy = "adaptive" },
    ]
    weights = { medications = 2 }    # each signal weighs 1 unless set

    [[tasks.medrec_extraction.arms]]  # an A/B arm: 10 % of the jobs that leave their
    name = "sc8"                      # configuration to the knobs (ponder/jobs/arms.py)
    share = 0.10
    strategy = "self_consistency"
    n = 8

    [tenants.default]        # caps for every tenant without a section of its own
    max_n = 8
    max_budget_tokens = 50000
    highest_priority = 3     # a job asking for priority 0-2 runs at 3
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ponder.jobs.arms import Arm, arm_problems
from ponder.strategies.auto import NAME as AUTO
from ponder.strategies.auto import Params as BandTable
from ponder.strategies.auto import signal_names
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
    model: str | None = None
    """The registry model this task's jobs run on when they name none (default: the
    registry's default)."""
    fallback_model: str | None = None
    """The registry model this task's jobs go to while their model is unhealthy
    (ponder/jobs/routing.py); none: they wait for it."""
    auto: BandTable | None = None
    """The band table of strategy ``auto`` for this task (``[tasks.<task>.auto]``): without
    one, a job asking for ``auto`` is refused at submission."""
    arms: list[Arm] = Field(default_factory=list)
    """A/B arms (``[[tasks.<task>.arms]]``): shares of the jobs that run another
    configuration (ponder/jobs/arms.py)."""

    @field_validator("auto", mode="before")
    @classmethod
    def _bands_listed(cls, table: Any) -> Any:
        # The strategy's default (one best_of_n band) is for a job run without the knobs;
        # an operator's table says where each difficulty goes.
        if isinstance(table, dict) and "bands" not in table:
            raise ValueError("the auto table needs its bands: bands = [{ max_score = 1.0, ... }]")
        return table

    @model_validator(mode="after")
    def _known_strategy(self) -> TaskKnobs:
        from ponder.strategies import STRATEGIES

        if self.strategy == AUTO:
            if self.auto is None:
                raise ValueError(
                    "strategy 'auto' needs this task's band table: add a [tasks.<task>.auto] "
                    "section with its bands"
                )
            if self.params:
                raise ValueError(
                    "params do not apply to strategy 'auto': its configuration is the "
                    "[tasks.<task>.auto] table"
                )
        elif self.strategy is not None:
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
    text = path.read_text()
    try:
        knobs = Knobs.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"line {_line_of(text, err['loc'])}: {problem}"
            for err, problem in zip(exc.errors(), validation_problems(exc), strict=True)
        ]
        raise KnobsError(f"{path}: " + "; ".join(problems)) from exc
    if problems := arm_problems(knobs.tasks, lambda loc: _line_of(text, loc)):
        raise KnobsError(f"{path}: " + "; ".join(problems))
    if problems := _unknown_signals(knobs, text) + _unknown_models(knobs, text):
        raise KnobsError(f"{path}: " + "; ".join(problems))
    return knobs


def _unknown_models(knobs: Knobs, text: str) -> list[str]:
    """A task's ``model`` and ``fallback_model`` must name registry entries."""
    from ponder.config import get_settings

    registry = get_settings().registry
    problems = []
    for name, task_knobs in knobs.tasks.items():
        for key in ("model", "fallback_model"):
            model = getattr(task_knobs, key)
            if model is not None and model not in registry.entries:
                line = _line_of(text, ("tasks", name, key))
                problems.append(
                    f"line {line}: tasks.{name}.{key}: unknown model {model!r}; known models: "
                    f"{', '.join(registry.names())}"
                )
    return problems


def _unknown_signals(knobs: Knobs, text: str) -> list[str]:
    """A band table's weights may only name signals its task measures (a typo would weigh
    nothing, silently)."""
    from tasks.registry import TASKS

    problems = []
    for name, task_knobs in knobs.tasks.items():
        task = TASKS.get(name)
        if task is None or task_knobs.auto is None:
            continue
        known = signal_names(task)
        if unknown := sorted(set(task_knobs.auto.weights) - known):
            line = _line_of(text, ("tasks", name, "auto", "weights", unknown[0]))
            problems.append(
                f"line {line}: tasks.{name}.auto.weights: unknown signal {', '.join(unknown)}; "
                f"signals of {name}: {', '.join(sorted(known))}"
            )
    return problems


_HEADER = re.compile(r"\s*(?P<array>\[)?\[\s*(?P<name>[^\[\]]+?)\s*\]")
_KEY = re.compile(r"\s*(?P<key>[\w\"-]+)\s*=")


def _line_of(text: str, loc: tuple[Any, ...]) -> int:
    """The line of the table or key a validation error points at (best effort): the deepest
    table header on the error's path (an ``[[array]]`` table by its index), then the key
    below it the path names next, then the item of a multi-line inline array."""
    lines = text.splitlines()
    parts = list(loc)
    line, used = 1, 0
    seen: Counter[str] = Counter()
    for number, raw in enumerate(lines, 1):
        match = _HEADER.match(raw)
        if match is None:
            continue
        path = [part.strip().strip('"') for part in match.group("name").split(".")]
        ordinal = seen[".".join(path)]
        seen[".".join(path)] += 1
        end = len(path)
        if parts[:end] != path:
            continue
        if match.group("array"):
            if end >= len(parts) or parts[end] != ordinal:
                continue
            end += 1
        if end > used:
            line, used = number, end
    rest = parts[used:]
    if not rest or not isinstance(rest[0], str):
        return line
    start = line if used else 0  # below the header; anywhere for a top-level key
    for number in range(start + 1, len(lines) + 1):
        if used and _HEADER.match(lines[number - 1]):
            break  # the next table: the key is not in this one
        key = _KEY.match(lines[number - 1])
        if key is not None and key.group("key").strip('"') == rest[0]:
            return _array_item(lines, number, rest[1] if len(rest) > 1 else None)
    return line


def _array_item(lines: list[str], key_line: int, index: Any) -> int:
    """The line of item ``index`` of an inline array of tables opened at ``key_line`` and
    written one item a line; ``key_line`` itself otherwise."""
    if not isinstance(index, int):
        return key_line
    items = 0
    for number in range(key_line + 1, len(lines) + 1):
        stripped = lines[number - 1].strip()
        if _HEADER.match(lines[number - 1]) or _KEY.match(lines[number - 1]):
            break
        if stripped.startswith("{"):
            if items == index:
                return number
            items += 1
    return key_line


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
