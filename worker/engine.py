"""One inference engine per worker process, created on first use and shared by its threads."""

from __future__ import annotations

import threading

from ponder.config import Settings
from ponder.engines.base import Engine

_lock = threading.Lock()
_engine: Engine | None = None


def build_engine(settings: Settings) -> Engine:
    if settings.engine.kind == "openai":
        from ponder.engines.openai import OpenAIEngine

        return OpenAIEngine(
            base_url=settings.engine.base_url,
            model=settings.engine.model,
            api_key=settings.engine.api_key,
            timeout_s=settings.engine.request_timeout_s,
            max_retries=settings.engine.max_retries,
            max_concurrency=settings.worker.jobs_in_flight,
        )
    from ponder.engines.vllm import VLLMEngine

    e = settings.engine
    return VLLMEngine(
        settings.model_path,
        dtype=e.dtype,
        max_model_len=e.max_model_len,
        kv_cache_gib=e.kv_cache_gib,
        enforce_eager=e.enforce_eager,
        seed=e.seed,
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
