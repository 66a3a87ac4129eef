"""One typed settings object for the api, the workers and the CLI (env prefix ``PONDER_``).

Nested sections use ``__`` in environment names: ``PONDER_DATABASE__URL``,
``PONDER_ENGINE__MODEL``, ``PONDER_LIMITS__MAX_N``. Defaults work on a development machine
with PostgreSQL and Redis on 127.0.0.1 and nothing else set.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ponder.engines.registry import ModelEntry, ModelPrices, Registry, check_entries
from ponder.jobs.contract import JobNotify, JobOptions


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ponder"


class DatabaseSettings(BaseModel):
    url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/ponder"
    """SQLAlchemy URL of the PostgreSQL database that holds every job, candidate and trace."""
    pool_size: int = 10
    retry_for_s: float = 120.0
    """How long a run keeps retrying a write while PostgreSQL is unreachable (a restart, a
    failover) before it stops and leaves the job to the reconciler."""


class BrokerSettings(BaseModel):
    url: str = "redis://127.0.0.1:6379/0"
    """Celery broker. It carries job ids only, never document text."""
    visibility_timeout_s: int = 7200
    """Must stay above the longest job time limit, or Redis redelivers a running job."""


class EngineSettings(BaseModel):
    kind: Literal["vllm", "openai"] = "vllm"
    """``vllm``: an engine inside the worker process; ``openai``: a remote OpenAI-compatible
    server such as ``python -m vllm.entrypoints.openai.api_server``."""
    model: str = ""
    """A Hugging Face model directory (or, for ``openai``, the served model name). Empty means
    the embedded SmolLM2-135M-Instruct prepared by ``ponder model prepare``."""
    base_url: str = "http://127.0.0.1:8000/v1"
    """Only for ``kind = openai``."""
    api_key: str = "EMPTY"
    dtype: str = "float32"
    """fp32 is faster than bf16 on AVX2 CPUs; use bfloat16 on GPU."""
    max_model_len: int = 4096
    kv_cache_gib: int = 1
    enforce_eager: bool = True
    seed: int = 0
    request_timeout_s: float = 600.0
    max_retries: int = 3
    reasoning_parser: str | None = None
    """vLLM's reasoning parser for a reasoning model (``deepseek_r1``, ``qwen3``, …; for
    ``openai`` the one the server runs with ``--reasoning-parser``): thinking is separated from
    the answer and budgeted by the engine. None: a plain model (two-phase extended reasoning)."""


class WorkerSettings(BaseModel):
    jobs_in_flight: int = 16
    """Jobs one reasoning worker process runs at once against its single engine."""
    lease_ttl_s: int = 60
    """A run's lease expires this long after its last heartbeat; a dead worker's job is
    claimable again after it."""
    heartbeat_s: int = 15
    max_attempts: int = 3
    """Runs of one job charged to the job before it is failed instead of looping: a run that
    lost its worker with no other job in flight there (an isolated death), or one that found
    the engine unavailable. A death in a crowd (other jobs in flight on the same worker) and
    a graceful preemption (SIGTERM) are not charged."""
    crowd_deaths_before_quarantine: int = Field(default=2, ge=0)
    """Deaths in a crowd after which the job runs only in quarantine: on the ``quarantine``
    queue, served by a worker that runs one job at a time, where a death can only be its own.
    0 turns quarantine off (a job dying in crowds is then bounded by ``max_runs`` alone)."""
    max_runs: int = Field(default=10, ge=1)
    """Ceiling on the runs of one job, whatever ended them (crowd deaths included; graceful
    preemptions excluded): bounds the cost of a job that keeps dying with other jobs."""
    shutdown_grace_s: float = Field(default=20.0, gt=0, lt=30)
    """On SIGTERM the worker stops claiming and gives its runs back to the queue (leases
    released, attempts not counted) within this many seconds; below Kubernetes' default
    ``terminationGracePeriodSeconds`` (30 s), which the manifests set to match."""
    quarantine_wait_alert_s: int = 600
    """A quarantined job still waiting after this long is logged as an error at each re-send
    (no worker serves the ``quarantine`` queue?)."""
    test_poison_marker: str = ""
    """Test-only: a run whose document contains this text kills its worker process (SIGKILL)
    a second after its claim, every time (the soak's and the fault suite's poison job).
    Empty turns it off; refused in production."""
    metrics_port: int = 0
    """The worker's Prometheus endpoint (engine requests in flight); 0 turns it off."""
    retry_base_s: float = 5.0
    """First delay before a job is retried after the engine was unavailable; doubles per try."""
    job_time_limit_s: int = 3600
    """No engine call of a run starts after this many seconds; the run then ends with what
    it has (usually ``needs_review``), as when its token budget runs out. One engine call is
    further bounded by ``engine.request_timeout_s``."""
    reconcile_every_s: int = 30
    timezone: str = "UTC"
    """The time zone beat reads cron expressions in (``nightly[].cron``)."""
    requeue_after_s: int = 120
    """A ``queued`` job untouched this long is sent to the broker again by the reconciler."""
    model: str = ""
    """The registry entry this reasoning worker serves (its engine, its queue); empty: the
    default model (ponder/engines/registry.py)."""

    @model_validator(mode="after")
    def _ceiling_above_the_poison_path(self) -> WorkerSettings:
        if self.max_runs < self.crowd_deaths_before_quarantine + self.max_attempts:
            raise ValueError(
                "worker.max_runs must be at least crowd_deaths_before_quarantine + max_attempts, "
                "or a poison job is stopped by the ceiling before quarantine can convict it"
            )
        return self


