"""``ponder keys create|list|revoke`` (ponder/cli/commands.py): scopes, expiry, revocation."""

from __future__ import annotations

import re

import sqlalchemy as sa
from typer.testing import CliRunner

from ponder.cli.commands import app
from ponder.db import get_engine

runner = CliRunner()


def test_keys_create_with_scopes_and_expiry_then_list_and_revoke(clean_db):
    created = runner.invoke(
        app,
        ["keys", "create", "--tenant", "clinic", "--scope", "submit", "--scope", "read",
         "--expires-in-days", "7"],
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    key_id = re.search(r"key id: (\S+)", created.output).group(1)
    with get_engine().connect() as conn:
        scopes, expiring = conn.execute(
            sa.text("select scopes, expires_at > now() + interval '6 days' from api_keys")
        ).one()
    assert scopes == ["submit", "read"] and expiring
    listed = runner.invoke(app, ["keys", "list", "--tenant", "clinic"])
    assert listed.exit_code == 0 and key_id in listed.output and "submit,read" in listed.output
    revoked = runner.invoke(app, ["keys", "revoke", key_id])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    with get_engine().connect() as conn:
        assert conn.execute(sa.text("select revoked_at is not null from api_keys")).scalar_one()


def test_keys_create_refuses_an_unknown_scope(clean_db):
    result = runner.invoke(app, ["keys", "create", "--tenant", "clinic", "--scope", "root"])
    assert result.exit_code == 2 and "unknown scope" in result.output
    with get_engine().connect() as conn:
        assert conn.execute(sa.text("select count(*) from api_keys")).scalar_one() == 0


def test_keys_revoke_of_an_unknown_key_says_so(clean_db):
    result = runner.invoke(app, ["keys", "revoke", "no-such-key"])
    assert result.exit_code == 2 and "no key" in result.output
