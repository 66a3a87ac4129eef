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

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ponder"


class DatabaseSettings(BaseModel):
    url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/ponder"
    """SQLAlchemy URL of the PostgreSQL database that holds every job, candidate and trace."""
    pool_size: int = 10


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


class WorkerSettings(BaseModel):
    jobs_in_flight: int = 16
    """Jobs one reasoning worker process runs at once against its single engine."""
    lease_ttl_s: int = 60
    """A run's lease expires this long after its last heartbeat; a dead worker's job is
    claimable again after it."""
    heartbeat_s: int = 15
    max_attempts: int = 3
    """Deliveries of one job before it is failed as poison instead of looping."""
    retry_base_s: float = 5.0
    """First delay before a job is retried after the engine was unavailable; doubles per try."""
    job_time_limit_s: int = 3600
    reconcile_every_s: int = 30
    requeue_after_s: int = 120
    """A ``queued`` job untouched this long is sent to the broker again by the reconciler."""


class LimitSettings(BaseModel):
    max_document_chars: int = 100_000
    max_request_bytes: int = 1_000_000
    min_n: int = 1
    max_n: int = 16
    default_n: int = 4
    max_tokens_per_sample: int = 1536
    page_size_max: int = 100


class NotifySettings(BaseModel):
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    mail_from: str = "ponder@localhost"
    webhook_timeout_s: float = 15.0
    webhook_max_attempts: int = 8
    webhook_backoff_base_s: float = 2.0
    webhook_allow_hosts: list[str] = Field(default_factory=list)
    """Hosts or IP addresses that may receive webhooks although they are loopback or private.
    For local development and tests only; empty in production."""
    public_base_url: str = "http://127.0.0.1:8000"
    """Used to build links to jobs in notifications."""


class CostSettings(BaseModel):
    """Prices for the cost of a job. Leave all at 0 to report no cost."""

    currency: str = "USD"
    per_million_prompt_tokens: float = 0.0
    per_million_completion_tokens: float = 0.0
    per_gpu_hour: float = 0.0
    """Charged on the engine time of the job's requests (for self-hosted engines)."""

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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PONDER_", env_nested_delimiter="__", extra="ignore"
    )

    environment: Literal["development", "test", "production"] = "development"
    cache_dir: Path = Field(default_factory=default_cache_dir)
    knobs_file: Path | None = None
    """TOML file of per-task defaults and tenant caps (see ponder/knobs.py); re-read on change."""
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    cost: CostSettings = Field(default_factory=CostSettings)

    @model_validator(mode="after")
    def _refuse_insecure_production(self) -> Settings:
        if self.environment == "production" and self.notify.webhook_allow_hosts:
            raise ValueError("notify.webhook_allow_hosts must be empty in production")
        if self.broker.visibility_timeout_s <= self.worker.job_time_limit_s:
            raise ValueError(
                "broker.visibility_timeout_s must exceed worker.job_time_limit_s, "
                "or the broker redelivers jobs that are still running"
            )
        return self

    @property
    def model_path(self) -> str:
        return self.engine.model or str(self.cache_dir / "models" / "smollm2-135m-instruct")


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