class LimitSettings(BaseModel):
    max_document_chars: int = 100_000
    max_request_bytes: int = 1_000_000
    max_json_depth: int = Field(default=32, ge=1, le=256)
    """Deepest nesting of objects and lists accepted in a JSON field (``metadata``,
    ``params``) of a job, a batch line or batch options; deeper input gets a 422."""
    min_n: int = 1
    max_n: int = 16
    default_n: int = 4
    max_tokens_per_sample: int = 1536
    page_size_max: int = 100
    tenant_rate_per_s: float = 50.0
    """Sustained requests per second per tenant (per API process); 0 turns the limit off."""
    tenant_burst: int = 200
    """Requests a tenant may send at once before the rate applies."""
    max_batch_bytes: int = 100_000_000
    """Largest JSONL upload for ``POST /v1/batches``; larger uploads get a 413."""
    max_batch_items: int = 50_000
    """Most items (lines) in one batch."""
    batch_priority: int = 7
    """Default priority of batch items: after interactive jobs (5), so a nightly run of
    thousands of documents does not hold back a job someone is waiting for."""


class TaskSettings(BaseModel):
    judge_verifiers: list[str] = Field(default_factory=list)
    """Task types whose model-judge verifiers run (e.g. ``["contract_review"]``). A judge
    asks the engine a yes/no question per finding, which costs tokens and makes verification
    depend on the model, so it is off unless a task type is named here."""


