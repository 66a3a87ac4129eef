"""The public contract of a job, in ponder/ so that config, batches and the API share it: the
fields a caller sets (one family that every way of submitting derives from) and the shapes a
job returns (its result and its trace)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)

from ponder.validation import check_email

# The fields a caller sets come in three groups, because each way of submitting takes a
# different part of them per job: the JSON and multipart submits take all (``JobBase``), a
# batch line takes the options and the content (the batch sets priority and notification
# targets once), and a nightly run takes the options and the notification targets (each inbox
# file is the content). A new field goes into its group and so reaches every way that takes
# it; tests/api/test_contract.py checks that the field sets stay equal.


class JobOptions(BaseModel):
    """How the job runs: the task and the strategy with its knobs."""

    task: str = Field(description="Task type, e.g. contract_review or medrec_extraction.")
    strategy: str | None = Field(
        default=None,
        description="A strategy name (`ponder strategies`); default: the task's default from "
        "the knobs file, else best_of_n.",
    )
    n: int | None = Field(default=None, description="Samples for best_of_n (default 4).")
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
    cache: Literal["use", "refresh", "off"] | None = Field(
        default=None,
        description="`use`: answered from an earlier job of this tenant with the same task, "
        "document and configuration that succeeded (or was approved by a reviewer), and wait "
        "for an identical one running; `refresh`: run, and answer later ones; `off`: run, "
        "never cached. Omitted: the batch's `cache`, else the deployment's `result_cache` "
        "(`use` unless its operator set another).",
    )
    model: str | None = Field(
        default=None,
        max_length=40,
        description="A model of the deployment's registry (an unknown name is refused with "
        "the known ones); default: the task's `model` in the knobs file, else the registry's "
        "default.",
    )
    review: Literal["on_failure", "always"] = Field(
        default="on_failure",
        description="`on_failure` (the default): a person reviews the job only when its answer "
        "fails a required check; `always`: a person signs off every answer, one that passed "
        "every check included (it ends `needs_review` with the `review_policy` reason), as a "
        "team does while it onboards a task or audits the verifiers.",
    )

    def job_options(self) -> dict[str, Any]:
        """These fields alone, as keyword arguments for another model of the family."""
        return self.model_dump(include=set(JobOptions.model_fields))


class JobContent(BaseModel):
    """What the job reads, and what the caller wants echoed back."""

    document: str = Field(description="The document text.")
    metadata: dict[str, Any] | None = Field(
        default=None, description="Echoed back in results and notifications."
    )


class JobNotify(BaseModel):
    """Who is told when the job ends (for a batch or a nightly run: when all its items have)."""

    webhook_url: str | None = Field(
        default=None, max_length=2048, description="Signed with the tenant's secret."
    )
    webhook_endpoint_id: str | None = Field(
        default=None,
        description="A registered endpoint (POST /v1/webhooks), signed with its own secret.",
    )
    email: str | None = Field(
        default=None, max_length=254, description="One address, told when the job ends."
    )

    @field_validator("email")
    @classmethod
    def _one_address(cls, value: str | None) -> str | None:
        return None if value is None else check_email(value)


class JobBase(JobNotify, JobContent, JobOptions):
    """Every field a caller sets on one job. Its own fields, ``priority`` and ``complete_by``,
    are set once for all the items of a batch (a nightly run: priority only, default
    ``limits.batch_priority``)."""

    priority: int = Field(default=5, ge=0, le=9, description="0 runs first, 9 last.")
    complete_by: AwareDatetime | None = Field(
        default=None,
        description="A deadline, ISO 8601 with a timezone (2026-12-01T18:00:00Z). Not started "
        "by then: the job ends `expired`. Running at it: the run stops before its next engine "
        "call and ends with what it has (the trace's `deadline_stop` says so). Within a "
        "priority, a job with an earlier deadline is claimed first.",
    )


# What a job returns. The result and the selection are JSON the run wrote, read back from the
# database: rows written before a field existed (and test fixtures) lack it, so every field
# has a default, and a field the row does not hold is left out of the answer, not shown as null.


class StoredShape(BaseModel):
    """A typed view of JSON a run stored: unknown keys pass through, absent keys stay absent."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True)

    # No return annotation: pydantic would document the return type instead of the fields.
    @model_serializer(mode="wrap")
    def _only_what_is_stored(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        data = handler(self)
        return {k: v for k, v in data.items() if k in self.model_fields_set}


class FailingCheck(StoredShape):
    """A verifier the answer failed."""

    verifier: str = ""
    required: bool = False
    """Whether passing it is needed for ``succeeded``."""
    findings: list[str] = Field(default_factory=list)
    """What is wrong, in words a person can act on."""


class CandidateSummary(StoredShape):
    """One candidate in a line: the selected one, or an entry of the selection's ranking."""

    candidate_id: str | None = None
    """The candidate's id in the trace."""
    step: str = ""
    idx: int = 0
    passed_required: bool = False
    score: float = 0.0
    """Weighted verifier score in [0, 1]."""
    mean_logprob: float | None = None
    failing: list[str] = Field(default_factory=list)
    """Names of the verifiers it failed."""


class ReviewRecord(StoredShape):
    """A person's decision on the job; ``answer`` is the answer they stand behind."""

    decision: str = ""
    """approved, corrected or rejected."""
    reviewer: str = ""
    at: str = ""
    """When, as ISO 8601."""
    provenance: str = "human_reviewed"
    answer: dict[str, Any] | None = None
    """Null when the reviewer rejected the answer."""
    review_id: str = ""


class JobResult(StoredShape):
    """What a job that ran to its end produced (every field but ``review`` is always set)."""

    output: dict[str, Any] | None = None
    """The selected candidate's answer in the task's output schema; null without one."""
    selected: CandidateSummary | None = None
    rationale: str | None = None
    """Why this candidate was selected."""
    failing_checks: list[FailingCheck] = Field(default_factory=list)
    """The checks the selected answer failed; empty when it passed every one."""
    wall_s: float = 0.0
    """Seconds the run took."""
    summary: str = ""
    """One line for a person: what was found and whether it needs review."""
    review: ReviewRecord | None = None
    """Only once a person reviewed the job."""


class Selection(StoredShape):
    """The trace's selection event: the rule, the reason and the ranking it gave."""

    status: str = ""
    """succeeded or needs_review."""
    rule: str = ""
    reason: str | None = None
    ranking: list[CandidateSummary] = Field(default_factory=list)
    """Every candidate, best first."""
    failing_checks: list[FailingCheck] = Field(default_factory=list)
    """The best candidate's failing checks, when it did not pass."""
    stopped_by: str | None = None
    """Why the run stopped early (budget, deadline, engine_refused), when it did."""


class TraceVerdict(BaseModel):
    verifier: str
    passed: bool
    score: float
    required: bool
    weight: float
    findings: list[str]


class TraceCandidate(BaseModel):
    """One sample the engine produced, as it was checked."""

    id: str
    step: str
    idx: int
    attempt: int
    text: str
    parsed: dict[str, Any] | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    mean_logprob: float | None
    min_logprob: float | None
    finish_reason: str | None
    score: float
    passed_required: bool
    model: str | None = None
    """The registry model that made it (an escalation across models uses several)."""
    selected: bool
    verdicts: list[TraceVerdict]


class TraceStep(BaseModel):
    """One event of the run, in order: started, a strategy's steps, selection, stops."""

    seq: int
    attempt: int
    kind: str
    data: dict[str, Any]
    at: datetime


class Trace(BaseModel):
    candidates: list[TraceCandidate]
    selection: Selection | None
    steps: list[TraceStep]
