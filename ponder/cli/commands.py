"""The ``ponder`` command: model preparation, API keys, database setup, strategies, demo; and
(over HTTP, see ``ponder.cli.client``) submitting jobs and batches."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ponder.cli.arms import arms
from ponder.cli.client import batch_app, submit
from ponder.cli.watch import watch
from ponder.config import get_settings

# A crash's traceback must not print local variables: they hold documents and answers.
app = typer.Typer(
    no_args_is_help=True, add_completion=False, help=__doc__, pretty_exceptions_show_locals=False
)
model_app = typer.Typer(no_args_is_help=True, help="The embedded model.")
keys_app = typer.Typer(no_args_is_help=True, help="API keys.")
db_app = typer.Typer(no_args_is_help=True, help="The database.")
app.add_typer(model_app, name="model")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.add_typer(batch_app, name="batch")
app.command("submit")(submit)
app.command("watch")(watch)
app.command("arms")(arms)


@model_app.command("prepare")
def model_prepare() -> None:
    """Convert the embedded SmolLM2-135M-Instruct into a model directory (skipped if present)."""
    from ponder.cli.model_prep import prepare_model
    from ponder.logs import configure_logging

    configure_logging()
    settings = get_settings()
    target = Path(settings.model_path)
    if settings.engine.model:
        typer.echo(f"engine.model is set to {target}; nothing to prepare")
        return
    done = prepare_model(target, dtype=settings.engine.dtype)
    typer.echo(f"{'prepared' if done else 'already prepared'}: {target}")


@keys_app.command("create")
def keys_create(
    tenant: str = typer.Option(..., help="Tenant name; created on first use."),
    scope: Annotated[
        list[str] | None,
        typer.Option(help="submit, read or admin; repeat for several. Default: all three."),
    ] = None,
    expires_in_days: Annotated[
        float | None, typer.Option(min=0.001, help="The key stops working after this many days.")
    ] = None,
) -> None:
    """Create an API key and print it once, with the tenant's webhook signing secret."""
    from ponder.db import session_scope
    from ponder.errors import PonderError
    from ponder.models import ALL_SCOPES
    from ponder.tenants import issue_key

    try:
        with session_scope() as session:
            issued = issue_key(
                session=session,
                tenant_name=tenant,
                scopes=scope or ALL_SCOPES,
                expires_in_days=expires_in_days,
            )
            secret = issued.tenant.webhook_secret
            key_id, scopes, expires = issued.row.id, issued.row.scopes, issued.row.expires_at
    except PonderError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"api key (shown once): {issued.key}")
    typer.echo(f"key id: {key_id}  scopes: {','.join(scopes)}  expires: {expires or 'never'}")
    typer.echo(f"webhook secret for tenant {tenant}: {secret}")


@keys_app.command("list")
def keys_list(tenant: str = typer.Option(..., help="Tenant name.")) -> None:
    """The tenant's keys: id, prefix, scopes, created, expires, revoked, last used."""
    from ponder.db import session_scope
    from ponder.errors import PonderError
    from ponder.tenants import list_keys, tenant_by_name

    try:
        with session_scope() as session:
            owner = tenant_by_name(session=session, name=tenant)
            rows = list_keys(session=session, tenant_id=owner.id)
            lines = [
                f"{k.id}  {k.prefix}…  {','.join(k.scopes):18}  created {k.created_at:%Y-%m-%d}  "
                f"expires {k.expires_at or 'never'}  revoked {k.revoked_at or 'no'}  "
                f"last used {k.last_used_at or 'never'}"
                for k in rows
            ]
    except PonderError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    for line in lines:
        typer.echo(line)


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="The key's id (ponder keys list).")) -> None:
    """Revoke a key: refused from now on (an API process that cached it: within 30 s)."""
    from ponder.db import session_scope
    from ponder.errors import PonderError
    from ponder.tenants import revoke_key

    try:
        with session_scope() as session:
            revoked_at = revoke_key(session=session, key_id=key_id).revoked_at
    except PonderError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"key {key_id} revoked at {revoked_at}")


@db_app.command("create")
def db_create() -> None:
    """Create the configured database if it does not exist (needs rights on the server)."""
    from ponder.cli.dbadmin import create_database

    url = get_settings().database.url
    created = create_database(url)
    typer.echo(("created " if created else "exists: ") + url.rsplit("/", 1)[-1])


@db_app.command("migrate")
def db_migrate() -> None:
    """Create the database if needed and apply every migration."""
    from ponder.cli.dbadmin import create_database, migrate

    create_database(get_settings().database.url)
    migrate()
    typer.echo("database at the latest migration")


@app.command("strategies")
def strategies() -> None:
    """List the strategies with a one-line description each."""
    from ponder.strategies import STRATEGIES

    for s in STRATEGIES.values():
        typer.echo(f"{s.name:20} {s.description}")
        typer.echo(f"{'':20} parameters: {', '.join(s.parameter_help()) or 'none'}")


@app.command("tasks")
def tasks() -> None:
    """List the task types."""
    from tasks.registry import TASKS

    for t in TASKS.values():
        typer.echo(f"{t.name:20} {t.description}")


@app.command("demo")
def demo(
    n: int = typer.Option(4, help="Samples per job (best_of_n)."),
    timeout: float = typer.Option(900, help="Seconds to wait for the jobs."),
) -> None:
    """Run the sample documents through the whole pipeline and print what happened."""
    from ponder.cli.demo import run_demo

    raise typer.Exit(run_demo(n=n, timeout_s=timeout))


eval_app = typer.Typer(
    help="Measure on labelled data: strategies through the pipeline (``ponder eval --task T``), "
    "or the verifiers alone by mutation (``ponder eval verifiers --task T``)."
)
app.add_typer(eval_app, name="eval")