class NotifySettings(BaseModel):
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    """Upgrade the connection with STARTTLS (usually port 587)."""
    smtp_ssl: bool = False
    """Implicit TLS from the first byte (SMTPS, usually port 465)."""
    smtp_ca_file: str = ""
    """CA bundle to verify the SMTP server's certificate with; empty: the system's."""
    mail_from: str = "ponder@localhost"
    webhook_timeout_s: float = 15.0
    """Longest wait for one socket operation (connect, one write, one read) of a delivery."""
    webhook_attempt_deadline_s: float = Field(default=15.0, gt=0)
    """Longest a whole delivery attempt may take (connect, TLS, request, response headers),
    whatever the receiver's pace; past it the attempt is a failure and is retried on the
    schedule. Bounds how long one slow receiver holds a delivery worker."""
    webhook_max_in_flight_per_endpoint: int = Field(default=2, ge=1)
    """Deliveries in progress at once to one receiver (scheme, host and port); the next one is
    deferred a few seconds (not failed, not counted as an attempt), so a slow receiver holds
    at most this many delivery workers."""
    webhook_retry_schedule_s: list[float] = Field(
        default_factory=lambda: [
            5.0,
            300.0,
            1800.0,
            7200.0,
            18000.0,
            36000.0,
            50400.0,
            72000.0,
            72000.0,
        ]
    )
    """Delay before each retry of a failed delivery; one attempt plus one retry per entry.
    The default (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 20 h) spans about three days."""
    webhook_retry_jitter: float = 0.2
    """Each delay is scaled by a random factor in [1 - jitter, 1 + jitter]."""
    webhook_retry_after_max_s: float = 86_400.0
    """A receiver's ``Retry-After`` is honoured up to this many seconds."""
    webhook_allow_hosts: list[str] = Field(default_factory=list)
    """Hosts or IP addresses that may receive webhooks although they are loopback or private.
    For local development and tests only; empty in production."""
    public_base_url: str = "http://127.0.0.1:8000"
    """Used to build links to jobs in notifications."""

    @model_validator(mode="after")
    def _check_schedule(self) -> NotifySettings:
        if any(delay < 0 for delay in self.webhook_retry_schedule_s):
            raise ValueError("notify.webhook_retry_schedule_s must not hold negative delays")
        if not 0 <= self.webhook_retry_jitter < 1:
            raise ValueError("notify.webhook_retry_jitter must be in [0, 1)")
        if self.smtp_ssl and self.smtp_starttls:
            raise ValueError("set notify.smtp_ssl (implicit TLS) or smtp_starttls, not both")
        return self

    @property
    def max_delivery_attempts(self) -> int:
        return len(self.webhook_retry_schedule_s) + 1


class NightlyRunSettings(JobNotify, JobOptions):
    """One scheduled run: every file new in ``inbox`` becomes an item of one batch, with this
    run's job options (``task``, ``strategy``, ``n``, ``params``, ``seed``, ``budget_tokens``,
    as in ``POST /v1/jobs``); ``email`` and the webhook get the batch's report."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    """Names the beat entry and the batch; a file's content hash is remembered per name."""
    cron: str
    """Five fields (minute hour day-of-month month day-of-week) or @hourly, @daily, @weekly,
    @monthly; in ``worker.timezone``."""
    tenant: str
    """Name of the tenant the batch belongs to (``ponder keys create --tenant``)."""
    inbox: Path
    archive: Path | None = None
    """Where processed files are moved; default ``<inbox>/archive``."""
    suffixes: list[str] = Field(default_factory=lambda: [".txt", ".md"])
    min_age_s: float = 60.0
    """Files changed more recently than this are left for the next run (still being written)."""
    max_file_bytes: int = Field(default=1_000_000, ge=1)
    """A larger inbox file is refused (listed in the report) without being read: at most this
    many bytes plus one are ever read from a file. The default holds any document that
    ``limits.max_document_chars`` (100 000 characters, at most 4 bytes each) accepts."""

    @property
    def archive_dir(self) -> Path:
        return self.archive or self.inbox / "archive"

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from ponder.ops.cron import parse_cron

        parse_cron(value)  # raises ValueError naming the problem
        return value


class CostSettings(ModelPrices):
    """Prices for the cost of a job (the default registry entry's, when no registry is
    configured). Leave all at 0 to report no cost."""

    model_config = ConfigDict(extra="ignore")


class FallbackSettings(BaseModel):
    """When a model counts as unhealthy, so that jobs of a task whose knobs name a
    ``fallback_model`` go there instead (ponder/jobs/routing.py)."""

    queue_age_s: float = Field(default=600.0, gt=0)
    """The oldest job queued for the model waited longer than this: its pool is down or
    overwhelmed."""
    engine_errors: int = Field(default=3, ge=1)
    """The model's last this many runs all met an engine error."""


