"""The ``ponder`` command."""

from __future__ import annotations

import hashlib
import re

import sqlalchemy as sa
from typer.testing import CliRunner

from ponder.cli.commands import app
from ponder.db import get_engine
from ponder.strategies import STRATEGIES

runner = CliRunner()


def test_keys_create_prints_a_key_once_and_stores_only_its_hash(clean_db):
    result = runner.invoke(app, ["keys", "create", "--tenant", "clinic-north"])
    assert result.exit_code == 0, result.output
    key = re.search(r"api key \(shown once\): (pk_\S+)", result.output).group(1)
    assert re.search(r"webhook secret for tenant clinic-north: whsec_\S+", result.output)
    with get_engine().connect() as conn:
        rows = conn.execute(sa.text("select key_hash, prefix from api_keys")).all()
    # The SHA-256 computed here, not by the code under test: plain storage fails this.
    assert rows == [(hashlib.sha256(key.encode()).hexdigest(), key[:10])]


def test_strategies_lists_every_registered_strategy_with_its_parameters():
    result = runner.invoke(app, ["strategies"])
    assert result.exit_code == 0
    for name in STRATEGIES:
        assert re.search(rf"^{name}\s", result.output, re.MULTILINE)
    assert "max_rounds=3" in result.output and "thinking_tokens=1024" in result.output


def test_model_prepare_is_skipped_when_the_model_is_present():
    result = runner.invoke(app, ["model", "prepare"])
    assert result.exit_code == 0
    assert "already prepared" in result.output


def test_a_crash_traceback_does_not_print_local_variables():
    # Typer's default rich traceback prints every frame's locals: documents and answers.
    from ponder.cli.commands import app

    assert app.pretty_exceptions_show_locals is False
