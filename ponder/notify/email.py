"""Email when a job ends: a short summary and a link, never any document content."""

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
    subject = f"[Ponder] job {context['job_id']} {STATUS_LABELS[status]} — {context['task']}"
    # A line break in a header would let a value add headers of its own.
    subject = " ".join(subject.split())
    return subject, render("email/job.txt.j2", **full), render("email/job.html.j2", **full)


def send_email(settings: NotifySettings, *, to: str, subject: str, text: str, html: str) -> None:
    """Send one multipart/alternative message; raises on any failure so the caller retries."""
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=settings.mail_from.rpartition("@")[2] or None)
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT_S) as smtp:
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password)
        smtp.send_message(message)
