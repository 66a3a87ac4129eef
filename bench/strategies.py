"""Strategies through the whole pipeline (API, worker, real engine), in one of two runs.

On the project's sample documents, every strategy: verified rate, tokens, wall seconds and
cost per job, one row per strategy (jobs one at a time, so each job's wall time is its own):

    OMP_NUM_THREADS=1 .venv/bin/python bench/strategies.py --out strategies.json

On labelled data (``--compare TASK``; GSM8K for math_answer, SIMORD for medrec_extraction),
the configurations that spend tokens only where they pay, against fixed ``best_of_n:8``, on
the same items with the same seed: tokens per job, score, verified rate and precision among
verified, each difference with a paired bootstrap 95 % interval over the items:

    OMP_NUM_THREADS=1 .venv/bin/python bench/strategies.py --compare math_answer --limit 50 \
        --out compare-math.json

A configuration the code does not accept (``early_stop`` before it exists) is skipped and
said so. ``auto`` routes with the band tables in ``AUTO_TABLES``, fixed before any run: they
are not tuned on the items reported. Uses the ``ponder_bench`` database (recreated) and Redis
database 12, or ``PONDER_BENCH_DATABASE_URL`` and ``PONDER_BENCH_BROKER_URL``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import throughput
from throughput import reset_database

# Another run's database and broker, so that two benchmarks on one machine do not collide.
throughput.BENCH_DB = os.environ.get("PONDER_BENCH_DATABASE_URL", throughput.BENCH_DB)
BENCH_BROKER = os.environ.get("PONDER_BENCH_BROKER_URL", throughput.BENCH_BROKER)
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["PONDER_DATABASE__URL"] = throughput.BENCH_DB
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

EARLY_STOP = {"window": 32, "warmup": 2, "percentile": 10.0}
"""DeepConf's conservative setting (DeepConf-high: the threshold at the 10th percentile of the
warm-up's lowest window confidence, so about 90 % of samples run to the end), not tuned."""
COMPARE: dict[str, dict[str, Any]] = {
    "best_of_n:8": {"strategy": "best_of_n", "n": 8},
    "best_of_n:8+early_stop": {
        "strategy": "best_of_n", "n": 8, "params": {"early_stop": EARLY_STOP},
    },
    "self_consistency:8+early_stop": {
        "strategy": "self_consistency", "n": 8, "params": {"early_stop": EARLY_STOP},
    },
    "adaptive": {"strategy": "adaptive", "n": 8},
    "auto": {"strategy": "auto", "n": 8},
}  # fmt: skip
BASELINE = "best_of_n:8"
AUTO_TABLES = """\
[tasks.math_answer.auto]
bands = [
  { max_score = 0.35, strategy = "single" },
  { max_score = 0.65, strategy = "best_of_n", n = 4 },
  { max_score = 1.0, strategy = "adaptive" },
]

[tasks.medrec_extraction.auto]
bands = [
  { max_score = 0.35, strategy = "single" },
  { max_score = 0.65, strategy = "best_of_n", n = 4 },
  { max_score = 1.0, strategy = "adaptive" },
]
"""
"""Where ``auto`` sends a document, decided before any run (three even-ish bands)."""
BOOTSTRAP_RESAMPLES = 2000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--compare", metavar="TASK", help="labelled comparison on TASK's data")
    parser.add_argument("--configs", default=",".join(COMPARE), help="with --compare")
    parser.add_argument("--dataset", type=Path, help="with --compare; else the task's default")
    parser.add_argument("--limit", type=int, default=20, help="items, with --compare")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-tokens", type=int, default=512, help="output tokens per sample")
    parser.add_argument("--price-prompt", type=float, default=0.05, help="per million tokens")
    parser.add_argument("--price-completion", type=float, default=0.20, help="per million")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--plot", type=Path, help="with --compare: score against tokens per job")
    parser.add_argument(
        "--from", dest="from_json", type=Path,
        help="print the table (and --plot) of an earlier --compare run's --out, running nothing",
    )  # fmt: skip
    args = parser.parse_args()
    if args.from_json:
        figures = json.loads(args.from_json.read_text())
        _print_compare(figures)
        if args.plot:
            _plot(args.plot, figures)
    elif args.compare:
        compare(args)
    else:
        samples(args)


def _plot(path: Path, figures: dict[str, Any]) -> None:
    from ponder.evaluation.report import plot, require_matplotlib

    require_matplotlib()
    payload = {"task": figures["task"], "items": figures["items"], "metric": "mean per item",
               "strategies": figures["configs"]}  # fmt: skip
    plot(path, payload)