@eval_app.callback(invoke_without_command=True)
def evaluate(
    ctx: typer.Context,
    task: Annotated[
        str | None, typer.Option(help="Task type: medrec_extraction, contract_review, ...")
    ] = None,
    strategies: Annotated[
        str, typer.Option(help="Comma-separated strategies, each 'name' or 'name:n'.")
    ] = "single,best_of_n:4",
    dataset: Annotated[
        Path | None,
        typer.Option(help="Dataset file; default: the task's public set in ../shared/eval-data/."),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="auto, jsonl, simord, cuad or gsm8k.")
    ] = "auto",
    limit: Annotated[
        int | None, typer.Option(min=1, help="The first N items of the dataset.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the figures as JSON here.")] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Plot score against tokens per job (PNG).")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Jobs the eval worker runs at once.")] = 8,
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds per strategy before giving up.")
    ] = 3600,
    max_tokens: Annotated[
        int | None,
        typer.Option(min=32, help="Output tokens per sample (default: the configured limit)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Sampling seed of every job.")] = 0,
    price_prompt: Annotated[
        float | None, typer.Option(help="Price per million prompt tokens.")
    ] = None,
    price_completion: Annotated[
        float | None, typer.Option(help="Price per million completion tokens.")
    ] = None,
    cuad_chars: Annotated[
        int, typer.Option(min=200, help="Characters of a document built from CUAD spans.")
    ] = 6000,
) -> None:
    """Run a labelled dataset through the pipeline for several strategies; print a table."""
    if ctx.invoked_subcommand is not None:
        return
    if task is None:
        typer.echo("error: --task is required (ponder eval --help lists the options)", err=True)
        raise typer.Exit(2)
    from ponder.evaluation.command import EvalArgs, UsageError
    from ponder.evaluation.command import evaluate as run_eval
    from ponder.evaluation.report import format_table
    from ponder.logs import configure_logging

    configure_logging()
    args = EvalArgs(
        task=task, strategies=strategies, dataset=dataset, fmt=fmt, limit=limit, out=out,
        plot=plot, concurrency=concurrency, timeout_s=timeout, max_tokens=max_tokens,
        seed=seed, price_prompt=price_prompt, price_completion=price_completion,
        cuad_chars=cuad_chars,
    )  # fmt: skip
    try:
        payload = run_eval(args)
    except UsageError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(format_table(payload))


@eval_app.command("verifiers")
def evaluate_verifiers(
    task: Annotated[
        str,
        typer.Option(
            help="Task type: "
            + ", ".join(
                ["medrec_extraction", "contract_review", "contract_review_full", "math_answer"]
            )
        ),
    ],
    dataset: Annotated[
        Path | None,
        typer.Option(help="Labelled dataset; default: the task's set in ../shared/eval-data/."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the mutations.")] = 0,
    limit: Annotated[int | None, typer.Option(min=1, help="The first N usable items.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the figures as JSON here.")] = None,
) -> None:
    """Run the task's verifiers on gold answers built from a labelled dataset and on copies
    with one deliberate error each; print the share of each kind of error caught."""
    from ponder.evaluation.mutation import (
        MutationUsageError,
        format_verifier_table,
        run_verifier_evaluation,
    )

    try:
        payload = run_verifier_evaluation(task=task, dataset=dataset, seed=seed, limit=limit,
                                          out=out)  # fmt: skip
    except MutationUsageError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(format_verifier_table(payload))


reviewers_app = typer.Typer(no_args_is_help=True, help="Reviewer accounts of the workspace.")
review_app = typer.Typer(no_args_is_help=True, help="Reviewed jobs.")
app.add_typer(reviewers_app, name="reviewers")
app.add_typer(review_app, name="review")


@reviewers_app.command("create")
def reviewers_create(
    tenant: str = typer.Option(..., help="Tenant name (it must exist: ponder keys create)."),
    email: str = typer.Option(..., help="The reviewer's sign-in address."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from stdin instead of generating one."
    ),
) -> None:
    """Create a reviewer; prints a generated password once (or reads it from stdin)."""
    import sys

    from ponder.db import session_scope
    from ponder.errors import PonderError
    from ponder.reviews.accounts import create_reviewer, generate_password

    password = sys.stdin.readline().rstrip("\n") if password_stdin else generate_password()
    try:
        with session_scope() as session:
            reviewer = create_reviewer(
                session=session, tenant_name=tenant, email=email, password=password
            )
            reviewer_id = reviewer.id
    except PonderError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"reviewer {email} of tenant {tenant} created (id {reviewer_id})")
    if not password_stdin:
        typer.echo(f"password (shown once): {password}")


@review_app.command("export")
def review_export(
    tenant: str = typer.Option(..., help="Tenant name."),
    task: str = typer.Option(..., help="Task type, e.g. medrec_extraction."),
) -> None:
    """Write the tenant's reviewed jobs of a task to stdout as ``ponder eval`` JSONL (gold =
    the reviewed answer): ``ponder review export ... > gold.jsonl``."""
    import json

    from ponder.db import session_scope
    from ponder.errors import PonderError
    from ponder.evaluation.scoring import SCORERS
    from ponder.reviews.export import export_gold
    from ponder.tenants import tenant_by_name

    if task not in SCORERS:
        typer.echo(f"error: no gold shape for task {task!r}; known: {', '.join(SCORERS)}", err=True)
        raise typer.Exit(2)
    count = 0
    try:
        with session_scope() as session:
            owner = tenant_by_name(session=session, name=tenant)
            for record in export_gold(session=session, tenant_id=owner.id, task=task):
                typer.echo(json.dumps(record, ensure_ascii=False))
                count += 1
    except PonderError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{count} reviewed job(s) exported", err=True)


def main() -> None:
    app()
