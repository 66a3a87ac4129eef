"""Cron expressions for beat: five fields, or one of the usual @ shortcuts."""

from __future__ import annotations

from celery.schedules import crontab

SHORTCUTS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}


def parse_cron(expression: str) -> crontab:
    """``minute hour day-of-month month day-of-week``; raises ValueError saying what is wrong."""
    fields = SHORTCUTS.get(expression.strip().lower(), expression).split()
    if len(fields) != 5:
        raise ValueError(
            f"cron expression {expression!r} needs five fields (minute hour day-of-month month "
            "day-of-week), e.g. '0 2 * * *' for 02:00 every day"
        )
    minute, hour, day_of_month, month, day_of_week = fields
    try:
        return crontab(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month,
            day_of_week=day_of_week,
        )
    except Exception as exc:  # celery raises several parse error types
        raise ValueError(f"cron expression {expression!r} is not valid: {exc}") from exc