class AlertSettings(BaseModel):
    """Cost and quality alerts (ponder/ops/alerts.py), checked every ``every_s`` by beat."""

    every_s: int = 300
    window_s: int = 3600
    expected_cost_per_job: dict[str, float] = Field(default_factory=dict)
    """Per task type; a task without an entry has no cost alert."""
    cost_factor: float = 1.5
    max_schema_failure_rate: float = 0.5
    max_needs_review_rate: float = 0.9
    min_jobs: int = 5
    """Rates are judged only over at least this many jobs (or candidates)."""
    operator_email: str = ""
    operator_webhook_url: str = ""


class RetentionSettings(BaseModel):
    """How long a job's content is kept after it ends (ponder/ops/retention.py, run by beat)."""

    default_days: int = Field(default=30, ge=0)
    """Days after a job ends before its document, result, candidates, trace contents and
    notification payloads are blanked; a tenant's ``retention_days`` overrides it. Ids,
    statuses, token counts, costs and verifier outcomes are kept for metrics and audits."""
    purge_every_s: int = Field(default=3600, ge=1)
    """How often beat runs the purge."""
    batch_size: int = Field(default=500, ge=1)
    """Jobs purged per transaction, so a purge never holds long locks."""


class MetricsSettings(BaseModel):
    """Who may read ``GET /metrics``."""

    scrape_token: str = ""
    """A bearer token Prometheus sends (``authorization.credentials``); empty: only an API key
    with the ``admin`` scope is accepted."""
    public: bool = False
    """Serve ``/metrics`` without any credentials (a private scrape network); refused in
    production."""


class LiveSettings(BaseModel):
    """The live progress streams (Server-Sent Events, api/routes/events.py)."""

    heartbeat_s: float = Field(default=15.0, gt=0)
    """A ``: ping`` comment after this long without an event, so proxies keep the stream
    open and a client notices a dead connection."""
    poll_s: float = Field(default=1.0, gt=0)
    """How often a stream reads PostgreSQL without a wake-up: a job's end (which writes no
    trace event) and a batch's counts are seen within this long."""
    max_stream_s: float = Field(default=1800.0, gt=0)
    """A stream still open after this long is closed without its ``end`` event; the client
    reconnects with ``Last-Event-ID`` (an EventSource does so by itself), so no connection
    outlives a deployment or a proxy's limit by much."""


