"""What notifications say: ids, status, task, a summary, counts and links. Document content
and answers only where the tenant opted in (a registered endpoint with ``include_content``)."""

from __future__ import annotations

from typing import Any

from ponder.config import Settings
from ponder.models import Batch, Job, utcnow

MAX_REPORTED_FAILURES = 100


def _base(settings: Settings) -> str:
    return settings.notify.public_base_url.rstrip("/")


def job_payload(job: Job, settings: Settings, *, include_content: bool = False) -> dict[str, Any]:
    base = _base(settings)
    result = job.result or {}
    data: dict[str, Any] = {
        "job_id": job.id,
        "status": job.status,
        "task": job.task,
        "strategy": job.config.get("strategy", {}).get("name"),
        # The registry model asked for and the one that answered (its fallback when they
        # differ); absent for a job submitted before the registry.
        "model_requested": job.config.get("model_requested"),
        "model_used": job.config.get("model_used"),
        # The A/B arm the job ran in (ponder/jobs/arms.py); null when it took no part.
        "arm": job.config.get("arm"),
        "summary": result.get("summary") or job.error or "",
        "failing_checks": [
            {"verifier": f["verifier"], "finding_count": len(f.get("findings", []))}
            for f in result.get("failing_checks", [])
        ],
        "tokens": {"prompt": job.prompt_tokens, "completion": job.completion_tokens},
        "metadata": job.metadata_ or {},
        "links": {"job": f"{base}/v1/jobs/{job.id}", "trace": f"{base}/v1/jobs/{job.id}/trace"},
    }
    review = result.get("review")
    if isinstance(review, dict):  # a person decided: say what, never the reason (content)
        data["review"] = {
            "decision": review["decision"],
            "at": review["at"],
            "provenance": review["provenance"],
        }
        data["summary"] = f"reviewed by a person: {review['decision'].replace('_', ' ')}"
    if include_content:
        data["document"] = job.document
        data["output"] = review.get("answer") if isinstance(review, dict) else result.get("output")
    return {"type": f"job.{job.status}", "timestamp": utcnow().isoformat(), "data": data}


def batch_payload(
    batch: Batch,
    *,
    status: str,
    counts: dict[str, int],
    failures: list[dict[str, Any]],
    failure_count: int,
    settings: Settings,
) -> dict[str, Any]:
    """The batch report. ``failures`` are the first items that failed (custom_id, job_id,
    error), at most ``MAX_REPORTED_FAILURES``; ``failure_count`` says how many there were."""
    base = _base(settings)
    links = {
        "batch": f"{base}/v1/batches/{batch.id}",
        "results": f"{base}/v1/batches/{batch.id}/results",
    }
    for failure in failures:
        failure["link"] = f"{base}/v1/jobs/{failure['job_id']}"
    return {
        "type": f"batch.{status}",
        "timestamp": utcnow().isoformat(),
        "data": {
            "batch_id": batch.id,
            "name": batch.name,
            "source": batch.source,
            "status": status,
            "round": batch.round,
            "total": sum(counts.values()),
            "counts": counts,
            "failures": failures,
            "failure_count": failure_count,
            "rejected_files": batch.rejected_files or [],
            "metadata": batch.metadata_ or {},
            "links": links,
        },
    }
