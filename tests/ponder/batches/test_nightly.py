"""Nightly runs without a worker: the beat schedule from the settings, new inbox files made
into one batch exactly once, the archive, rejected files, the report."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from celery.schedules import crontab
from pydantic import ValidationError

from ponder import config, queue
from ponder.config import Settings
from ponder.db import get_engine
from tests.conftest import queued_messages

NOTE = "Metoprolol 50 mg by mouth twice daily."


def rows(sql: str, **params: Any) -> list[sa.Row]:
    with get_engine().connect() as conn:
        return list(conn.execute(sa.text(sql), params))


@pytest.fixture
def inbox(
    tmp_path: Path, tenant, isolated_broker, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    folder = tmp_path / "inbox"
    folder.mkdir()
    run = {"name": "clinic", "cron": "0 2 * * *", "tenant": "tenant-a", "inbox": str(folder),
           "task": "medrec_extraction", "strategy": "single", "min_age_s": 0,
           "email": "pharmacy@example.org"}  # fmt: skip
    monkeypatch.setenv("PONDER_NIGHTLY", json.dumps([run]))
    config.get_settings.cache_clear()
    yield folder
    monkeypatch.undo()
    config.get_settings.cache_clear()


def run_now() -> dict[str, Any]:
    """What beat does: the ``ponder.nightly_run`` task with the run's name."""
    from worker.tasks import nightly_run_task

    return nightly_run_task("clinic")


def archived(inbox: Path) -> list[str]:
    return sorted(str(p.relative_to(inbox / "archive")).split("/", 1)[1]
                  for p in (inbox / "archive").rglob("*") if p.is_file())  # fmt: skip


def test_beat_has_an_entry_per_configured_run():
    settings = Settings(
        nightly=[
            {
                "name": "legal",
                "cron": "30 1 * * 1-5",
                "tenant": "t",
                "inbox": "/srv/in",
                "task": "contract_review",
            }
        ],  # fmt: skip
        worker={"timezone": "Europe/Paris"},
    )
    app = queue.make_celery(settings)
    entry = app.conf.beat_schedule["nightly:legal"]
    assert entry["task"] == queue.NIGHTLY_RUN and entry["args"] == ["legal"]
    assert entry["schedule"] == crontab(minute="30", hour="1", day_of_week="1-5")
    assert app.conf.timezone == "Europe/Paris"
    assert "reconcile" in app.conf.beat_schedule


@pytest.mark.parametrize("cron", ["0 2 * *", "61 * * * *", "every night"])
def test_an_invalid_cron_expression_is_refused_at_startup(cron):
    with pytest.raises(ValidationError, match="cron expression"):
        Settings(nightly=[{"name": "x", "cron": cron, "tenant": "t", "inbox": "/in", "task": "t"}])


def test_a_run_submits_the_new_files_as_one_batch_and_archives_them(inbox, isolated_broker):
    (inbox / "a.txt").write_text(NOTE)
    (inbox / "b.md").write_text(NOTE + " Stop aspirin.")
    report = run_now()
    assert report == {"batch_id": report["batch_id"], "submitted": 2, "rejected": 0,
                      "duplicates": 0}  # fmt: skip
    (batch,) = rows("select id, source, name, email, item_count from batches")
    assert (batch.source, batch.name, batch.item_count) == ("nightly", "clinic", 2)
    assert batch.email == "pharmacy@example.org"
    items = rows("select custom_id, status from jobs order by batch_index")
    assert [(i.custom_id, i.status) for i in items] == [("a.txt", "queued"), ("b.md", "queued")]
    assert sorted(p.name for p in inbox.iterdir()) == ["archive"]
    assert archived(inbox) == ["a.txt", "b.md"]
    assert queued_messages(isolated_broker) == 1  # the batch's dispatch


def test_a_file_is_submitted_once_across_runs(inbox):
    (inbox / "a.txt").write_text(NOTE)
    first = run_now()
    (inbox / "a-copy.txt").write_text(NOTE)  # the same content again, under another name
    (inbox / "c.txt").write_text("Lisinopril 10 mg daily.")
    second = run_now()
    assert (first["submitted"], second["submitted"], second["duplicates"]) == (1, 1, 1)
    assert [r.custom_id for r in rows("select custom_id from jobs order by created_at")] == [
        "a.txt", "c.txt"
    ]  # fmt: skip
    assert "duplicates/a-copy.txt" in archived(inbox)
    assert run_now() == {"batch_id": None, "submitted": 0, "rejected": 0, "duplicates": 0}
    assert len(rows("select id from batches")) == 2


def test_a_file_whose_move_failed_is_not_submitted_again(inbox, monkeypatch):
    (inbox / "a.txt").write_text(NOTE)
    with monkeypatch.context() as patch:
        patch.setattr("ponder.batches.nightly._archive", lambda run, report: None)
        run_now()
    assert (inbox / "a.txt").exists()
    second = run_now()
    assert (second["submitted"], second["duplicates"]) == (0, 1)
    assert len(rows("select id from jobs")) == 1
    assert archived(inbox) == ["duplicates/a.txt"]


def test_files_being_written_hidden_or_of_other_types_are_left(inbox, monkeypatch):
    monkeypatch.setenv("PONDER_NIGHTLY", json.dumps(
        [{"name": "clinic", "cron": "@daily", "tenant": "tenant-a", "inbox": str(inbox),
          "task": "medrec_extraction", "min_age_s": 60}]))  # fmt: skip
    config.get_settings.cache_clear()
    old = inbox / "old.txt"
    old.write_text(NOTE)
    past = time.time() - 120
    os.utime(old, (past, past))
    (inbox / "fresh.txt").write_text(NOTE + " new")
    (inbox / ".hidden.txt").write_text(NOTE + " hidden")
    (inbox / "scan.pdf").write_bytes(b"%PDF-1.7")
    assert run_now()["submitted"] == 1
    assert sorted(p.name for p in inbox.iterdir()) == [".hidden.txt", "archive", "fresh.txt",
                                                       "scan.pdf"]  # fmt: skip


def test_a_bad_file_is_rejected_and_listed_while_the_others_run(inbox):
    (inbox / "good.txt").write_text(NOTE)
    (inbox / "empty.txt").write_text("")
    (inbox / "latin1.txt").write_bytes("Métoprolol".encode("latin-1"))
    report = run_now()
    assert (report["submitted"], report["rejected"]) == (1, 2)
    (batch,) = rows("select rejected_files from batches")
    assert {r["file"]: r["error"] for r in batch.rejected_files} == {
        "empty.txt": "document is empty: send the text to analyse in 'document'",
        "latin1.txt": "not UTF-8 text",
    }
    assert archived(inbox) == ["good.txt", "rejected/empty.txt", "rejected/latin1.txt"]


def test_when_every_file_is_rejected_the_report_goes_out_at_once(inbox):
    (inbox / "empty.txt").write_text("   ")
    report = run_now()
    assert (report["submitted"], report["rejected"]) == (0, 1)
    (note,) = rows("select event_type, channel, payload from notifications")
    assert (note.event_type, note.channel) == ("batch.failed", "email")
    assert note.payload["data"]["rejected_files"][0]["file"] == "empty.txt"
