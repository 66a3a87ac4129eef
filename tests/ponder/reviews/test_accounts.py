"""Reviewer accounts: ``ponder reviewers create`` and argon2-checked sign-in."""

from __future__ import annotations

from sqlmodel import select
from typer.testing import CliRunner

from ponder.cli.commands import app
from ponder.db import session_scope
from ponder.models import Reviewer
from ponder.reviews.accounts import authenticate_reviewer


def test_a_created_reviewer_signs_in_with_the_printed_password_only(tenant):
    result = CliRunner().invoke(
        app, ["reviewers", "create", "--tenant", "tenant-a", "--email", "Rx@Example.org"]
    )
    assert result.exit_code == 0, result.output
    password = result.stdout.split("password (shown once): ")[1].strip()
    with session_scope() as session:
        stored = session.exec(select(Reviewer)).one()
        assert stored.password_hash.startswith("$argon2") and password not in stored.password_hash
        signed_in = authenticate_reviewer(
            session=session, tenant_id=tenant.tenant_id, email="rx@example.org", password=password
        )
        assert signed_in is not None and signed_in.id == stored.id
        assert (
            authenticate_reviewer(
                session=session, tenant_id=None, email="rx@example.org", password=password + "x"
            )
            is None
        )


def test_creating_a_reviewer_for_an_unknown_tenant_is_refused(clean_db):
    result = CliRunner().invoke(
        app, ["reviewers", "create", "--tenant", "nobody", "--email", "rx@example.org"]
    )
    assert result.exit_code == 2 and "no tenant 'nobody'" in result.output
