"""The vLLM engine inside the worker process: the same code on the CPU build and on GPU.

Concurrency: vLLM's ``AsyncLLM`` needs the engine core in a separate process, which costs
~40 s and 3 GB at start on a small CPU machine. Instead one thread owns a synchronous
``LLMEngine`` and runs its step loop; job threads (the Celery threads pool) hand requests to it
through a queue and wait on a future. Every request in flight is in the same
continuous batch, so many jobs on one worker share each forward pass, and verifiers run on
the job threads, never on the engine thread.

Under early stop (``GenerationRequest.early_stop``) the loop also follows each sample's token
confidence step by step and aborts a hopeless sample's own vLLM sub-request (the n>1 fan-out
child), leaving its siblings running (``ponder.engines.confidence``).

With a reasoning parser (``reasoning_parser``, a vLLM parser name) vLLM ends a sample's thinking
at the request's ``thinking_token_budget`` and applies structured output only after the thinking;
each finished sample is split into thinking and answer by the same parser
(``ponder.engines.reasoning``).
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ponder.engines.base import (
    EngineAborted,
    EngineRequestError,
    EngineUnavailable,
    GenerationRequest,
    GenerationResult,
    Sample,
)
from ponder.engines.confidence import EARLY_STOP_REASON, EarlyStopTracker, StopRecord
from ponder.engines.reasoning import ReasoningSplitter, check_parser_name

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
class _SampleSoFar:
    """One sample as its outputs arrive (all at once, or token by token under early stop)."""

    text: list[str] = field(default_factory=list)
    tokens: int = 0
    token_ids: list[int] = field(default_factory=list)
    token_logprobs: list[float] = field(default_factory=list)
    alternatives: list[dict[str, float]] = field(default_factory=list)
    finish_reason: str | None = None
    stopped: StopRecord | None = None


@dataclass
class _Pending:
    request: GenerationRequest
    prompt: str
    future: Future[GenerationResult]
    submitted_at: float
    admitted_at: float = 0.0
    in_flight_at_admission: int = 0
    internal_id: str = ""
    """vLLM's own id of the request; its n samples run as children ``{index}_{internal_id}``."""
    samples: list[_SampleSoFar] = field(default_factory=list)
    tracker: EarlyStopTracker | None = None
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0


