"""A/B arms: a share of a task's jobs runs an alternative configuration from the knobs file,
chosen from the job's id so that the choice is stable and needs no state.

    [[tasks.medrec_extraction.arms]]
    name = "bon8"
    share = 0.25                    # a quarter of the jobs that leave their configuration
    strategy = "best_of_n"          # to the knobs; the rest are the "control" arm
    n = 8

Only a job that leaves strategy, n, params and model unset takes part: a caller's explicit
choice is never overridden, and such a job (arm null) is kept out of the comparison.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ponder.errors import PonderError

logger = logging.getLogger(__name__)

CONTROL = "control"
"""The arm of a job in the experiment that runs the task's default configuration."""


class Arm(BaseModel):
    """An alternative configuration for ``share`` of a task's jobs."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")
    """Shown on the job (``arm``), in ``/metrics`` and in ``ponder arms``."""
    share: float = Field(gt=0.0, le=1.0)
    """The fraction of the task's jobs in the experiment that run this arm."""
    strategy: str | None = None
    """The arm's strategy; unset: the task's default strategy."""
    n: int | None = Field(default=None, ge=1)
    params: dict[str, Any] | None = None
    """Parameters of ``strategy``, which must then be named."""
    model: str | None = None
    """A model of the registry; unset: the task's default model."""

    @model_validator(mode="after")
    def _runnable(self) -> Arm:
        from ponder.strategies import STRATEGIES
        from ponder.strategies.auto import NAME as AUTO

        if self.name == CONTROL:
            raise ValueError(f"arm name {CONTROL!r} is the jobs outside every arm: choose another")
        if self.strategy is None and self.n is None and self.params is None and self.model is None:
            raise ValueError(
                f"arm {self.name!r} changes nothing: set its strategy, n, params or model"
            )
        if self.params is not None and self.strategy is None:
            raise ValueError(f"arm {self.name!r} sets params: name the strategy they are for")
        if self.strategy == AUTO:
            if self.params is not None:
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
            strategy.validate_params(self.params or {})
        if self.model is not None:
            known = known_models()
            if self.model not in known:
                raise ValueError(f"unknown model {self.model!r}; known: {', '.join(known)}")
        return self


def known_models() -> list[str]:
    """The models a job may name: the registry's (ponder/engines/registry.py)."""
    from ponder.config import get_settings

    return get_settings().registry.names()


def arm_problems(tasks: dict[str, Any], line_of: Callable[[tuple[Any, ...]], int]) -> list[str]:
    """What a task's arms (``tasks[name].arms``) cannot be together: two of one name, shares
    above 1 (the arm that goes over is named), or strategy ``auto`` without the task's band
    table."""
    from ponder.strategies.auto import NAME as AUTO

    problems = []
    for task, knobs in tasks.items():
        seen: set[str] = set()
        total = 0.0
        for index, arm in enumerate(knobs.arms):
            where = f"line {line_of(('tasks', task, 'arms', index))}: tasks.{task}.arms"
            if arm.name in seen:
                problems.append(f"{where}: arm {arm.name!r} is named twice")
            seen.add(arm.name)
            if arm.strategy == AUTO and knobs.auto is None:
                problems.append(
                    f"{where}: arm {arm.name!r} runs strategy 'auto', which needs the task's "
                    f"band table: add a [tasks.{task}.auto] section with its bands"
                )
            total += arm.share
            if total > 1.0 + 1e-9:
                problems.append(
                    f"{where}: the shares add up to {total:g}, above 1; lower them so that "
                    "the arms fit in the task's jobs"
                )
                break
    return problems


