"""What the queue costs: the same documents through vLLM driven directly and through the
whole of Ponder (API, PostgreSQL, Celery on Redis, a worker, verifiers), n samples in one
request against n requests, and the API's submit rate. One command, one run, one machine.

    OMP_NUM_THREADS=1 .venv/bin/python bench/throughput.py --out throughput.json

It uses its own database (``ponder_bench``, recreated) and Redis database 12.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/ponder_bench"
BENCH_BROKER = "redis://127.0.0.1:6379/12"
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["PONDER_DATABASE__URL"] = BENCH_DB
os.environ["PONDER_BROKER__URL"] = BENCH_BROKER

MEDS = [
    ("metoprolol", "50", "twice daily"),
    ("lisinopril", "10", "daily"),
    ("atorvastatin", "40", "at bedtime"),
    ("metformin", "500", "twice daily"),
    ("amlodipine", "5", "daily"),
    ("levothyroxine", "75", "every morning"),
    ("sertraline", "50", "daily"),
    ("omeprazole", "20", "daily"),
    ("gabapentin", "300", "three times daily"),
    ("furosemide", "40", "daily"),
]


def documents(count: int) -> list[str]:
    """Short synthetic clinic notes (written for this benchmark), two medications each."""
    docs = []
    for i in range(count):
        a, b = MEDS[i % len(MEDS)], MEDS[(i * 3 + 1) % len(MEDS)]
        docs.append(
            f"Visit {i + 1}. Patient seen for follow-up of chronic conditions.\n"
            f"Medications: {a[0]} {a[1]} mg by mouth {a[2]}; {b[0]} {b[1]} mg by mouth {b[2]}.\n"
            "No new complaints. Continue current plan and return in three months."
        )
    return docs


def reset_database() -> None:
    from ponder.cli.dbadmin import migrate, recreate_database

    recreate_database(BENCH_DB)
    migrate()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


# -- API submit rate -------------------------------------------------------------------------


async def _submit_load(
    base: str, key: str, clients: int, total: int, rate: float | None = None
) -> dict[str, float]:
    """``clients`` concurrent clients submit ``total`` jobs. Without ``rate`` each sends as
    fast as it can (the saturation throughput); with ``rate`` they send on a fixed schedule
    at ``rate`` per second in all, and latency counts from the scheduled send time, so a
    slow server cannot hide its queueing (no coordinated omission)."""
    # aiohttp, not httpx: the load generator shares the machine's cores with the API and
    # PostgreSQL, so the lighter client measures the server rather than itself.
    import aiohttp

    body = json.dumps(
        {"task": "medrec_extraction", "document": documents(1)[0], "n": 1, "cache": "off"}
    )
    headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
    latencies: list[float] = []
    errors = 0
    per_client = total // clients

    async def client_loop(session: aiohttp.ClientSession, index: int, count: int) -> None:
        nonlocal errors
        loop = asyncio.get_running_loop()
        start = loop.time() + (index / rate if rate else 0.0)
        for i in range(count):
            scheduled = start + i * clients / rate if rate else loop.time()
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            async with session.post(f"{base}/v1/jobs", data=body, headers=headers) as r:
                await r.read()
                errors += r.status != 201
            latencies.append((loop.time() - scheduled) * 1000)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        # Warm-up at full concurrency: the pool's connections, the key cache, compiled SQL.
        await asyncio.gather(*[client_loop(session, i, 10) for i in range(clients)])
        latencies.clear()
        started = time.perf_counter()
        await asyncio.gather(*[client_loop(session, i, per_client) for i in range(clients)])
        elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.50),
        "p90_ms": percentile(latencies, 0.90),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies),
    }


def bench_submit(args: argparse.Namespace, key: str, logdir: Path) -> dict[str, float]:
    import redis

    from ponder.cli.devservers import free_port
    from ponder.cli.localrun import start_api, stop, wait_ready

    port = free_port()
    log = open(logdir / "api-submit.log", "wb")  # noqa: SIM115
    # The per-tenant rate limit is policy, not capacity: off while measuring capacity.
    env = {"PONDER_LOG_LEVEL": "WARNING", "PONDER_LIMITS__TENANT_RATE_PER_S": "0"}
    api = start_api(env, port, log, workers=args.api_workers)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base)
        paced = asyncio.run(
            _submit_load(base, key, args.clients, args.submit_requests, rate=args.submit_rate)
        )
        saturated = asyncio.run(_submit_load(base, key, args.clients, args.submit_requests))
        out = {f"submit_{k}": v for k, v in paced.items()}
        out.update({f"submit_saturation_{k}": v for k, v in saturated.items()})
        out["submit_target_rate"] = args.submit_rate
        return out
    finally:
        stop(api)
        log.close()
        redis.Redis.from_url(BENCH_BROKER).flushdb()


# -- the engine driven directly ------------------------------------------------------------


def bench_direct(args: argparse.Namespace, docs: list[str]) -> dict[str, Any]:
    from vllm import LLM, SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    from ponder.config import get_settings
    from ponder.engines.vllm import engine_kwargs
    from tasks.medrec_extraction import TASK

    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    settings = get_settings()
    # The same engine arguments as the worker's engine.
    llm = LLM(
        **engine_kwargs(
            model=settings.model_path,
            dtype=settings.engine.dtype,
            max_model_len=settings.engine.max_model_len,
            enforce_eager=settings.engine.enforce_eager,
            seed=settings.engine.seed,
        )
    )
    tokenizer = llm.get_tokenizer()
    schema = TASK.json_schema()

    def prompt(doc: str) -> str:
        text = tokenizer.apply_chat_template(
            list(TASK.messages(doc)), tokenize=False, add_generation_prompt=True
        )
        assert isinstance(text, str)
        return text

    def params(n: int, seed: int, schema_on: bool = True) -> SamplingParams:
        return SamplingParams(
            n=n,
            temperature=0.7,
            top_p=0.95,
            max_tokens=args.max_tokens,
            seed=seed,
            logprobs=1,
            structured_outputs=StructuredOutputsParams(json=schema) if schema_on else None,
        )

    def generate(prompts: list[str], sampling: list[SamplingParams]) -> tuple[float, int]:
        t0 = time.perf_counter()
        outs = llm.generate(prompts, sampling, use_tqdm=False)
        return time.perf_counter() - t0, sum(len(c.token_ids) for o in outs for c in o.outputs)

    generate([prompt(docs[0])], [params(2, 1)])  # warm-up: logprobs and the grammar compile
    prompts = [prompt(d) for d in docs]
    wall, tokens = generate(prompts, [params(args.n, 1000 + i) for i in range(len(docs))])
    out: dict[str, Any] = {
        "direct_wall_s": wall,
        "direct_jobs_per_s": len(docs) / wall,
        "direct_output_tokens": tokens,
        "direct_output_tokens_per_s": tokens / wall,
    }
    # n in one request vs n requests, for one prompt; sample i has seed s+i either way.
    n, p, s = args.n_compare, prompts[0], 77
    one_wall, one_tokens = generate([p], [params(n, s)])
    seq_wall, seq_tokens = 0.0, 0
    for i in range(n):
        w, t = generate([p], [params(1, s + i)])
        seq_wall, seq_tokens = seq_wall + w, seq_tokens + t
    conc_wall, conc_tokens = generate([p] * n, [params(1, s + i) for i in range(n)])
    out.update(
        {
            "n_compare": n,
            "n_in_one_wall_s": one_wall,
            "n_in_one_tokens": one_tokens,
            "n_sequential_wall_s": seq_wall,
            "n_sequential_tokens": seq_tokens,
            "n_concurrent_wall_s": conc_wall,
            "n_concurrent_tokens": conc_tokens,
            "n_in_one_over_sequential": one_wall / seq_wall,
            "n_in_one_over_concurrent": one_wall / conc_wall,
        }
    )
    return out


# -- the whole queue -------------------------------------------------------------------------


def bench_queued(args: argparse.Namespace, docs: list[str], key: str, logdir: Path) -> dict:
    import httpx
    import sqlalchemy as sa

    from ponder.cli.devservers import free_port
    from ponder.cli.localrun import start_api, start_worker, stop, wait_ready
    from ponder.db import get_engine

    env = {
        "PONDER_LIMITS__MAX_TOKENS_PER_SAMPLE": str(args.max_tokens),
        "PONDER_WORKER__JOBS_IN_FLIGHT": str(max(args.docs, 1)),
        "PONDER_LOG_LEVEL": "WARNING",
        "PONDER_LIMITS__TENANT_RATE_PER_S": "0",
    }
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    api_log = open(logdir / "api.log", "wb")  # noqa: SIM115
    worker_log = open(logdir / "worker.log", "wb")  # noqa: SIM115
    api = start_api(env, port, api_log)
    worker = start_worker(env, worker_log, queues="reasoning,notify,default")
    engine = get_engine()
    ended = "('succeeded','needs_review','failed','cancelled')"

    def wait_all(ids: list[str]) -> None:
        query = sa.text(f"select count(*) from jobs where id = any(:ids) and status in {ended}")
        while True:
            with engine.connect() as conn:
                if conn.execute(query, {"ids": ids}).scalar_one() == len(ids):
                    return
            time.sleep(0.2)

    try:
        wait_ready(base)
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"})

        def submit(doc: str, seed: int, n: int) -> str:
            body = {
                "task": "medrec_extraction",
                "document": doc,
                "n": n,
                "seed": seed,
                "cache": "off",
            }
            r = client.post("/v1/jobs", json=body)
            r.raise_for_status()
            return str(r.json()["id"])

        wait_all([submit(docs[0], 1, 2)])  # warm-up: engine start, logprobs, grammar
        started = time.perf_counter()
        ids = [submit(d, 1000 + i, args.n) for i, d in enumerate(docs)]
        wait_all(ids)
        wall = time.perf_counter() - started
        with engine.connect() as conn:
            tokens = conn.execute(
                sa.text("select sum(completion_tokens) from jobs where id = any(:ids)"),
                {"ids": ids},
            ).scalar_one()
            statuses: dict[str, int] = dict(
                conn.execute(
                    sa.text("select status, count(*) from jobs where id = any(:ids) group by 1"),
                    {"ids": ids},
                ).all()
            )
        return {
            "queued_wall_s": wall,
            "queued_jobs_per_s": len(ids) / wall,
            "queued_output_tokens": int(tokens or 0),
            "queued_output_tokens_per_s": int(tokens or 0) / wall,
            "queued_statuses": statuses,
        }
    finally:
        stop(worker)
        stop(api)
        api_log.close()
        worker_log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=32, help="documents (M)")
    parser.add_argument("--n", type=int, default=4, help="samples per document")
    parser.add_argument("--n-compare", type=int, default=8, help="n for one-vs-many requests")
    parser.add_argument("--max-tokens", type=int, default=256, help="output tokens per sample")
    parser.add_argument("--clients", type=int, default=20, help="concurrent API clients")
    parser.add_argument("--submit-requests", type=int, default=3000)
    parser.add_argument(
        "--submit-rate", type=float, default=200.0, help="paced submit rate (jobs/s, all clients)"
    )
    parser.add_argument("--api-workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--skip", default="", help="comma list of phases to skip")
    parser.add_argument("--out", type=Path, help="write the figures as JSON")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    from ponder.db import session_scope
    from ponder.tenants import issue_key

    reset_database()
    with session_scope() as session:
        key = issue_key(session=session, tenant_name="bench").key
    logdir = Path(tempfile.mkdtemp(prefix="ponder-bench-"))
    docs = documents(args.docs)
    figures: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "docs": args.docs,
        "n": args.n,
        "max_tokens": args.max_tokens,
    }
    if "submit" not in skip:
        figures.update(bench_submit(args, key, logdir))
    if "direct" not in skip:
        figures.update(bench_direct(args, docs))
        gc.collect()  # the direct engine is gone before the worker's starts
    if "queued" not in skip:
        figures.update(bench_queued(args, docs, key, logdir))
    if "direct_jobs_per_s" in figures and "queued_jobs_per_s" in figures:
        figures["queued_over_direct"] = figures["queued_jobs_per_s"] / figures["direct_jobs_per_s"]
        figures["queued_over_direct_tokens"] = (
            figures["queued_output_tokens_per_s"] / figures["direct_output_tokens_per_s"]
        )
    print_table(figures)
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2, default=str))
    print(f"logs in {logdir}")


def print_table(f: dict[str, Any]) -> None:
    def row(name: str, value: Any, unit: str = "") -> None:
        text = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"  {name:42} {text:>12} {unit}")

    print(f"\nmachine: {f['machine']}; M={f['docs']} documents, n={f['n']}, "
          f"max_tokens={f['max_tokens']}")  # fmt: skip
    for key, unit in [
        ("direct_jobs_per_s", "jobs/s"),
        ("direct_output_tokens_per_s", "tok/s"),
        ("queued_jobs_per_s", "jobs/s"),
        ("queued_output_tokens_per_s", "tok/s"),
        ("queued_over_direct", "(jobs/s ratio, target >= 0.90)"),
        ("queued_over_direct_tokens", "(tok/s ratio)"),
        ("n_in_one_wall_s", "s"),
        ("n_sequential_wall_s", "s"),
        ("n_concurrent_wall_s", "s"),
        ("n_in_one_over_sequential", "(target <= 0.5)"),
        ("n_in_one_over_concurrent", ""),
        ("submit_rps", "req/s sustained at the paced rate (target >= 200)"),
        ("submit_p50_ms", "ms at the paced rate"),
        ("submit_p99_ms", "ms at the paced rate (target <= 100)"),
        ("submit_errors", "errors at the paced rate"),
        ("submit_saturation_rps", "req/s, clients sending as fast as they can"),
        ("submit_saturation_p50_ms", "ms at saturation"),
        ("submit_saturation_p99_ms", "ms at saturation"),
    ]:
        if key in f:
            row(key, f[key], unit)
    if statistics and "queued_statuses" in f:
        print(f"  queued job statuses: {f['queued_statuses']}")


if __name__ == "__main__":
    main()
