"""One inference engine per worker process, created on first use and shared by its threads:
the registry model the worker serves (``PONDER_WORKER__MODEL``, default the default model)."""

from __future__ import annotations

import threading

from ponder.config import Settings
from ponder.engines.base import Engine

_lock = threading.Lock()
_engine: Engine | None = None


def build_engine(settings: Settings) -> Engine:
    entry = settings.worker_model
    if entry.kind == "openai":
        from ponder.engines.openai import OpenAIEngine

        return OpenAIEngine(
            base_url=entry.base_url,
            model=entry.model,
            api_key=settings.engine.api_key,
            timeout_s=settings.engine.request_timeout_s,
            max_retries=settings.engine.max_retries,
            max_concurrency=settings.worker.jobs_in_flight,
            reasoning_parser=entry.reasoning_parser,
        )
    from ponder.engines.vllm import VLLMEngine

    e = settings.engine
    return VLLMEngine(
        entry.model or settings.model_path,
        dtype=entry.dtype,
        max_model_len=entry.max_model_len,
        kv_cache_gib=e.kv_cache_gib,
        enforce_eager=e.enforce_eager,
        seed=e.seed,
        reasoning_parser=entry.reasoning_parser,
    )


def current() -> Engine | None:
    """The engine if this process has started one (for metrics)."""
    return _engine


def get_engine(settings: Settings) -> Engine:
    global _engine
    with _lock:
        if _engine is None:
            _engine = build_engine(settings)
        return _engine
