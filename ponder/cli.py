"""The ``ponder`` command: model preparation, API keys, database setup, strategies, demo."""

from __future__ import annotations

from pathlib import Path

import typer

from ponder.config import get_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
model_app = typer.Typer(no_args_is_help=True, help="The embedded model.")
keys_app = typer.Typer(no_args_is_help=True, help="API keys.")
db_app = typer.Typer(no_args_is_help=True, help="The database.")
app.add_typer(model_app, name="model")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")


@model_app.command("prepare")
def model_prepare() -> None:
    """Convert the embedded SmolLM2-135M-Instruct into a model directory (skipped if present)."""
    from ponder.logs import configure_logging
    from ponder.model_prep import prepare_model

    configure_logging()
    settings = get_settings()
    target = Path(settings.model_path)
    if settings.engine.model:
        typer.echo(f"engine.model is set to {target}; nothing to prepare")
        return
    done = prepare_model(target, dtype=settings.engine.dtype)
    typer.echo(f"{'prepared' if done else 'already prepared'}: {target}")


@keys_app.command("create")
def keys_create(tenant: str = typer.Option(..., help="Tenant name; created on first use.")) -> None:
    """Create an API key and print it once, with the tenant's webhook signing secret."""
    from ponder.db import session_scope
    from ponder.tenants import issue_key

    with session_scope() as session:
        issued = issue_key(session=session, tenant_name=tenant)
        secret = issued.tenant.webhook_secret
    typer.echo(f"api key (shown once): {issued.key}")
    typer.echo(f"webhook secret for tenant {tenant}: {secret}")


@db_app.command("create")
def db_create() -> None:
    """Create the configured database if it does not exist (needs rights on the server)."""
    from ponder.dbadmin import create_database

    url = get_settings().database.url
    created = create_database(url)
    typer.echo(("created " if created else "exists: ") + url.rsplit("/", 1)[-1])


@db_app.command("migrate")
def db_migrate() -> None:
    """Create the database if needed and apply every migration."""
    from ponder.dbadmin import create_database, migrate

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
    from ponder.demo import run_demo

    raise typer.Exit(run_demo(n=n, timeout_s=timeout))


def main() -> None:
    app()
