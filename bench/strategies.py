"""Every strategy on the project's sample documents, through the whole pipeline (API, worker,
real engine): verified rate, tokens, wall seconds and cost per job, one row per strategy.

    OMP_NUM_THREADS=1 .venv/bin/python bench/strategies.py --out strategies.json

Jobs run one at a time so each job's wall time is its own. Uses the ``ponder_bench``
database (recreated) and Redis database 12.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from throughput import BENCH_BROKER, BENCH_DB, reset_database

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["PONDER_DATABASE__URL"] = BENCH_DB
os.environ["PONDER_BROKER__URL"] = BENCH_BROKER

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = [
    ("contract_review", ROOT / "samples" / "contract_msa.txt"),
    ("medrec_extraction", ROOT / "samples" / "clinic_note.md"),
]
# Parameters sized for a 2-core CPU with the embedded model; override with --params JSON.
STRATEGIES: dict[str, dict[str, Any]] = {
    "single": {},
    "best_of_n": {"n": 4},
    "self_consistency": {"n": 4},
    "extended_reasoning": {"n": 2, "params": {"thinking_tokens": 256}},
    "refine": {"n": 2, "params": {"max_rounds": 3}},
    "adaptive": {"n": 4, "params": {"initial_n": 2, "ladder": ["best_of_n", "refine"]}},
    "beam": {"n": 2, "params": {"width": 2, "expansions": 3, "depth": 3}},
}
ENDED = ("succeeded", "needs_review", "failed", "cancelled")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--max-tokens", type=int, default=512, help="output tokens per sample")
    parser.add_argument("--price-prompt", type=float, default=0.05, help="per million tokens")
    parser.add_argument("--price-completion", type=float, default=0.20, help="per million")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import httpx

    from ponder.cli.devservers import free_port
    from ponder.cli.localrun import start_api, start_worker, stop, wait_ready
    from ponder.db import session_scope
    from ponder.tenants import issue_key

    reset_database()
    with session_scope() as session:
        key = issue_key(session=session, tenant_name="bench").key
    env = {
        "PONDER_LIMITS__MAX_TOKENS_PER_SAMPLE": str(args.max_tokens),
        "PONDER_COST__PER_MILLION_PROMPT_TOKENS": str(args.price_prompt),
        "PONDER_COST__PER_MILLION_COMPLETION_TOKENS": str(args.price_completion),
        "PONDER_LOG_LEVEL": "WARNING",
    }
    logdir = Path(tempfile.mkdtemp(prefix="ponder-bench-strategies-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    api_log, worker_log = open(logdir / "api.log", "wb"), open(logdir / "worker.log", "wb")  # noqa: SIM115
    api, worker = start_api(env, port, api_log), start_worker(env, worker_log)
    rows: dict[str, dict[str, Any]] = {}
    try:
        wait_ready(base)
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"})
        for strategy in args.strategies.split(","):
            jobs = []
            for task, path in SAMPLES:
                body = {"task": task, "document": path.read_text(), "strategy": strategy,
                        "seed": 7, **STRATEGIES.get(strategy, {})}  # fmt: skip
                r = client.post("/v1/jobs", json=body)
                r.raise_for_status()
                jobs.append(_wait(client, r.json()["id"]))
            rows[strategy] = _row(jobs)
            print(f"{strategy}: {rows[strategy]}", flush=True)
    finally:
        stop(worker)
        stop(api)
        api_log.close()
        worker_log.close()
    _print(rows, args)
    if args.out:
        figures = {"strategies": rows, "max_tokens": args.max_tokens}
        args.out.write_text(json.dumps(figures, indent=2))
    print(f"logs in {logdir}")


def _wait(client: Any, job_id: str) -> dict[str, Any]:
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ENDED:
            return job
        time.sleep(0.5)


def _row(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    from datetime import datetime

    def wall(job: dict[str, Any]) -> float:
        if not job["started_at"] or not job["finished_at"]:
            return 0.0
        start = datetime.fromisoformat(job["started_at"])
        return (datetime.fromisoformat(job["finished_at"]) - start).total_seconds()

    count = len(jobs)
    tokens = [j["tokens"]["prompt"] + j["tokens"]["completion"] for j in jobs]
    return {
        "jobs": count,
        "verified_rate": sum(j["status"] == "succeeded" for j in jobs) / count,
        "failed": sum(j["status"] == "failed" for j in jobs),
        "tokens_per_job": sum(tokens) / count,
        "thinking_tokens_per_job": sum(j["tokens"]["thinking"] for j in jobs) / count,
        "wall_s_per_job": sum(wall(j) for j in jobs) / count,
        "cost_per_job": sum(j["cost"] or 0.0 for j in jobs) / count,
        "statuses": [f"{j['task']}:{j['status']}" for j in jobs],
    }


def _print(rows: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    print(f"\nper strategy, over {len(SAMPLES)} sample documents; "
          f"max_tokens={args.max_tokens}; price {args.price_prompt}/{args.price_completion} "
          "per million prompt/completion tokens")  # fmt: skip
    print(f"{'strategy':20} {'verified':>9} {'tokens/job':>11} {'think/job':>10} "
          f"{'wall s/job':>11} {'cost/job':>10}")  # fmt: skip
    for name, r in rows.items():
        print(f"{name:20} {r['verified_rate']:>9.2f} {r['tokens_per_job']:>11.0f} "
              f"{r['thinking_tokens_per_job']:>10.0f} {r['wall_s_per_job']:>11.1f} "
              f"{r['cost_per_job']:>10.6f}")  # fmt: skip


if __name__ == "__main__":
    main()
