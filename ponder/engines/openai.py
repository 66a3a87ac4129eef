"""A remote OpenAI-compatible engine, such as a vLLM server
(``python -m vllm.entrypoints.openai.api_server --model M``).

One pooled HTTP client per worker process, a semaphore bounding requests in flight, retries
with backoff on connection errors and 5xx, then ``EngineUnavailable`` naming the server.

For a reasoning model (``reasoning_parser``: the server runs with ``--reasoning-parser``) the
server separates the thinking (the message's ``reasoning``, formerly ``reasoning_content``)
from the answer and enforces the request's ``thinking_token_budget``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any

import httpx

from ponder.engines.base import (
    EngineRequestError,
    EngineUnavailable,
    GenerationRequest,
    GenerationResult,
    Sample,
)
from ponder.engines.reasoning import check_parser_name

logger = logging.getLogger(__name__)


class OpenAIEngine:
    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str = "EMPTY",
        timeout_s: float = 600.0,
        max_retries: int = 3,
        max_concurrency: int = 32,
        reasoning_parser: str | None = None,
    ) -> None:
        if not model:
            raise ValueError("engine.model must name the served model for kind=openai")
        if reasoning_parser:
            check_parser_name(reasoning_parser)
        self.model_name = model
        self.reasoning_parser = reasoning_parser or None
        """The parser the server was started with (``--reasoning-parser``); None: plain."""
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s, connect=10.0),
            headers={"Authorization": f"Bearer {api_key}"},
            limits=httpx.Limits(
                max_connections=max_concurrency, max_keepalive_connections=max_concurrency
            ),
        )
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._in_flight = 0
        self._send_priority = True
        self._peak = 0
        self._lock = threading.Lock()

    def generate(self, request: GenerationRequest) -> GenerationResult:
        if request.early_stop is not None:
            # The submit refuses early_stop for this engine; this guards any other caller.
            raise EngineRequestError(
                "early_stop needs the in-process engine (engine.kind=vllm): a remote server "
                "returns an n>1 request's samples together and cannot abort one of them"
            )
        body = self._body(request)
        with self._slots:
            with self._lock:
                in_flight = self._in_flight
                self._in_flight += 1
                self._peak = max(self._peak, self._in_flight)
            try:
                started = time.time()
                data = self._post_with_retries(body)
                finished = time.time()
            finally:
                with self._lock:
                    self._in_flight -= 1
        return self._result(data, started, finished, in_flight)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def peak_in_flight(self) -> int:
        return self._peak

    def count_tokens(self, text: str) -> int:
        # Servers differ in exposing a tokenizer; a conservative estimate is enough for limits.
        return max(1, len(text) // 3)

    def abort_job(self, job_id: str) -> None:
        """Not supported: a blocking HTTP call cannot be interrupted from another thread here,
        so the call runs to its end and the run stops at its next write (documented)."""

    def close(self) -> None:
        self._client.close()

    def _body(self, request: GenerationRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model_name,
            "messages": list(request.messages),
            "n": request.n,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "max_tokens": request.max_tokens,
            "logprobs": True,
            "top_logprobs": max(request.top_logprobs, 1),
        }
        if self._send_priority:
            body["priority"] = request.priority
        if request.thinking_token_budget is not None:
            if self.reasoning_parser is None:
                raise EngineRequestError(
                    f"thinking_token_budget needs a reasoning parser; model {self.model_name} "
                    "has none configured"
                )
            body["thinking_token_budget"] = request.thinking_token_budget
        if request.seed is not None:
            body["seed"] = request.seed
        if request.stop:
            body["stop"] = list(request.stop)
        if request.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": request.json_schema, "strict": True},
            }
        elif request.choice is not None:
            body["structured_outputs"] = {"choice": list(request.choice)}
        return body

    def _post_with_retries(self, body: dict[str, Any]) -> dict[str, Any]:
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(min(30.0, 0.5 * 2**attempt) * random.uniform(0.5, 1.0))
            try:
                response = self._client.post("/chat/completions", json=body)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}"
                continue
            if response.status_code >= 500:
                last = f"HTTP {response.status_code}"
                continue
            if response.status_code == 400 and "priority" in response.text and "priority" in body:
                # The server does not schedule by priority: stop sending it.
                self._send_priority = False
                body = {k: v for k, v in body.items() if k != "priority"}
                response = self._client.post("/chat/completions", json=body)
            if response.status_code >= 400:
                raise EngineRequestError(
                    f"engine {self.base_url} refused the request: HTTP {response.status_code} "
                    f"{_error_message(response)}"
                )
            try:
                data: dict[str, Any] = response.json()
                data["choices"][0]
            except (ValueError, KeyError, IndexError, TypeError):
                last = "malformed response"
                continue
            return data
        raise EngineUnavailable(
            f"engine {self.base_url} unavailable after {self.max_retries + 1} tries: {last}"
        )

    def _result(
        self, data: dict[str, Any], started: float, finished: float, in_flight: int
    ) -> GenerationResult:
        samples = []
        for choice in sorted(data["choices"], key=lambda c: c.get("index", 0)):
            content = (choice.get("logprobs") or {}).get("content") or []
            message = choice.get("message") or {}
            sample = Sample(
                index=choice.get("index", 0),
                text=message.get("content") or "",
                completion_tokens=len(content),
                finish_reason=choice.get("finish_reason"),
                token_logprobs=[t["logprob"] for t in content],
                top_alternatives=[
                    {a["token"]: a["logprob"] for a in t.get("top_logprobs", [])} for t in content
                ],
            )
            if self.reasoning_parser is not None:
                thinking = message.get("reasoning") or message.get("reasoning_content")
                if thinking:
                    sample.thinking = thinking
                    tokens = [t.get("token", "") for t in content]
                    sample.thinking_tokens = _thinking_tokens(tokens, thinking, sample.text)
            samples.append(sample)
        usage = data.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        if samples and not any(s.completion_tokens for s in samples):
            total = int(usage.get("completion_tokens", 0))
            for s in samples:
                s.completion_tokens = total // len(samples)
            # No logprobs to count with: the server's count (0 where the chat template opened
            # the thinking, which vLLM's count misses), else an estimate from the text.
            details_out = usage.get("completion_tokens_details") or {}
            reported = int(details_out.get("reasoning_tokens") or 0)
            for s in samples:
                if s.thinking:
                    share = reported // len(samples) or self.count_tokens(s.thinking)
                    s.thinking_tokens = min(s.completion_tokens, share)
        return GenerationResult(
            samples=samples,
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            cached_prompt_tokens=int(details.get("cached_tokens") or 0),
            engine_wall_s=finished - started,
            model=self.model_name,
            started_at=started,
            finished_at=finished,
            in_flight_at_admission=in_flight,
        )


def _thinking_tokens(tokens: list[str], thinking: str, answer: str) -> int:
    """Tokens of the thinking, from a choice's sampled tokens (its logprobs): those before the
    answer, less the end marker; the text-length share when the tokens do not spell the text."""
    if not tokens:
        return 0
    # The answer is the tail of the tokens: find the fewest last tokens that spell it.
    answer_tokens, tail = 0, ""
    target = answer.strip()
    while target and answer_tokens < len(tokens) and target not in tail:
        answer_tokens += 1
        tail = tokens[-answer_tokens] + tail
    if target and target not in tail:
        share = len(thinking) / max(1, len(thinking) + len(answer))
        return round(len(tokens) * share)
    head = tokens[: len(tokens) - answer_tokens]
    # The markers (</think>, a <think> the model wrote) are the tokens the thinking lacks.
    markers = sum(1 for t in head if t.strip() and t.strip() not in thinking)
    return len(head) - markers


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", {}).get("message", ""))[:200]
    except ValueError:
        return ""
