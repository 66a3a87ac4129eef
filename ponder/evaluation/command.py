"""What ``ponder eval`` does, in order: check the arguments and the dataset before anything
starts, run the strategies, then print the table and write the JSON and the plot."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ponder.config import Settings, get_settings
from ponder.evaluation import report
from ponder.evaluation.harness import (
    ILLUSTRATIVE_PRICES,
    EvalOptions,
    StrategyRun,
    parse_strategies,
    run_evaluation,
)
from ponder.evaluation.loaders import (
    DEFAULT_CUAD_CHARS,
    DatasetError,
    default_dataset,
    load_dataset,
)
from ponder.evaluation.scoring import scorer_for
from tasks.registry import TASKS


class UsageError(Exception):
    """An argument or dataset problem, reported before any job runs."""


@dataclass(frozen=True)
class EvalArgs:
    task: str
    strategies: str
    dataset: Path | None = None
    fmt: str = "auto"
    limit: int | None = None
    out: Path | None = None
    plot: Path | None = None
    concurrency: int = 8
    timeout_s: float = 3600.0
    max_tokens: int | None = None
    seed: int = 0
    price_prompt: float | None = None
    price_completion: float | None = None
    cuad_chars: int = DEFAULT_CUAD_CHARS


def evaluate(args: EvalArgs) -> dict[str, Any]:
    """Runs the evaluation and returns the payload that the table, JSON and plot show."""
    try:
        scorer = scorer_for(args.task)
        specs = parse_strategies(args.strategies)
        path = args.dataset or default_dataset(args.task)
        items = load_dataset(path, task=args.task, fmt=args.fmt, limit=args.limit,
                             cuad_chars=args.cuad_chars)  # fmt: skip
        if args.plot is not None:
            report.require_matplotlib()
    except (KeyError, ValueError, RuntimeError) as exc:
        raise UsageError(str(exc.args[0] if exc.args else exc)) from None
    except DatasetError as exc:
        raise UsageError(str(exc)) from None
    settings = _settings(args)
    prices = _prices(args, settings)
    started = datetime.now(UTC)
    results = run_evaluation(
        task=args.task, items=items, specs=specs, settings=settings,
        options=EvalOptions(concurrency=args.concurrency, timeout_s=args.timeout_s,
                            seed=args.seed, prices=prices),
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )  # fmt: skip
    payload = {
        "task": args.task,
        "dataset": os.path.relpath(path),
        "items": len(items),
        "metric": scorer.metric,
        "right_rule": scorer.right_rule,
        "prices": {
            "prompt": prices[0],
            "completion": prices[1],
            "currency": settings.cost.currency,
            "per": "million tokens",
        },
        "model": settings.model_path if settings.engine.kind == "vllm" else settings.engine.model,
        "max_tokens_per_sample": settings.limits.max_tokens_per_sample,
        "model_judges": TASKS[args.task].judges_enabled(settings.tasks.judge_verifiers),
        "concurrency": args.concurrency,
        "seed": args.seed,
        "started_at": started.isoformat(timespec="seconds"),
        "strategies": _figures(args.task, results),
    }
    if args.out is not None:
        report.write_json(args.out, payload)
    if args.plot is not None:
        report.plot(args.plot, payload)
    return payload


def _figures(task: str, results: list[StrategyRun]) -> dict[str, dict[str, Any]]:
    return {run.spec.text: report.summarise(task, run) for run in results}


def _settings(args: EvalArgs) -> Settings:
    settings = get_settings()
    if args.max_tokens is None:
        return settings
    limits = settings.limits.model_copy(update={"max_tokens_per_sample": args.max_tokens})
    return settings.model_copy(update={"limits": limits})


def _prices(args: EvalArgs, settings: Settings) -> tuple[float, float]:
    """Given prices, else configured ones, else illustrative ones (the table says which)."""
    cost = settings.cost
    configured = (cost.per_million_prompt_tokens, cost.per_million_completion_tokens)
    fallback = configured if any(configured) else ILLUSTRATIVE_PRICES
    return (
        fallback[0] if args.price_prompt is None else args.price_prompt,
        fallback[1] if args.price_completion is None else args.price_completion,
    )