@dataclass(frozen=True)
class StoppedSample:
    """Evidence of one early stop: the vLLM request of the sample, and whether vLLM's
    scheduler still held it right after the abort (None where it cannot be seen)."""

    engine_request_id: str
    tokens: int
    held_after_abort: bool | None


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
        reasoning_parser: str | None = None,
    ) -> None:
        if reasoning_parser:
            check_parser_name(reasoning_parser)  # before the minutes a model load may take
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
            # Also gates structured output until the thinking ends and enables
            # thinking_token_budget (vLLM's ReasoningConfig).
            reasoning_parser=reasoning_parser or "",
        )
        started = time.monotonic()
        self._engine = LLMEngine.from_engine_args(args)
        self._tokenizer = self._engine.get_tokenizer()
        self.max_model_len = max_model_len
        self.reasoning_parser = reasoning_parser or None
        """The vLLM reasoning parser that separates thinking from answers (None: a plain model)."""
        self._splitter = (
            ReasoningSplitter(reasoning_parser, self._tokenizer) if reasoning_parser else None
        )
        logger.info(
            "vLLM engine for %s ready in %.1fs", self.model_name, time.monotonic() - started
        )

        self._inbox: queue.Queue[_Pending | _Abort | None] = queue.Queue()
        self._active: dict[str, _Pending] = {}
        self._counter = 0
        self._closed = False
        self.peak_in_flight = 0
        self.stopped_samples: deque[StoppedSample] = deque(maxlen=256)
        """The latest early stops, for tests and operators."""
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
            touched: dict[str, _Pending] = {}
            for output in outputs:
                item = self._active.get(output.request_id)
                if item is not None:
                    self._collect(item, output)
                    touched[output.request_id] = item
            # After the whole step: a sample finishing in it counts before any stop decision.
            for engine_id, item in touched.items():
                if item.tracker is not None:
                    self._stop_hopeless(item)
                if all(sample.finish_reason is not None for sample in item.samples):
                    del self._active[engine_id]
                    if item.tracker is not None and item.tracker.stopped:
                        # A stopped child stays in its parent's bookkeeping: forget the parent.
                        self._engine.abort_request([item.internal_id], internal=True)
                    self._complete(item)

    def _admit(self, item: _Pending) -> None:
        self._counter += 1
        engine_id = f"{item.request.request_id}#{self._counter}"
        request = item.request
        try:
            params = self._sampling_params(request)
            item.in_flight_at_admission = len(self._active)
            item.admitted_at = time.time()
            item.internal_id = self._engine.add_request(
                engine_id, item.prompt, params, priority=request.priority
            )
        except ValueError as exc:  # vLLM validates prompts and params here
            item.future.set_exception(EngineRequestError(str(exc)))
            return
        item.samples = [_SampleSoFar() for _ in range(request.n)]
        if request.early_stop is not None:
            item.tracker = EarlyStopTracker(request.early_stop, request.n)
        self._active[engine_id] = item
        self.peak_in_flight = max(self.peak_in_flight, len(self._active))

    def _sampling_params(self, request: GenerationRequest) -> Any:
        if request.thinking_token_budget is not None and self._splitter is None:
            raise ValueError(
                f"thinking_token_budget needs a reasoning parser; model {self.model_name} "
                "has none configured"
            )
        from vllm.sampling_params import RequestOutputKind, SamplingParams, StructuredOutputsParams

        structured = None
        if request.json_schema is not None:
            structured = StructuredOutputsParams(json=request.json_schema)
        elif request.choice is not None:
            structured = StructuredOutputsParams(choice=list(request.choice))
        early_stop = request.early_stop
        return SamplingParams(
            n=request.n,
            temperature=request.temperature,
            top_p=request.top_p,
            max_tokens=request.max_tokens,
            seed=request.seed,
            stop=list(request.stop) if request.stop else None,
            logprobs=max(request.top_logprobs, early_stop.top_k if early_stop else 1),
            structured_outputs=structured,
            thinking_token_budget=request.thinking_token_budget,
            # Early stop judges each sample token by token, so it needs every step's tokens.
            output_kind=RequestOutputKind.DELTA if early_stop else RequestOutputKind.FINAL_ONLY,
        )

    def _collect(self, item: _Pending, output: Any) -> None:
        """Add one output of the request: every sample's tokens when it ends, or each sample's
        new tokens of this step under early stop."""
        item.prompt_tokens = len(output.prompt_token_ids or []) or item.prompt_tokens
        item.cached_prompt_tokens = output.num_cached_tokens or item.cached_prompt_tokens
        keep_alternatives = item.request.top_logprobs > 1
        for completion in output.outputs:
            sample = item.samples[completion.index]
            if sample.finish_reason is not None:
                continue  # vLLM drops a stopped child's outputs; never count one twice
            positions = list(zip(completion.token_ids, completion.logprobs or [], strict=False))
            sample.text.append(completion.text)
            sample.tokens += len(completion.token_ids)
            sample.token_ids.extend(completion.token_ids)
            for token_id, position in positions:
                chosen = position.get(token_id)
                sample.token_logprobs.append(chosen.logprob if chosen is not None else -math.inf)
                if keep_alternatives:
                    sample.alternatives.append(
                        {(lp.decoded_token or str(tid)): lp.logprob for tid, lp in position.items()}
                    )
            if item.tracker is not None:
                item.tracker.observe(
                    completion.index,
                    ([lp.logprob for lp in position.values()] for _, position in positions),
                )
            if completion.finish_reason is not None:
                sample.finish_reason = completion.finish_reason
                if item.tracker is not None:
                    item.tracker.finish(completion.index)

    def _stop_hopeless(self, item: _Pending) -> None:
        """Abort the running samples whose confidence fell below the warm-up threshold: vLLM
        frees their slots and generates nothing more for them."""
        assert item.tracker is not None
        for index in item.tracker.to_stop():
            child_id = f"{index}_{item.internal_id}"  # vLLM's id of the n>1 fan-out child
            self._engine.abort_request([child_id], internal=True)
            sample = item.samples[index]
            sample.stopped = item.tracker.stop(index, tokens=sample.tokens)
            sample.finish_reason = EARLY_STOP_REASON
            held = self._scheduler_holds(child_id)
            self.stopped_samples.append(StoppedSample(child_id, sample.tokens, held))
            if held:
                logger.warning("request %s: stopped sample %d is still scheduled", child_id, index)
            logger.info(
                "request %s: sample %d stopped early after %d tokens (window %.3f < %.3f)",
                item.request.request_id,
                index,
                sample.tokens,
                sample.stopped.window_confidence,
                sample.stopped.threshold,
            )

    def _scheduler_holds(self, engine_request_id: str) -> bool | None:
        """Whether vLLM's scheduler still holds the request (None if it cannot be seen: the
        engine core runs in another process)."""
        core = getattr(self._engine.engine_core, "engine_core", None)
        requests = getattr(getattr(core, "scheduler", None), "requests", None)
        return None if requests is None else engine_request_id in requests

    def _complete(self, item: _Pending) -> None:
        samples = [self._sample(index, so_far) for index, so_far in enumerate(item.samples)]
        finished = time.time()
        item.future.set_result(
            GenerationResult(
                samples=samples,
                prompt_tokens=item.prompt_tokens,
                cached_prompt_tokens=item.cached_prompt_tokens,
                engine_wall_s=finished - item.admitted_at,
                model=self.model_name,
                started_at=item.admitted_at,
                finished_at=finished,
                in_flight_at_admission=item.in_flight_at_admission,
            )
        )

    def _sample(self, index: int, so_far: _SampleSoFar) -> Sample:
        """A finished sample; a reasoning model's split into thinking and answer. Under early
        stop its text arrived in deltas, so it is split once, whole, when it ends."""
        sample = Sample(
            index=index,
            text="".join(so_far.text),
            completion_tokens=so_far.tokens,
            finish_reason=so_far.finish_reason,
            token_logprobs=so_far.token_logprobs,
            top_alternatives=so_far.alternatives,
            stopped=so_far.stopped,
        )
        if self._splitter is not None:
            split = self._splitter.split(sample.text, so_far.token_ids)
            sample.text = split.answer
            sample.thinking = split.thinking
            sample.thinking_tokens = split.thinking_tokens
        return sample

    def _release(self, engine_id: str, item: _Pending) -> None:
        """Abort what is left of a request in vLLM. Under early stop by its internal id, which
        also forgets the parent a stopped child left behind."""
        if item.tracker is not None:
            self._engine.abort_request([item.internal_id], internal=True)
        else:
            self._engine.abort_request([engine_id])

    def _abort(self, job_id: str) -> None:
        mine = [
            engine_id
            for engine_id, item in self._active.items()
            if item.request.request_id.startswith(f"{job_id}:")
        ]
        if not mine:
            return
        for engine_id in mine:
            self._release(engine_id, self._active[engine_id])
            self._active.pop(engine_id).future.set_exception(
                EngineAborted(f"request aborted: job {job_id} stopped")
            )
        logger.info("job %s: %d engine request(s) aborted in flight", job_id, len(mine))

    def _fail_all(self, exc: Exception) -> None:
        for engine_id, item in list(self._active.items()):
            try:
                self._release(engine_id, item)
            except Exception:  # noqa: BLE001 - the engine may already be broken
                pass
            item.future.set_exception(exc)
        self._active.clear()
