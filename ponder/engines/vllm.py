"""The vLLM engine inside the worker process: the same code on the CPU build and on GPU.

Concurrency: vLLM's ``AsyncLLM`` needs the engine core in a separate process, which costs
~40 s and 3 GB at start on a small CPU machine. Instead one thread owns a synchronous
``LLMEngine`` and runs its step loop; job threads (the Celery threads pool) hand requests to it
through a queue and wait on a future. Every request in flight is in the same
continuous batch, so many jobs on one worker share each forward pass, and verifiers run on
the job threads, never on the engine thread.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from ponder.engines.base import (
    EngineAborted,
    EngineRequestError,
    EngineUnavailable,
    GenerationRequest,
    GenerationResult,
    Sample,
)

logger = logging.getLogger(__name__)


def engine_kwargs(
    *, model: str, dtype: str, max_model_len: int, enforce_eager: bool, seed: int
) -> dict[str, Any]:
    """Engine arguments shared by the worker's engine and the benchmark's direct engine."""
    from vllm.config import StructuredOutputsConfig
    from vllm.platforms import current_platform

    kwargs: dict[str, Any] = dict(
        model=model,
        dtype=dtype,
        max_model_len=max_model_len,
        enforce_eager=enforce_eager,
        enable_prefix_caching=True,
        seed=seed,
        # Per request this has no effect; without it a weak model loops on whitespace.
        structured_outputs_config=StructuredOutputsConfig(
            backend="xgrammar", disable_any_whitespace=True
        ),
    )
    if current_platform.is_cpu():
        # On CPU, a seeded request whose prefill is split into chunks crashes the engine step
        # ("CPU Generator does not use offset", vLLM 0.32): prefill whole prompts instead.
        kwargs.update(enable_chunked_prefill=False, max_num_batched_tokens=max_model_len)
    return kwargs


@dataclass
class _Pending:
    request: GenerationRequest
    prompt: str
    future: Future[GenerationResult]
    submitted_at: float
    admitted_at: float = 0.0
    in_flight_at_admission: int = 0


@dataclass
class _Abort:
    job_id: str


class VLLMEngine:
    """Thread-safe front of one in-process vLLM ``LLMEngine``."""

    def __init__(
        self,
        model: str,
        *,
        dtype: str = "float32",
        max_model_len: int = 4096,
        kv_cache_gib: int = 1,
        enforce_eager: bool = True,
        seed: int = 0,
    ) -> None:
        # Must be set before vLLM is imported; the in-process core avoids a second process.
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib))
        from vllm.engine.arg_utils import EngineArgs
        from vllm.v1.engine.llm_engine import LLMEngine

        self.model_name = os.path.basename(model.rstrip("/")) or model
        args = EngineArgs(
            **engine_kwargs(
                model=model,
                dtype=dtype,
                max_model_len=max_model_len,
                enforce_eager=enforce_eager,
                seed=seed,
            ),
            scheduling_policy="priority",
            disable_log_stats=True,
        )
        started = time.monotonic()
        self._engine = LLMEngine.from_engine_args(args)
        self._tokenizer = self._engine.get_tokenizer()
        self.max_model_len = max_model_len
        logger.info(
            "vLLM engine for %s ready in %.1fs", self.model_name, time.monotonic() - started
        )

        self._inbox: queue.Queue[_Pending | _Abort | None] = queue.Queue()
        self._active: dict[str, _Pending] = {}
        self._counter = 0
        self._closed = False
        self.peak_in_flight = 0
        self._thread = threading.Thread(target=self._loop, name="vllm-engine", daemon=True)
        self._thread.start()

    # -- public, called from job threads -------------------------------------------------
    def generate(self, request: GenerationRequest) -> GenerationResult:
        if self._closed:
            raise EngineUnavailable("engine is shut down")
        prompt = self._tokenizer.apply_chat_template(
            list(request.messages), tokenize=False, add_generation_prompt=True
        )
        assert isinstance(prompt, str)
        prompt_tokens = len(self._tokenizer.encode(prompt, add_special_tokens=False))
        if prompt_tokens + request.max_tokens > self.max_model_len:
            raise EngineRequestError(
                f"document too long for model {self.model_name} "
                f"({prompt_tokens} prompt tokens + {request.max_tokens} output tokens "
                f"> limit {self.max_model_len})"
            )
        future: Future[GenerationResult] = Future()
        self._inbox.put(_Pending(request, prompt, future, time.time()))
        return future.result()

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False))

    def abort_job(self, job_id: str) -> None:
        # The engine thread does it: LLMEngine is not thread-safe. Requests queued before
        # this marker are admitted first, so they are aborted too.
        self._inbox.put(_Abort(job_id))

    @property
    def in_flight(self) -> int:
        return len(self._active)

    def close(self) -> None:
        self._closed = True
        self._inbox.put(None)
        self._thread.join(timeout=30)

    # -- the engine thread ----------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            block = not self._active
            try:
                while True:
                    item = self._inbox.get(block=block, timeout=None if block else 0)
                    block = False
                    if item is None:
                        self._fail_all(EngineUnavailable("engine is shut down"))
                        return
                    if isinstance(item, _Abort):
                        self._abort(item.job_id)
                    else:
                        self._admit(item)
            except queue.Empty:
                pass
            if not self._active:
                continue
            try:
                outputs = self._engine.step()
            except Exception as exc:  # the engine itself broke: fail what is in flight
                # The type only: an engine error message can quote the prompt.
                logger.error("vLLM engine step failed: %s", type(exc).__name__)
                self._fail_all(EngineUnavailable(f"engine step failed: {type(exc).__name__}"))
                continue
            for output in outputs:
                if output.finished and output.request_id in self._active:
                    self._complete(self._active.pop(output.request_id), output)

    def _admit(self, item: _Pending) -> None:
        self._counter += 1
        engine_id = f"{item.request.request_id}#{self._counter}"
        try:
            params = self._sampling_params(item.request)
            item.in_flight_at_admission = len(self._active)
            item.admitted_at = time.time()
            self._engine.add_request(engine_id, item.prompt, params, priority=item.request.priority)
        except ValueError as exc:  # vLLM validates prompts and params here
            item.future.set_exception(EngineRequestError(str(exc)))
            return
        self._active[engine_id] = item
        self.peak_in_flight = max(self.peak_in_flight, len(self._active))

    def _sampling_params(self, request: GenerationRequest) -> Any:
        from vllm.sampling_params import RequestOutputKind, SamplingParams, StructuredOutputsParams

        structured = None
        if request.json_schema is not None:
            structured = StructuredOutputsParams(json=request.json_schema)
        elif request.choice is not None:
            structured = StructuredOutputsParams(choice=list(request.choice))
        return SamplingParams(
            n=request.n,
            temperature=request.temperature,
            top_p=request.top_p,
            max_tokens=request.max_tokens,
            seed=request.seed,
            stop=list(request.stop) if request.stop else None,
            logprobs=max(request.top_logprobs, 1),
            structured_outputs=structured,
            output_kind=RequestOutputKind.FINAL_ONLY,
        )

    def _complete(self, item: _Pending, output: Any) -> None:
        samples = []
        for completion in sorted(output.outputs, key=lambda c: c.index):
            token_logprobs: list[float] = []
            alternatives: list[dict[str, float]] = []
            for token_id, position in zip(
                completion.token_ids, completion.logprobs or [], strict=False
            ):
                chosen = position.get(token_id)
                token_logprobs.append(chosen.logprob if chosen is not None else -math.inf)
                if item.request.top_logprobs > 1:
                    alternatives.append(
                        {(lp.decoded_token or str(tid)): lp.logprob for tid, lp in position.items()}
                    )
            samples.append(
                Sample(
                    index=completion.index,
                    text=completion.text,
                    completion_tokens=len(completion.token_ids),
                    finish_reason=completion.finish_reason,
                    token_logprobs=token_logprobs,
                    top_alternatives=alternatives,
                )
            )
        finished = time.time()
        item.future.set_result(
            GenerationResult(
                samples=samples,
                prompt_tokens=len(output.prompt_token_ids or []),
                cached_prompt_tokens=output.num_cached_tokens or 0,
                engine_wall_s=finished - item.admitted_at,
                model=self.model_name,
                started_at=item.admitted_at,
                finished_at=finished,
                in_flight_at_admission=item.in_flight_at_admission,
            )
        )

    def _abort(self, job_id: str) -> None:
        mine = [
            engine_id
            for engine_id, item in self._active.items()
            if item.request.request_id.startswith(f"{job_id}:")
        ]
        if not mine:
            return
        self._engine.abort_request(mine)
        for engine_id in mine:
            self._active.pop(engine_id).future.set_exception(
                EngineAborted(f"request aborted: job {job_id} stopped")
            )
        logger.info("job %s: %d engine request(s) aborted in flight", job_id, len(mine))

    def _fail_all(self, exc: Exception) -> None:
        for engine_id, item in list(self._active.items()):
            try:
                self._engine.abort_request([engine_id])
            except Exception:  # noqa: BLE001 - the engine may already be broken
                pass
            item.future.set_exception(exc)
        self._active.clear()