def position(job_id: str) -> float:
    """Where the job falls in [0, 1): the first 8 bytes of the SHA-256 of its id."""
    digest = hashlib.sha256(job_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def choose(arms: list[Arm], job_id: str) -> Arm | None:
    """The arm whose slice of [0, 1) holds the job, in the file's order; None: control."""
    at, edge = position(job_id), 0.0
    for arm in arms:
        edge += arm.share
        if at < edge:
            return arm
    return None


def takes_part(request: Any) -> bool:
    """A job is in the experiment when its caller left its configuration to the knobs."""
    return all(
        getattr(request, field, None) is None for field in ("strategy", "n", "params", "model")
    )


def arm_request(request: Any, arm: Arm) -> Any:
    """The request as if its caller had asked for the arm's configuration."""
    update: dict[str, Any] = {"strategy": arm.strategy, "n": arm.n, "params": arm.params}
    if arm.model is not None and "model" in type(request).model_fields:
        update["model"] = arm.model
    return request.model_copy(update=update)


def with_arm(
    config: dict[str, Any],
    request: Any,
    *,
    arms: list[Arm],
    job_id: str,
    checked: Callable[[Any], dict[str, Any]],
) -> dict[str, Any]:
    """The job's frozen configuration with its ``arm``: the arm's own configuration (checked
    like a caller's by ``checked``) or, for control, ``config``. A job that cannot run its arm
    (a tenant's cap on n, say) runs ``config`` outside the experiment (no ``arm``) rather than
    be refused or counted in control."""
    if not arms or not takes_part(request):
        return config
    arm = choose(arms, job_id)
    if arm is None:
        return {**config, "arm": CONTROL}
    try:
        arm_config = checked(arm_request(request, arm))
    except PonderError as exc:
        logger.warning("job %s: arm %s does not fit it, runs outside the experiment: %s",
                       job_id, arm.name, type(exc).__name__)  # fmt: skip
        return config
    return {**arm_config, "arm": arm.name}


@dataclass
class ArmFigures:
    """One arm of a task's experiment, as PostgreSQL has it."""

    arm: str
    jobs: int
    ended: int
    """Jobs that ran to an end with an answer or a failure (not cancelled, expired or waiting)."""
    verified: int
    """Jobs whose machine answer passed every required check: ``succeeded``, or ``reviewed``
    after a QA sample of a ``succeeded`` one."""
    prompt_tokens: int
    completion_tokens: int
    cost: float | None
    """None when no job of the arm has a cost (no prices configured)."""
    reviews: dict[str, int] = field(default_factory=dict)
    """Review decisions (approved, corrected, rejected) on the arm's jobs."""

    @property
    def verified_rate(self) -> float | None:
        return self.verified / self.ended if self.ended else None


_REPORT = sa.text(
    """
    select config->>'arm' as arm, count(*),
        count(*) filter (where status in ('succeeded', 'needs_review', 'reviewed', 'failed')),
        count(*) filter (where status = 'succeeded' or (status = 'reviewed' and qa_sampled)),
        coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0), sum(cost)
    from jobs
    where task = :task and config ? 'arm' and (cast(:tenant as text) is null or tenant_id = :tenant)
    group by 1 order by 1
    """
)
_REVIEWS = sa.text(
    """
    select j.config->>'arm', r.decision, count(*)
    from reviews r join jobs j on j.id = r.job_id
    where j.task = :task and j.config ? 'arm'
        and (cast(:tenant as text) is null or j.tenant_id = :tenant)
    group by 1, 2
    """
)


def arm_report(conn: sa.Connection, *, task: str, tenant_id: str | None = None) -> list[ArmFigures]:
    """Every arm of ``task`` that has jobs (``control`` included), from the jobs and reviews
    tables; one tenant's jobs only when ``tenant_id`` is given."""
    bind = {"task": task, "tenant": tenant_id}
    figures = {
        arm: ArmFigures(arm, jobs, ended, verified, prompt, completion, cost)
        for arm, jobs, ended, verified, prompt, completion, cost in conn.execute(_REPORT, bind)
    }
    for arm, decision, count in conn.execute(_REVIEWS, bind):
        figures[arm].reviews[decision] = count
    return list(figures.values())
