"""Jobs that ended as a run ends them (candidates, verdicts, the result, the outbox rows),
without an engine: the material the review tests decide on."""

from __future__ import annotations

import copy
from typing import Any

from ponder.config import get_settings
from ponder.db import session_scope
from ponder.jobs.lease import finish
from ponder.models import Candidate, Job, JobStatus, Verdict, new_id

NOTE = "Patient takes aspirin 81 mg by mouth daily. Metoprolol 25 mg by mouth twice daily."
ASPIRIN = {
    "name": "aspirin",
    "dose": "81",
    "unit": "mg",
    "route": "oral",
    "frequency": "daily",
    "status": "active",
    "evidence": "aspirin 81 mg by mouth daily",
}
METOPROLOL = {
    "name": "Metoprolol",
    "dose": "25",
    "unit": "mg",
    "route": "oral",
    "frequency": "twice daily",
    "status": "active",
    "evidence": "Metoprolol 25 mg by mouth twice daily",
}
GOOD = {"medications": [ASPIRIN, METOPROLOL]}
"""Passes every deterministic check on NOTE."""
INCOMPLETE = {"medications": [ASPIRIN]}
"""Misses metoprolol: fails completeness."""


def answer(**changes: Any) -> dict[str, Any]:
    """GOOD with fields of its first medication changed."""
    out = copy.deepcopy(GOOD)
    out["medications"][0].update(changes)
    return out


def ended_job(
    tenant_id: str,
    *,
    status: JobStatus = JobStatus.needs_review,
    output: dict[str, Any] | None = None,
    failing: tuple[str, ...] = ("completeness",),
    job_id: str | None = None,
    webhook_url: str | None = None,
    email: str | None = None,
    others: tuple[dict[str, Any], ...] = (),
) -> str:
    """A medrec job that ended ``status`` with ``output`` selected (INCOMPLETE by default) and
    the ``failing`` checks; ``others`` are further candidates' answers."""
    output = INCOMPLETE if output is None else output
    with session_scope() as session:
        job = Job(
            id=job_id or new_id(),
            tenant_id=tenant_id,
            task="medrec_extraction",
            status=JobStatus.running.value,
            request_hash="0" * 64,
            config={"strategy": {"name": "best_of_n"}, "verifiers": ["schema", "completeness"]},
            document=NOTE,
            webhook_url=webhook_url,
            email=email,
        )
        session.add(job)
        session.flush()
        ids = []
        for idx, parsed in enumerate((output, *others)):
            candidate = Candidate(
                job_id=job.id, step="sample", idx=idx, attempt=1, text="{}", parsed=parsed
            )
            session.add(candidate)
            session.flush()
            ids.append(candidate.id)
            for name in ("schema", "completeness"):
                passed = idx > 0 or name not in failing
                session.add(
                    Verdict(candidate_id=candidate.id, verifier=name, passed=passed,
                            score=float(passed), required=True, weight=1.0,
                            findings=[] if passed else [f"{name} failed"])
                )  # fmt: skip
        result = {
            "output": output,
            "selected": {"id": ids[0]},
            "rationale": "highest score",
            "failing_checks": [
                {"verifier": name, "required": True, "findings": [f"{name} failed"]}
                for name in failing
            ],
            "summary": "test",
        }
        finish(
            session=session,
            job=job,
            status=status,
            result=result,
            selected_candidate_id=ids[0],
            settings=get_settings(),
        )
        return job.id
