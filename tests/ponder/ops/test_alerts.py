"""Cost and quality alerts fire above their thresholds and stay quiet below."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from ponder.config import Settings
from ponder.db import get_engine, session_scope
from ponder.models import Job, utcnow
from ponder.ops.alerts import check_alerts, raise_alerts


def add_jobs(tenant_id: str, *, cost: float, count: int = 5, status: str = "succeeded") -> None:
    with session_scope() as session:
        for i in range(count):
            session.add(
                Job(
                    tenant_id=tenant_id,
                    task="medrec_extraction",
                    status=status,
                    request_hash=f"h{i}",
                    config={},
                    document="-",
                    cost=cost,
                    finished_at=utcnow(),
                )
            )


def settings_with(**alerts) -> Settings:
    return Settings(alerts={"expected_cost_per_job": {"medrec_extraction": 0.01}, **alerts})


def run_check(settings: Settings):
    with get_engine().connect() as conn:
        return check_alerts(conn, settings)


def test_cost_above_the_factor_fires_a_cost_alert(tenant):
    add_jobs(tenant.tenant_id, cost=0.02)  # 2x the expected 0.01, factor 1.5
    alerts = run_check(settings_with())
    assert [(a.kind, a.task) for a in alerts] == [("cost", "medrec_extraction")]
    assert alerts[0].value == pytest.approx(0.02) and alerts[0].threshold == pytest.approx(0.015)


def test_cost_within_the_factor_stays_quiet(tenant):
    add_jobs(tenant.tenant_id, cost=0.014)
    assert run_check(settings_with()) == []


def test_needs_review_rate_above_the_threshold_fires(tenant):
    add_jobs(tenant.tenant_id, cost=0.001, count=5, status="needs_review")
    alerts = run_check(settings_with(max_needs_review_rate=0.5))
    assert [a.kind for a in alerts] == ["needs_review_rate"]


def test_reviewing_flagged_jobs_does_not_lower_the_needs_review_rate(tenant):
    # Reviewed jobs that were not QA samples ended needs_review before a person resolved them.
    add_jobs(tenant.tenant_id, cost=0.001, count=5, status="reviewed")
    alerts = run_check(settings_with(max_needs_review_rate=0.5))
    assert [a.kind for a in alerts] == ["needs_review_rate"]


def test_raised_alerts_are_logged_and_mailed_to_the_operator(tenant, smtp_server, caplog):
    add_jobs(tenant.tenant_id, cost=0.05)
    settings = settings_with(operator_email="oncall@example.org")
    settings.notify.smtp_port = smtp_server.port
    before = len(smtp_server.messages)
    with caplog.at_level("WARNING"):
        raise_alerts(run_check(settings), settings)
    assert "ALERT cost for task medrec_extraction" in caplog.text
    assert len(smtp_server.messages) == before + 1
    assert "cost" in smtp_server.messages[-1]["Subject"]


def test_metrics_show_the_active_alert(api, tenant):
    add_jobs(tenant.tenant_id, cost=0.05)
    from ponder import config

    config.get_settings.cache_clear()
    import os

    os.environ["PONDER_ALERTS__EXPECTED_COST_PER_JOB"] = '{"medrec_extraction": 0.01}'
    try:
        config.get_settings.cache_clear()
        text = api.get("/metrics", headers=tenant.headers).text
    finally:
        del os.environ["PONDER_ALERTS__EXPECTED_COST_PER_JOB"]
        config.get_settings.cache_clear()
    assert 'ponder_alert_active{kind="cost",task="medrec_extraction"} 1.0' in text
    with get_engine().connect() as conn:
        assert conn.execute(sa.text("select count(*) from jobs")).scalar_one() == 5
