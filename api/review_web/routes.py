"""The review workspace's pages under ``/review``: sign-in, the queue, a job, the stats.

Pages call the review service (ponder/reviews/) only; the request's session
(api/deps.py) owns the transaction, so a refused decision writes nothing."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from starlette.responses import RedirectResponse, Response

from api.deps import SessionDep, SettingsDep
from api.review_web import charts
from api.review_web.auth import CsrfCheckedDep, SignedIn, SignedInDep
from api.review_web.forms import form_fields, parse_answer
from api.review_web.highlight import anchors, segments
from api.review_web.pages import CsrfRefused, PageRoute, render, safe_next
from api.review_web.sessions import (
    clear_session,
    csrf_token,
    csrf_valid,
    new_session,
    password_tag,
    read_session,
    write_session,
)
from ponder.errors import Conflict, InvalidRequest, NotFound
from ponder.reviews.accounts import authenticate_reviewer
from ponder.reviews.service import (
    ReviewContext,
    check_answer,
    decide,
    evidence_spans,
    open_job,
    review_queue,
)
from ponder.reviews.stats import review_stats
from tasks.registry import TASKS

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/review", route_class=PageRoute, include_in_schema=False)

STATIC = Path(__file__).resolve().parent / "static"
STATIC_FILES = {"review.css": "text/css", "review.js": "text/javascript"}
AGES = {"": None, "1h": 3600, "1d": 86_400, "7d": 7 * 86_400}
"""The queue's age filter: jobs that ended at least this long ago."""
DECISIONS = {"approved", "approved_candidate", "corrected", "rejected"}


@router.get("/static/{name}")
def static_file(name: str) -> FileResponse:
    if name not in STATIC_FILES:
        raise NotFound(f"no static file {name!r}")
    return FileResponse(
        STATIC / name, media_type=STATIC_FILES[name], headers={"Cache-Control": "max-age=300"}
    )


@router.get("/sign-in")
def sign_in_page(request: Request, settings: SettingsDep, next: str = "/review") -> Response:
    current = read_session(request, settings)
    if current is not None and current.signed_in:
        return RedirectResponse(safe_next(next), status_code=303)
    anonymous = current or new_session()
    response = render(
        "sign_in.html",
        request=request,
        csrf=csrf_token(anonymous, settings),
        next=safe_next(next),
        email="",
        message=None,
    )
    write_session(response, anonymous, settings)
    return response