class ReviewSettings(BaseModel):
    """The review workspace (ponder/reviews/, api/routes/reviews.py and the pages under
    ``/review``)."""

    lock_ttl_s: int = Field(default=900, ge=10)
    """How long opening a job for review claims it for that reviewer (a soft lock): others
    see it read-only and their decisions are refused (409) until it expires."""
    session_secret: str = ""
    """Signs the workspace's session cookies; empty: a fixed development secret, refused in
    production."""
    session_ttl_s: int = Field(default=8 * 3600, ge=60)
    """How long a reviewer's sign-in lasts."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PONDER_", env_nested_delimiter="__", extra="ignore"
    )

    environment: Literal["development", "test", "production"] = "development"
    cache_dir: Path = Field(default_factory=default_cache_dir)
    knobs_file: Path | None = None
    """TOML file of per-task defaults and tenant caps (ponder/jobs/knobs.py); re-read on change."""
    result_cache: Literal["use", "refresh", "off"] = "use"
    """What a job that does not say ``cache`` does (ponder/jobs/cache.py): ``use`` answers an
    identical document from an earlier checked answer of the same tenant."""
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    tasks: TaskSettings = Field(default_factory=TaskSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    cost: CostSettings = Field(default_factory=CostSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    review: ReviewSettings = Field(default_factory=ReviewSettings)
    live: LiveSettings = Field(default_factory=LiveSettings)
    nightly: list[NightlyRunSettings] = Field(default_factory=list)
    """Scheduled batch runs over inbox folders (a JSON list in ``PONDER_NIGHTLY``)."""
    models: list[ModelEntry] = Field(default_factory=list)
    """The model registry (a JSON list in ``PONDER_MODELS``, ponder/engines/registry.py);
    empty: one entry, ``default``, built from the ``engine`` settings."""
    default_model: str = ""
    """The entry a job that names no model runs on; empty: the first entry (``default``
    without a registry)."""
    fallback: FallbackSettings = Field(default_factory=FallbackSettings)

    @model_validator(mode="after")
    def _registry_servable(self) -> Settings:
        check_entries(self.models, self.default_model or self.registry.default)
        if self.worker.model and self.worker.model not in self.registry.entries:
            raise ValueError(
                f"worker.model {self.worker.model!r} is not in the registry; known models: "
                f"{', '.join(self.registry.names())}"
            )
        for run in self.nightly:
            if run.model is not None and run.model not in self.registry.entries:
                raise ValueError(
                    f"nightly run {run.name!r}: unknown model {run.model!r}; known models: "
                    f"{', '.join(self.registry.names())}"
                )
        return self

    @property
    def registry(self) -> Registry:
        """The configured models, or the one built from ``engine`` (and ``cost``)."""
        if self.models:
            entries = [
                # An in-process entry without a directory runs the embedded model.
                m.model_copy(update={"model": self.model_path})
                if m.kind == "vllm" and not m.model
                else m
                for m in self.models
            ]
            return Registry(entries, self.default_model or self.models[0].name)
        e = self.engine
        entry = ModelEntry(
            name=self.default_model or "default",
            kind=e.kind,
            model=self.model_path if e.kind == "vllm" else e.model,
            base_url=e.base_url if e.kind == "openai" else "",
            dtype=e.dtype,
            max_model_len=e.max_model_len,
            reasoning_parser=e.reasoning_parser,
            prices=ModelPrices.model_validate(self.cost.model_dump()),
        )
        return Registry([entry], entry.name)

    @property
    def worker_model(self) -> ModelEntry:
        """The entry this reasoning worker serves."""
        return self.registry.get(self.worker.model or None)

    @model_validator(mode="after")
    def _refuse_insecure_production(self) -> Settings:
        if self.environment == "production" and self.notify.webhook_allow_hosts:
            raise ValueError("notify.webhook_allow_hosts must be empty in production")
        if self.environment == "production" and self.metrics.public:
            raise ValueError("metrics.public must be false in production: set a scrape token")
        notify = self.notify
        if (
            self.environment == "production"
            and notify.smtp_user
            and not (notify.smtp_ssl or notify.smtp_starttls)
        ):
            raise ValueError("SMTP credentials need notify.smtp_ssl or smtp_starttls in production")
        names = [run.name for run in self.nightly]
        if len(names) != len(set(names)):
            raise ValueError("nightly run names must be unique")
        if (
            self.environment != "test"
            and self.broker.visibility_timeout_s <= self.worker.job_time_limit_s
        ):
            # Allowed under test only: the fault suite sets it short to provoke redelivery.
            raise ValueError(
                "broker.visibility_timeout_s must exceed worker.job_time_limit_s, "
                "or the broker redelivers jobs that are still running"
            )
        if self.environment == "production" and self.worker.test_poison_marker:
            raise ValueError("worker.test_poison_marker is a test hook: empty it in production")
        if self.environment == "production" and not self.review.session_secret:
            # Last: the checks above name more urgent problems of the same settings.
            raise ValueError("review.session_secret must be set in production")
        return self

    @property
    def model_path(self) -> str:
        return self.engine.model or str(self.cache_dir / "models" / "smollm2-135m-instruct")


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