@contextlib.contextmanager
def pipeline(args: argparse.Namespace, extra_env: dict[str, str]) -> Iterator[Any]:
    """A fresh database, an API and a worker; yields an API client with a key."""
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
        **extra_env,
    }
    logdir = Path(tempfile.mkdtemp(prefix="ponder-bench-strategies-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    api_log, worker_log = open(logdir / "api.log", "wb"), open(logdir / "worker.log", "wb")  # noqa: SIM115
    api, worker = start_api(env, port, api_log), start_worker(env, worker_log)
    try:
        wait_ready(base)
        yield httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"})
    finally:
        stop(worker)
        stop(api)
        api_log.close()
        worker_log.close()
        print(f"logs in {logdir}")


def samples(args: argparse.Namespace) -> None:
    rows: dict[str, dict[str, Any]] = {}
    with pipeline(args, {}) as client:
        for strategy in args.strategies.split(","):
            jobs = []
            for task, path in SAMPLES:
                body = {"task": task, "document": path.read_text(), "strategy": strategy,
                        "seed": args.seed, "cache": "off",
                        **STRATEGIES.get(strategy, {})}  # fmt: skip
                r = client.post("/v1/jobs", json=body)
                r.raise_for_status()
                jobs.append(_wait(client, r.json()["id"]))
            rows[strategy] = _row(jobs)
            print(f"{strategy}: {rows[strategy]}", flush=True)
    _print(rows, args)
    if args.out:
        figures = {"strategies": rows, "max_tokens": args.max_tokens}
        args.out.write_text(json.dumps(figures, indent=2))


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


# -- labelled comparison ---------------------------------------------------------------------


def compare(args: argparse.Namespace) -> None:
    from ponder.evaluation.loaders import default_dataset, load_dataset

    task = args.compare
    items = load_dataset(args.dataset or default_dataset(task), task=task, limit=args.limit)
    knobs = Path(tempfile.mkdtemp(prefix="ponder-bench-knobs-")) / "knobs.toml"
    knobs.write_text(AUTO_TABLES + "\n[tenants.default]\nmax_n = 16\n")
    configs = _runnable_configs(args.configs.split(","), knobs)
    if BASELINE not in configs:
        raise SystemExit(f"the baseline {BASELINE} must be among --configs")
    per_item: dict[str, list[dict[str, Any]]] = {}
    with pipeline(args, {"PONDER_KNOBS_FILE": str(knobs)}) as client:
        for name, overrides in configs.items():
            ids = []
            for item in items:
                body = {"task": task, "document": item.document, "seed": args.seed,
                        "cache": "off", **overrides}  # fmt: skip
                r = client.post("/v1/jobs", json=body)
                r.raise_for_status()
                ids.append(r.json()["id"])
            per_item[name] = [_scored(task, item, _wait(client, job_id))
                              for item, job_id in zip(items, ids, strict=True)]  # fmt: skip
            print(f"{name}: {_summary(per_item[name])}", flush=True)
    figures = {
        "task": task, "items": len(items), "seed": args.seed, "max_tokens": args.max_tokens,
        "baseline": BASELINE, "early_stop": EARLY_STOP, "auto_tables": AUTO_TABLES,
        "bootstrap": {"resamples": BOOTSTRAP_RESAMPLES, "interval": 0.95, "seed": args.seed},
        "configs": {name: {**_summary(rows), "against_baseline": _paired(rows, per_item[BASELINE],
                                                                         args.seed)}
                    for name, rows in per_item.items()},
        "per_item": per_item,
    }  # fmt: skip
    _print_compare(figures)
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2))
    if args.plot:
        _plot(args.plot, figures)


def _runnable_configs(names: list[str], knobs: Path) -> dict[str, dict[str, Any]]:
    """The configurations this code accepts; one it refuses is skipped with the reason."""
    from pydantic import ValidationError

    from ponder.jobs.knobs import KnobsError, parse_knobs
    from ponder.strategies import STRATEGIES

    try:
        parse_knobs(knobs)
    except KnobsError as exc:
        raise SystemExit(f"the auto band tables are refused: {exc}") from None
    configs = {}
    for name in names:
        overrides = COMPARE.get(name)
        if overrides is None:
            raise SystemExit(f"unknown config {name!r}; known: {', '.join(COMPARE)}")
        strategy = STRATEGIES.get(overrides["strategy"])
        try:
            if strategy is None:
                raise ValueError(f"no strategy {overrides['strategy']}")
            if strategy.name != "auto":
                strategy.validate_params(overrides.get("params"))
        except (ValueError, ValidationError) as exc:
            print(f"skipped {name}: not accepted by this code ({exc})".splitlines()[0])
            continue
        configs[name] = overrides
    return configs


