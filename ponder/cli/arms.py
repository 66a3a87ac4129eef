"""``ponder arms TASK``: the A/B arms of a task side by side, straight from PostgreSQL — jobs,
verified rate, review decisions, tokens and cost per arm."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer

from ponder.jobs.arms import ArmFigures

DECISIONS = ("approved", "corrected", "rejected")


def arms(
    task: Annotated[str, typer.Argument(help="The task type whose experiment to report.")],
    tenant: Annotated[
        str | None, typer.Option(help="One tenant's jobs only (its name); default: all.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per arm.")] = False,
) -> None:
    """Per A/B arm of TASK: jobs, verified rate, review decisions, tokens and cost."""
    from ponder.config import get_settings
    from ponder.db import get_engine, session_scope
    from ponder.errors import PonderError
    from ponder.jobs.arms import arm_report
    from ponder.jobs.knobs import knobs_store
    from ponder.tenants import tenant_by_name

    tenant_id = None
    if tenant is not None:
        try:
            with session_scope() as session:
                tenant_id = tenant_by_name(session=session, name=tenant).id
        except PonderError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(2) from None
    with get_engine().connect() as conn:
        figures = arm_report(conn, task=task, tenant_id=tenant_id)
    if as_json:
        for arm in figures:
            typer.echo(json.dumps({**asdict(arm), "verified_rate": arm.verified_rate}))
        return
    if not figures:
        typer.echo(f"no job of task {task} took part in an A/B experiment")
        return
    configured = knobs_store(get_settings().knobs_file).current().for_task(task).arms
    typer.echo(format_report(figures, {arm.name: arm.share for arm in configured}))


def format_report(figures: list[ArmFigures], shares: dict[str, float]) -> str:
    """A table, one line per arm; ``share`` is the arm's share in the knobs file now."""
    total = sum(arm.jobs for arm in figures)
    header = ["arm", "share", "jobs", "seen", "ended", "verified", "rate", *DECISIONS]
    header += ["prompt_tok", "completion_tok", "cost"]
    rows = [header]
    for arm in figures:
        share = shares.get(arm.arm)
        if arm.arm == "control" and shares:
            share = 1.0 - sum(shares.values())
        rate = arm.verified_rate
        rows.append(
            [
                arm.arm,
                "-" if share is None else f"{share:.0%}",
                str(arm.jobs),
                f"{arm.jobs / total:.0%}",
                str(arm.ended),
                str(arm.verified),
                "-" if rate is None else f"{rate:.1%}",
                *(str(arm.reviews.get(decision, 0)) for decision in DECISIONS),
                str(arm.prompt_tokens),
                str(arm.completion_tokens),
                "-" if arm.cost is None else f"{arm.cost:.4f}",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
