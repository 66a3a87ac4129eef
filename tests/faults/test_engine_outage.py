"""The engine failing mid-job, at process level: a worker talks to a real vLLM server through a
TCP proxy that the test switches off while round 2 of a ``refine`` job is in flight. The job
is retried with backoff, and the round-1 candidates already generated and verified are
reused, not generated again."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from ponder import config
from ponder.db import get_engine
from tests.conftest import wait_for_status
from tests.faults.test_worker_faults import job_row

pytestmark = [pytest.mark.faults, pytest.mark.e2e]

NOTE = "Medications: metoprolol 50 mg by mouth twice daily; lisinopril 10 mg daily."
SEED = 11
"""With this note, both round-1 samples are complete JSON (about 45 and 110 tokens) that
fail required checks, so refine asks for round 2."""
N = 2
MAX_TOKENS = 256
"""Per sample, to keep the run short on CPU; round 2's prompt (round 1's answer and its
findings) must still fit the server's 2048-token context."""
RETRY_BASE_S = 2.0
ENDED = {"succeeded", "needs_review", "failed", "cancelled"}


class SwitchableProxy:
    """A TCP proxy on 127.0.0.1 to ``target`` (host, port). ``down()`` closes every open
    connection and closes each new one as soon as it is accepted; ``up()`` forwards again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._up = True
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self.cut = 0
        """Connections closed by ``down()`` while they were open."""
        self.refused = 0
        """Connections closed on arrival while the proxy was down."""
        self._thread = threading.Thread(target=self._accept, daemon=True, name="engine-proxy")

    def start(self) -> SwitchableProxy:
        self._thread.start()
        return self

    def down(self) -> None:
        with self._lock:
            self._up = False
            self.cut += len(self._open) // 2
            for sock in self._open:
                _close(sock)
            self._open.clear()

    def up(self) -> None:
        with self._lock:
            self._up = True

    def stop(self) -> None:
        self.down()
        _close(self._listener)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # stopped
            with self._lock:
                if not self._up:
                    self.refused += 1
                    _close(client)
                    continue
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                if not self._up:  # went down while connecting
                    _close(client)
                    _close(upstream)
                    continue
                self._open.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with self._lock:
            self._open.difference_update((src, dst))
        _close(src)
        _close(dst)


def _close(sock: socket.socket) -> None:
    # shutdown wakes a thread blocked in recv on it; close alone does not.
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


@pytest.fixture
def engine_proxy(vllm_server: str) -> Iterator[SwitchableProxy]:
    url = urlsplit(vllm_server)
    proxy = SwitchableProxy((url.hostname or "127.0.0.1", url.port or 80)).start()
    yield proxy
    proxy.stop()


def query(sql: str, job_id: str) -> list[sa.Row]:
    with get_engine().connect() as conn:
        return list(conn.execute(sa.text(sql), {"j": job_id}).all())


def wait_for_round_1(job_id: str, timeout_s: float = 180) -> None:
    """Until the round-1 candidates are recorded; fails if they left nothing for round 2."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        [(count, passed)] = query(
            "select count(*), bool_or(passed_required) from candidates "
            "where job_id = :j and step = 'round-1'",
            job_id,
        )
        if count:
            if passed:
                pytest.fail(
                    "a round-1 candidate passed every required check, so refine asks for no "
                    "round 2 and the engine cannot fail mid-job: pick another SEED or NOTE"
                )
            return
        assert job_row(job_id)["status"] not in ENDED, job_row(job_id)
        time.sleep(0.05)
    raise TimeoutError("round 1 was never recorded")


def wait_for_release(job_id: str, timeout_s: float = 60) -> dict:
    """Until the run has given the job back to the queue for a retry."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        row = job_row(job_id)
        if row["status"] == "queued" and row["attempts"] == 1:
            return row
        assert row["status"] not in ENDED, (
            f"the job ended {row['status']} without a retry: round 2 finished before the "
            f"proxy went down, or the engine failure was not retried ({row['error']})"
        )
        time.sleep(0.1)
    raise TimeoutError("the job was never released for a retry")


def test_engine_failing_mid_job_retries_with_backoff_and_reuses_recorded_candidates(
    api, tenant, workers, webhook_receiver, engine_proxy, monkeypatch
):
    monkeypatch.setenv("PONDER_LIMITS__MAX_TOKENS_PER_SAMPLE", str(MAX_TOKENS))  # frozen on the job
    config.get_settings.cache_clear()
    base_url = f"http://127.0.0.1:{engine_proxy.port}/v1"
    worker = workers.start(
        PONDER_ENGINE__KIND="openai",
        PONDER_ENGINE__BASE_URL=base_url,
        PONDER_ENGINE__MODEL="smollm2",
        PONDER_ENGINE__MAX_RETRIES="1",
        PONDER_WORKER__RETRY_BASE_S=str(RETRY_BASE_S),
    )
    body = {
        "task": "medrec_extraction",
        "document": NOTE,
        "strategy": "refine",
        "n": N,
        "seed": SEED,
        "params": {"max_rounds": 2},
        "webhook_url": webhook_receiver.url,
    }
    response = api.post("/v1/jobs", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]

    wait_for_round_1(job_id)
    engine_proxy.down()  # round 2's request is in flight, or about to be refused
    released = wait_for_release(job_id)
    engine_proxy.up()
    assert f"engine {base_url} unavailable" in released["error"]
    assert engine_proxy.cut + engine_proxy.refused > 0

    job = wait_for_status(job_id, ENDED, timeout_s=300)
    events = query(
        "select kind, attempt, data, created_at from trace_events where job_id = :j order by seq",
        job_id,
    )
    reused = [(e.attempt, e.data) for e in events if e.kind == "reused"]
    assert reused == [(2, {"step": "round-1", "candidates": N})], "round 1 was not reused"
    by_step = dict(
        query(
            "select step, array_agg(attempt order by idx) from candidates "
            "where job_id = :j group by step",
            job_id,
        )
    )
    assert by_step.get("round-1") == [1] * N, "round 1 was generated again"
    # A regenerated round 1 is paid for again even where the unique (job, step, idx) keeps
    # its rows out: the engine must have been paid for the recorded candidates only.
    [(recorded,)] = query("select sum(completion_tokens) from candidates where job_id = :j", job_id)
    assert job["completion_tokens"] == recorded, "an engine call's output was not recorded"
    assert job["status"] in {"succeeded", "needs_review"}, job["error"]
    assert job["attempts"] == 2
    assert by_step == {"round-1": [1] * N, "round-2": [2] * N}
    assert worker.poll() is None  # the worker stayed up

    started = [e for e in events if e.kind == "started"]
    assert [e.attempt for e in started] == [1, 2]
    backoff = (started[1].created_at - released["enqueued_at"]).total_seconds()
    assert backoff >= RETRY_BASE_S, f"attempt 2 started {backoff:.2f}s after the failure"
    [selection] = [e.data for e in events if e.kind == "selection"]
    ranked = {c["candidate_id"] for c in selection["ranking"]}
    [(ids,)] = query("select array_agg(id) from candidates where job_id = :j", job_id)
    assert ranked == set(ids), "attempt 2 selects among the reused round 1 and its round 2"
    [(notifications,)] = query("select count(*) from notifications where job_id = :j", job_id)
    assert notifications == 1
