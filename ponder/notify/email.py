"""Email when a job or a batch ends: a short summary, counts and links, never document content.

Templates (text and HTML): ``email/job_succeeded``, ``email/job_needs_review``,
``email/job_failed`` (also cancelled and expired jobs), ``email/job_reviewed`` and
``email/batch_report``."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from ponder.config import NotifySettings
from ponder.prompts import render

SMTP_TIMEOUT_S = 15.0
STATUS_LABELS = {
    "succeeded": "succeeded",
    "needs_review": "needs review",
    "failed": "failed",
    "cancelled": "was cancelled",
    "expired": "expired",
    "reviewed": "was reviewed",
}
JOB_TEMPLATES = {
    "succeeded": "job_succeeded",
    "needs_review": "job_needs_review",
    "failed": "job_failed",
    "cancelled": "job_failed",
    "expired": "job_failed",
    "reviewed": "job_reviewed",
}
BATCH_LABELS = {
    "succeeded": "succeeded",
    "needs_review": "ended: some items need review",
    "completed_with_failures": "ended with failures",
    "failed": "failed",
    "cancelled": "was cancelled",
    "expired": "expired: its window passed before every item ran",
}
MAX_LISTED_FAILURES = 20


def _one_line(subject: str) -> str:
    # A line break in a header would let a value add headers of its own.
    return " ".join(subject.split())


def job_context(data: Mapping[str, Any]) -> dict[str, Any]:
    """The email context from a job notification's payload data."""
    return {
        "job_id": data["job_id"],
        "status": data["status"],
        "task": data["task"],
        "summary": data["summary"],
        "link": data["links"]["job"],
        "failing_checks": data["failing_checks"],
        "tokens": data["tokens"]["prompt"] + data["tokens"]["completion"],
        "cost": None,
        "review": data.get("review"),
    }


def render_job_email(context: Mapping[str, Any]) -> tuple[str, str, str]:
    """(subject, text, html) for a finished job.

    ``context`` holds job_id, status, task, summary, link, failing_checks (``verifier`` and
    ``finding_count`` each), tokens and cost (None when not priced). Findings are counted, not
    quoted: they may quote the document, and mailboxes are outside Ponder's control.
    """
    status = context["status"]
    if status not in STATUS_LABELS:
        raise ValueError(
            f"no email for job status {status!r}; expected one of {list(STATUS_LABELS)}"
        )
    full = {**context, "status_label": STATUS_LABELS[status]}
    label = STATUS_LABELS[status]
    subject = _one_line(f"[Ponder] job {context['job_id']} {label} — {context['task']}")
    name = JOB_TEMPLATES[status]
    return subject, render(f"email/{name}.txt.j2", **full), render(f"email/{name}.html.j2", **full)


def render_batch_email(data: Mapping[str, Any]) -> tuple[str, str, str]:
    """(subject, text, html) for a batch report, from the report's payload data: counts per
    state, the first failures (custom_id, job_id, error, link) and links to the results."""
    status = data["status"]
    if status not in BATCH_LABELS:
        raise ValueError(
            f"no email for batch status {status!r}; expected one of {list(BATCH_LABELS)}"
        )
    counts = data["counts"]
    name = data.get("name") or data["batch_id"]
    subject = _one_line(
        f"[Ponder] batch {name} {BATCH_LABELS[status]} — {counts.get('succeeded', 0)} of "
        f"{data['total']} succeeded, {counts.get('failed', 0) + counts.get('expired', 0)} failed"
    )
    listed = data["failures"][:MAX_LISTED_FAILURES]
    context = {
        **data,
        "status_label": BATCH_LABELS[status],
        "listed_failures": listed,
        "unlisted_failures": data["failure_count"] - len(listed),
    }
    text = render("email/batch_report.txt.j2", **context)
    return subject, text, render("email/batch_report.html.j2", **context)


def send_email(settings: NotifySettings, *, to: str, subject: str, text: str, html: str) -> None:
    """Send one multipart/alternative message; raises on any failure so the caller retries.

    TLS: ``smtp_ssl`` (implicit, port 465) or ``smtp_starttls`` (port 587), verified against the
    system's CAs or ``smtp_ca_file``; credentials are sent only after TLS when either is set."""
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=settings.mail_from.rpartition("@")[2] or None)
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    context = ssl.create_default_context(cafile=settings.smtp_ca_file or None)
    smtp: smtplib.SMTP
    if settings.smtp_ssl:
        smtp = smtplib.SMTP_SSL(
            settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT_S, context=context
        )
    else:
        smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT_S)
    with smtp:
        if settings.smtp_starttls:
            smtp.starttls(context=context)
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password)
        smtp.send_message(message)
