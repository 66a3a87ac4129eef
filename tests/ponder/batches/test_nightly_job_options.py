"""A nightly run's job options are those of ``POST /v1/jobs`` (``JobOptions``): each reaches the
jobs of its files, and what the run leaves out is filled as for a single job."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ponder import config
from ponder.db import get_engine

NOTE = "Metoprolol 50 mg by mouth twice daily."


def configure(monkeypatch: pytest.MonkeyPatch, inbox: Path, **options: Any) -> None:
    run = {"name": "clinic", "cron": "0 2 * * *", "tenant": "tenant-a", "inbox": str(inbox),
           "task": "medrec_extraction", "min_age_s": 0, **options}  # fmt: skip
    monkeypatch.setenv("PONDER_NIGHTLY", json.dumps([run]))
    config.get_settings.cache_clear()


def strategies_of_the_batch() -> list[dict[str, Any]]:
    with get_engine().connect() as conn:
        configs = conn.execute(sa.text("select config from jobs order by batch_index")).scalars()
        return [c["strategy"] for c in configs]


def run_now(inbox: Path) -> None:
    from worker.tasks import nightly_run_task

    (inbox / "a.txt").write_text(NOTE)
    assert nightly_run_task("clinic")["submitted"] == 1


@pytest.fixture
def inbox(
    tmp_path: Path, tenant, isolated_broker, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    folder = tmp_path / "inbox"
    folder.mkdir()
    yield folder
    monkeypatch.undo()  # before the cache is cleared, so the next test reads its own settings
    config.get_settings.cache_clear()


def test_params_seed_and_budget_of_a_nightly_run_reach_its_jobs(inbox, monkeypatch):
    configure(monkeypatch, inbox, strategy="refine", params={"max_rounds": 2}, seed=11,
              budget_tokens=9000)  # fmt: skip
    run_now(inbox)
    (strategy,) = strategies_of_the_batch()
    assert (strategy["name"], strategy["params"]["max_rounds"]) == ("refine", 2)
    assert (strategy["seed"], strategy["budget_tokens"]) == (11, 9000)


def test_a_nightly_run_without_a_strategy_gets_the_tasks_default_from_the_knobs_file(
    inbox, monkeypatch, tmp_path
):
    knobs = tmp_path / "knobs.toml"
    knobs.write_text('[tasks.medrec_extraction]\nstrategy = "single"\n')
    monkeypatch.setenv("PONDER_KNOBS_FILE", str(knobs))
    configure(monkeypatch, inbox)
    run_now(inbox)
    (strategy,) = strategies_of_the_batch()
    assert strategy["name"] == "single"  # as POST /v1/jobs does; it was always best_of_n


def test_a_nightly_run_refuses_a_seed_out_of_range_at_startup(inbox, monkeypatch):
    from pydantic import ValidationError

    configure(monkeypatch, inbox, seed=-1)
    with pytest.raises(ValidationError, match="seed"):
        config.get_settings()
