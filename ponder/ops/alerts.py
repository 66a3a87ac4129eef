"""Cost and quality alerts: a periodic check over the jobs that ended in a recent window.

It fires when a task's cost per job exceeds its expected cost by a factor, or when the
structured-output failure rate or the needs_review rate rises above a threshold. An alert
is a log event, a metric (``ponder_alert_active``) and, when configured, an email and a
webhook to the operator. Alerts carry task names and figures only, never content.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import httpx
import sqlalchemy as sa

from ponder.config import Settings
from ponder.models import utcnow

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alert:
    kind: str
    """``cost``, ``schema_failure_rate`` or ``needs_review_rate``."""
    task: str
    value: float
    threshold: float
    jobs: int

    @property
    def message(self) -> str:
        return (
            f"{self.kind} for task {self.task} is {self.value:.4g}, above {self.threshold:.4g} "
            f"(over {self.jobs} jobs in the window)"
        )


def check_alerts(
    conn: sa.Connection, settings: Settings, now: datetime | None = None
) -> list[Alert]:
    cfg = settings.alerts
    since = (now or utcnow()) - timedelta(seconds=cfg.window_s)
    alerts: list[Alert] = []
    rows = conn.execute(
        sa.text(
            "select task, count(*), avg(cost), "
            # A reviewed job that was not a QA sample ended needs_review first: review must
            # not lower the rate that says how often the checks send work to people.
            "count(*) filter (where status = 'needs_review' "
            "or (status = 'reviewed' and not qa_sampled)) "
            "from jobs where finished_at >= :since group by task"
        ),
        {"since": since},
    ).all()
    for task, jobs, avg_cost, needs_review in rows:
        expected = cfg.expected_cost_per_job.get(task)
        if expected and avg_cost is not None and avg_cost > expected * cfg.cost_factor:
            alerts.append(Alert("cost", task, float(avg_cost), expected * cfg.cost_factor, jobs))
        if jobs >= cfg.min_jobs and needs_review / jobs > cfg.max_needs_review_rate:
            alerts.append(
                Alert(
                    "needs_review_rate", task, needs_review / jobs, cfg.max_needs_review_rate, jobs
                )
            )
    schema_rows = conn.execute(
        sa.text(
            "select j.task, count(*), count(*) filter (where not v.passed) "
            "from verdicts v join candidates c on c.id = v.candidate_id "
            "join jobs j on j.id = c.job_id "
            "where v.verifier = 'schema' and j.finished_at >= :since group by j.task"
        ),
        {"since": since},
    ).all()
    for task, checked, failed in schema_rows:
        if checked >= cfg.min_jobs and failed / checked > cfg.max_schema_failure_rate:
            alerts.append(
                Alert(
                    "schema_failure_rate",
                    task,
                    failed / checked,
                    cfg.max_schema_failure_rate,
                    checked,
                )
            )
    return alerts


def raise_alerts(alerts: list[Alert], settings: Settings) -> None:
    """Log each alert and tell the operator, if an address is configured."""
    cfg = settings.alerts
    for alert in alerts:
        logger.warning("ALERT %s", alert.message)
    if not alerts:
        return
    if cfg.operator_email:
        from ponder.notify.email import send_email

        body = "\n".join(a.message for a in alerts)
        try:
            send_email(
                settings.notify,
                to=cfg.operator_email,
                subject=f"[Ponder] {len(alerts)} alert(s): " + ", ".join(a.kind for a in alerts),
                text=body,
                html="<br>".join(a.message for a in alerts),
            )
        except Exception as exc:  # noqa: BLE001 - an alert channel failing must not stop others
            logger.warning("alert email failed: %s", type(exc).__name__)
    if cfg.operator_webhook_url:
        try:
            httpx.post(
                cfg.operator_webhook_url,
                content=json.dumps({"alerts": [asdict(a) for a in alerts]}),
                headers={"content-type": "application/json"},
                timeout=10,
                follow_redirects=False,
            )
        except httpx.HTTPError as exc:
            logger.warning("alert webhook failed: %s", type(exc).__name__)