@router.post("/sign-in")
async def sign_in(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    form = await request.form()
    current = read_session(request, settings)
    token = form.get("csrf_token")
    if current is None or not csrf_valid(
        current, settings, token if isinstance(token, str) else None
    ):
        raise CsrfRefused("the sign-in form is out of date: reload the page and sign in again")
    email = str(form.get("email") or "").strip()
    password = str(form.get("password") or "")
    next_path = safe_next(form.get("next"))
    reviewer = (
        authenticate_reviewer(session=session, tenant_id=None, email=email, password=password)
        if email and password
        else None
    )
    if reviewer is None:
        # One message for an unknown email and a wrong password: neither is revealed.
        return render(
            "sign_in.html",
            request=request,
            status_code=401,
            csrf=csrf_token(current, settings),
            next=next_path,
            email=email,
            message="wrong email or password",
        )
    fresh = new_session(
        reviewer_id=reviewer.id,
        tenant_id=reviewer.tenant_id,
        tag=password_tag(reviewer.password_hash),
    )
    logger.info("reviewer %s signed in", reviewer.id)
    response = RedirectResponse(next_path, status_code=303)
    write_session(response, fresh, settings)
    return response


@router.post("/sign-out")
def sign_out(who: CsrfCheckedDep) -> Response:
    logger.info("reviewer %s signed out", who.reviewer_id)
    response = RedirectResponse("/review/sign-in", status_code=303)
    clear_session(response)
    return response


@router.get("")
def queue_page(
    request: Request,
    who: SignedInDep,
    session: SessionDep,
    task: str = "",
    batch: str = "",
    age: str = "",
    verifier: str = "",
    cursor: str | None = None,
) -> Response:
    if age not in AGES:
        raise InvalidRequest(f"unknown age filter {age!r}; use one of: any, 1h, 1d, 7d")
    if task and task not in TASKS:
        raise InvalidRequest(f"unknown task {task!r}; known: {', '.join(sorted(TASKS))}")
    items, next_cursor, counts = review_queue(
        session=session,
        tenant_id=who.tenant_id,
        task=task or None,
        batch_id=batch.strip() or None,
        failing_verifier=verifier.strip() or None,
        older_than_s=AGES[age],
        cursor=cursor,
    )
    verifiers = sorted({name for t in TASKS.values() for name in t.verifier_names(judges=True)})
    return render(
        "queue.html",
        request=request,
        reviewer_email=who.email,
        csrf=who.csrf,
        items=items,
        next_cursor=next_cursor,
        counts=counts,
        total=sum(counts.values()),
        tasks=sorted(TASKS),
        verifiers=verifiers,
        filters={"task": task, "batch": batch, "age": age, "verifier": verifier},
    )


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None


def _job_page(
    request: Request,
    who: SignedIn,
    ctx: ReviewContext,
    *,
    status_code: int = 200,
    answer: dict[str, Any] | None = None,
    message: str | None = None,
    checks: list[dict[str, Any]] | None = None,
    reason: str = "",
) -> Response:
    schema = ctx.task_type.output_model.model_json_schema()
    locked_by_other = ctx.lock is not None and not ctx.locked_by_me
    # An edited answer shows its own evidence: a corrected quote is seen located (or not).
    spans = ctx.evidence_spans if answer is None else evidence_spans(answer, ctx.document)
    cut = segments(ctx.document, spans)
    return render(
        "job.html",
        request=request,
        status_code=status_code,
        reviewer_email=who.email,
        csrf=who.csrf,
        ctx=ctx,
        job=ctx.job,
        segments=cut,
        anchors=anchors(cut),
        spans=spans,
        edited=answer is not None,
        fields=form_fields(schema),
        answer=answer if answer is not None else (ctx.selected_answer or {}),
        readonly=locked_by_other or ctx.review is not None,
        locked_by_other=locked_by_other,
        message=message,
        checks=checks,
        failing_checks=[v for v in (checks or []) if not v.get("passed")],
        reason=reason,
    )


@router.get("/jobs/{job_id}")
def job_page(request: Request, job_id: str, who: SignedInDep, session: SessionDep) -> Response:
    ctx = open_job(
        session=session,
        tenant_id=who.tenant_id,
        job_id=job_id,
        reviewer_id=who.reviewer_id,
        address=_address(request),
    )
    return _job_page(request, who, ctx)


@router.post("/jobs/{job_id}/decision")
async def job_decision(
    request: Request, job_id: str, who: CsrfCheckedDep, session: SessionDep, settings: SettingsDep
) -> Response:
    """approve / approve a candidate / correct / reject, or only check a correction. A refused
    decision re-shows the page with the edited answer and the message; its writes (inside a
    savepoint) are undone."""
    form = await request.form()
    action = str(form.get("decision") or "")
    if action not in DECISIONS | {"check"}:
        raise InvalidRequest(
            f"unknown decision {action!r}; use one of: {', '.join(sorted(DECISIONS))}"
        )
    # Opening claims (or refreshes) this reviewer's lock, as viewing the page does.
    ctx = open_job(
        session=session,
        tenant_id=who.tenant_id,
        job_id=job_id,
        reviewer_id=who.reviewer_id,
        address=_address(request),
    )
    fields = form_fields(ctx.task_type.output_model.model_json_schema())
    answer = parse_answer(fields, form) if action in ("corrected", "check") else None
    reason = str(form.get("reason") or "").strip()
    if action == "check":
        _, verdicts = check_answer(
            task_name=ctx.job.task, document=ctx.document, answer=answer or {}
        )
        failing = [v for v in verdicts if not v.get("passed") and v.get("required")]
        note = (
            "every required check passes"
            if not failing
            else "still failing: " + ", ".join(str(v.get("verifier")) for v in failing)
        )
        return _job_page(
            request, who, ctx, answer=answer, message=note, checks=verdicts, reason=reason
        )
    try:
        with session.begin_nested():
            decide(
                session=session,
                tenant_id=who.tenant_id,
                job_id=job_id,
                reviewer_id=who.reviewer_id,
                api_key_id=None,
                decision=action,
                candidate_id=str(form.get("candidate_id") or "") or None,
                answer=answer,
                reason=reason or None,
                settings=settings,
                address=_address(request),
            )
    except (InvalidRequest, Conflict) as exc:
        checks = exc.detail.get("verdicts") if isinstance(exc.detail, dict) else None
        if action == "corrected" and checks is None and answer is not None:
            _, checks = check_answer(task_name=ctx.job.task, document=ctx.document, answer=answer)
        return _job_page(
            request,
            who,
            ctx,
            status_code=exc.status_code,
            answer=answer,
            message=exc.message,
            checks=checks,
            reason=reason,
        )
    logger.info("reviewer %s decided %s on job %s", who.reviewer_id, action, job_id)
    return RedirectResponse(f"/review/jobs/{job_id}", status_code=303)


def _counts(values: dict[str, Any]) -> list[tuple[str, float]]:
    return [(k, float(v)) for k, v in values.items() if isinstance(v, int | float)]


def _stats_view(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """Per task (ponder/reviews/stats.py's figures): the charts drawn from them."""
    out = []
    for task, s in sorted(stats.items()):
        outcomes = {k: v for k, v in (s.get("outcomes") or {}).items() if k != "total"}
        times = {k: v for k, v in (s.get("review_time_s") or {}).items() if v is not None}
        qa = s.get("qa") or {}
        precision_rows = (
            [
                (
                    "succeeded",
                    float(qa["precision"]),
                    float(qa["low"]),
                    float(qa["high"]),
                    int(qa["n"]),
                )
            ]
            if qa.get("n") and qa.get("precision") is not None
            else []
        )
        out.append(
            {
                "task": task,
                "total": int((s.get("outcomes") or {}).get("total", 0)),
                "outcomes": charts.bar_chart(_counts(outcomes), css=[f"o-{k}" for k in outcomes]),
                "times": charts.bar_chart(
                    [(k, round(float(v), 1)) for k, v in times.items()], unit=" s"
                ),
                "approved_fail": charts.bar_chart(_counts(s.get("failing_on_approved") or {})),
                "corrected_fail": charts.bar_chart(_counts(s.get("failing_on_corrected") or {})),
                "qa": qa,
                "precision": charts.interval_chart(precision_rows),
            }
        )
    return out


@router.get("/stats")
def stats_page(request: Request, who: SignedInDep, session: SessionDep) -> Response:
    stats = review_stats(session=session, tenant_id=who.tenant_id)
    return render(
        "stats.html",
        request=request,
        reviewer_email=who.email,
        csrf=who.csrf,
        tasks=_stats_view(stats),
    )
