"""The figures of an evaluation, per strategy: score against gold, verified rate, precision
among verified jobs, tokens, latency and cost; as a table, as JSON, and as a plot."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ponder.evaluation.harness import StrategyRun
from ponder.evaluation.scoring import score_item

FAILED = {"failed", "cancelled", "expired", "refused", "timed_out"}
"""Statuses of items that produced no answer: they count, with score 0, in every rate."""


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def summarise(task: str, run: StrategyRun) -> dict[str, Any]:
    """One strategy's figures. Every item counts: failed, refused and timed-out ones score 0
    and are never verified or right."""
    per_item: list[dict[str, Any]] = []
    for r in run.runs:
        scored = score_item(task, r.output, r.item.gold)
        per_item.append({
            "id": r.item.id, "status": r.status, "score": round(scored.score, 4),
            "right": scored.right, "tokens": r.prompt_tokens + r.completion_tokens,
            "latency_s": None if r.latency_s is None else round(r.latency_s, 2),
            "cost": r.cost, "job_id": r.job_id, "error": r.error, "detail": scored.detail,
        })  # fmt: skip
    items = len(per_item)
    ran = [p for p, r in zip(per_item, run.runs, strict=True) if r.job_id is not None]
    verified = [p for p in per_item if p["status"] == "succeeded"]
    correct = sum(p["right"] for p in per_item)
    total_cost = sum(p["cost"] or 0.0 for p in per_item)
    latencies = [p["latency_s"] for p in ran if p["latency_s"] is not None]
    return {
        "items": items,
        "failed_items": sum(p["status"] in FAILED for p in per_item),
        "score": sum(p["score"] for p in per_item) / items,
        "verified_rate": len(verified) / items,
        "verified": len(verified),
        "precision_verified": _ratio(sum(p["right"] for p in verified), len(verified)),
        "correct": correct,
        "tokens_per_job": _ratio(sum(p["tokens"] for p in ran), len(ran)),
        "p50_s": percentile(latencies, 0.5),
        "p95_s": percentile(latencies, 0.95),
        "cost_per_job": _ratio(total_cost, len(ran)),
        "cost_per_correct": _ratio(total_cost, correct),
        "wall_s": round(run.wall_s, 1),
        "per_item": per_item,
    }


_COLUMNS = (
    ("strategy", 20, None),
    ("items", 5, "items"),
    ("failed", 6, "failed_items"),
    ("score", 6, "score"),
    ("verified", 8, "verified_rate"),
    ("prec@verif", 10, "precision_verified"),
    ("tokens/job", 10, "tokens_per_job"),
    ("p50 s", 7, "p50_s"),
    ("p95 s", 7, "p95_s"),
    ("$/job", 9, "cost_per_job"),
    ("$/correct", 9, "cost_per_correct"),
)


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key in ("items", "failed_items"):
        return str(value)
    if key in ("score", "verified_rate", "precision_verified"):
        return f"{value:.3f}"
    if key == "tokens_per_job":
        return f"{value:.0f}"
    if key in ("p50_s", "p95_s"):
        return f"{value:.1f}"
    return f"{value:.6f}"


def format_table(payload: dict[str, Any]) -> str:
    """The strategies as rows, with a header saying what the columns measure."""
    header = " ".join(f"{name:>{width}}" if key else f"{name:<{width}}"
                      for name, width, key in _COLUMNS)  # fmt: skip
    judges = "; model judges on" if payload.get("model_judges") else ""
    lines = [
        f"task {payload['task']}: {payload['items']} items from {payload['dataset']}{judges}",
        f"score: {payload['metric']}; right: {payload['right_rule']}; prices per million "
        f"tokens: prompt {payload['prices']['prompt']}, completion "
        f"{payload['prices']['completion']} {payload['prices']['currency']}",
        header,
        "-" * len(header),
    ]
    for text, figures in payload["strategies"].items():
        cells = [f"{text:<20}"] + [
            f"{_cell(key, figures[key]):>{width}}" for _, width, key in _COLUMNS if key
        ]
        lines.append(" ".join(cells))
    return "\n".join(lines)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")


def require_matplotlib() -> None:
    """Fail before a long run, not after it, when a plot was asked for and cannot be drawn."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise RuntimeError("--plot needs matplotlib: pip install -e '.[eval]'") from None


def plot(path: Path, payload: dict[str, Any]) -> None:
    """Score against tokens per job, one labelled point per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.4))
    markers = "osD^v<>p*h"
    for i, (text, figures) in enumerate(payload["strategies"].items()):
        x, y = figures["tokens_per_job"] or 0.0, figures["score"]
        # A legend rather than labels at the points: strategies often land on one point.
        axes.scatter([x], [y], marker=markers[i % len(markers)], s=60, alpha=0.8, label=text)
    axes.set_xlim(left=0)
    axes.set_ylim(-0.02, 1.02)
    axes.set_xlabel("tokens per job (prompt + completion)")
    axes.set_ylabel(f"score ({payload['metric']})")
    axes.set_title(f"{payload['task']}: {payload['items']} items")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