def _scored(task: str, item: Any, job: dict[str, Any]) -> dict[str, Any]:
    from ponder.evaluation.scoring import score_item

    output = (job.get("result") or {}).get("output")
    scored = score_item(task, output, item.gold)
    return {
        "id": item.id, "job_id": job["id"], "status": job["status"],
        "verified": job["status"] == "succeeded", "score": scored.score, "right": scored.right,
        "tokens": job["tokens"]["prompt"] + job["tokens"]["completion"],
    }  # fmt: skip


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    verified = [r for r in rows if r["verified"]]
    return {
        "tokens_per_job": _mean([r["tokens"] for r in rows]),
        "score": _mean([r["score"] for r in rows]),
        "verified_rate": _mean([float(r["verified"]) for r in rows]),
        "precision_verified": _mean([float(r["right"]) for r in verified]),
        "failed": sum(r["status"] == "failed" for r in rows),
    }


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


Statistic = Callable[[list[dict[str, Any]]], float | None]
STATISTICS: dict[str, Statistic] = {
    "score": lambda rows: _summary(rows)["score"],
    "verified_rate": lambda rows: _summary(rows)["verified_rate"],
    "precision_verified": lambda rows: _summary(rows)["precision_verified"],
}


def _paired(
    rows: list[dict[str, Any]], baseline: list[dict[str, Any]], seed: int
) -> dict[str, Any]:
    """Each statistic's difference from the baseline, and the tokens ratio, with a 95 %
    percentile interval from resampling the items (the same draw for both configurations, so
    an item's own difficulty cancels out)."""
    rng = random.Random(seed)
    count = len(rows)
    draws: dict[str, list[float]] = {name: [] for name in (*STATISTICS, "tokens_ratio")}
    for _ in range(BOOTSTRAP_RESAMPLES):
        picked = [rng.randrange(count) for _ in range(count)]
        ours, theirs = [rows[i] for i in picked], [baseline[i] for i in picked]
        for name, statistic in STATISTICS.items():
            a, b = statistic(ours), statistic(theirs)
            if a is not None and b is not None:  # precision needs a verified job on each side
                draws[name].append(a - b)
        base_tokens = sum(r["tokens"] for r in theirs)
        if base_tokens:
            draws["tokens_ratio"].append(sum(r["tokens"] for r in ours) / base_tokens)
    out: dict[str, Any] = {}
    for name, values in draws.items():
        values.sort()
        interval = (
            [values[int(0.025 * (len(values) - 1))], values[int(0.975 * (len(values) - 1))]]
            if values else None
        )  # fmt: skip
        out[name] = interval
    base_tokens = sum(r["tokens"] for r in baseline)
    out["tokens_ratio_point"] = (
        sum(r["tokens"] for r in rows) / base_tokens if base_tokens else None
    )
    return out


def _print_compare(figures: dict[str, Any]) -> None:
    print(f"\n{figures['task']}, {figures['items']} items, seed {figures['seed']}, "
          f"max_tokens={figures['max_tokens']}; [95 % paired bootstrap interval of the "
          f"difference from {figures['baseline']}]")  # fmt: skip
    print(f"{'config':30} {'tokens/job':>10} {'x base':>16} {'score':>20} "
          f"{'verified':>20} {'prec|verified':>20}")  # fmt: skip

    def cell(value: float | None, interval: list[float] | None, sign: str = "+") -> str:
        shown = "-" if value is None else f"{value:.2f}"
        if interval is None:
            return shown
        return shown + f" [{interval[0]:{sign}.2f},{interval[1]:{sign}.2f}]"

    for name, c in figures["configs"].items():
        paired = c["against_baseline"]
        ratio = paired["tokens_ratio_point"]
        print(f"{name:30} {c['tokens_per_job']:>10.0f} "
              f"{cell(ratio, paired['tokens_ratio'], ''):>16} "
              f"{cell(c['score'], paired['score']):>20} "
              f"{cell(c['verified_rate'], paired['verified_rate']):>20} "
              f"{cell(c['precision_verified'], paired['precision_verified']):>20}")  # fmt: skip


if __name__ == "__main__":
    main()
