"""The HTTP commands against a live API server (uvicorn on 127.0.0.1): ``ponder submit`` and
``ponder batch``. Jobs are ended by a thread that claims and finishes them as a run does."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from ponder.cli.commands import app
from ponder.cli.devservers import free_port
from ponder.config import get_settings
from ponder.db import get_engine, session_scope
from ponder.jobs import lease
from ponder.models import JobStatus

runner = CliRunner()


@pytest.fixture(scope="module")
def live_api(database: None) -> Iterator[str]:
    import uvicorn

    from api.main import app as api_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(api_app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def cli(live_api: str, tenant, isolated_broker) -> Any:
    env = {"PONDER_API_URL": live_api, "PONDER_API_KEY": tenant.key}
    return lambda *args: runner.invoke(app, list(args), env=env)


def end_queued_jobs(status: JobStatus = JobStatus.succeeded, *, stop_after: int = 1) -> None:
    """In a thread: end every queued job as a run would, until ``stop_after`` have ended."""

    def work() -> None:
        ended, deadline = 0, time.monotonic() + 30
        while ended < stop_after and time.monotonic() < deadline:
            with get_engine().connect() as conn:
                ids = [
                    r.id
                    for r in conn.execute(sa.text("select id from jobs where status = 'queued'"))
                ]
            for job_id in ids:
                finish(job_id, status)
                ended += 1
            time.sleep(0.2)

    threading.Thread(target=work, daemon=True).start()


def finish(job_id: str, status: JobStatus) -> None:
    settings = get_settings()
    with session_scope() as session:
        claim = lease.claim(session=session, job_id=job_id, owner="test", settings=settings)
    with session_scope() as session:
        job = lease.locked_for_run(session, job_id, claim.token)
        assert job is not None
        error = "engine refused" if status == JobStatus.failed else None
        result = None if error else {"output": {"medications": []}, "summary": "ok"}
        lease.finish(session=session, job=job, status=status, result=result, error=error,
                    settings=settings)  # fmt: skip


def notes(folder: Path, names: list[str]) -> Path:
    for i, name in enumerate(names):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"Aspirin {80 + i} mg daily.")
    return folder


def test_submit_waits_with_a_progress_bar_and_exits_0_when_all_succeeded(cli, tmp_path):
    files = notes(tmp_path, ["a.txt", "b.txt"])
    end_queued_jobs(stop_after=2)
    result = cli("submit", str(files / "a.txt"), str(files / "b.txt"),
                 "--task", "medrec_extraction", "--strategy", "single", "--wait")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == [
        str(files / "a.txt"), str(files / "b.txt")
    ]  # fmt: skip
    assert "2/2" in result.stderr and f"{files / 'a.txt'}: succeeded" in result.stderr


def test_submit_exits_1_when_a_job_failed(cli, tmp_path):
    files = notes(tmp_path, ["a.txt"])
    end_queued_jobs(JobStatus.failed)
    result = cli("submit", str(files / "a.txt"), "--task", "medrec_extraction", "--wait")
    assert result.exit_code == 1 and "failed" in result.stderr


def test_submit_reports_the_apis_error(cli, tmp_path):
    files = notes(tmp_path, ["a.txt"])
    result = cli("submit", str(files / "a.txt"), "--task", "poetry")
    assert result.exit_code == 1 and "unknown task; valid tasks:" in result.stderr


def test_batch_submit_of_a_folder_makes_one_item_per_text_file(cli, tmp_path):
    folder = notes(tmp_path / "in", ["a.txt", "sub/b.md", ".hidden.txt", "scan.pdf"])
    result = cli("batch", "submit", str(folder), "--task", "medrec_extraction", "--name", "n1")
    assert result.exit_code == 0, result.output
    batch_id = result.stdout.strip()
    with get_engine().connect() as conn:
        found = conn.execute(
            sa.text("select custom_id from jobs where batch_id = :b order by batch_index"),
            {"b": batch_id},
        )
        assert [r.custom_id for r in found] == ["a.txt", "sub/b.md"]


def test_batch_submit_of_a_jsonl_file_lists_every_bad_line(cli, tmp_path):
    path = tmp_path / "items.jsonl"
    good = {"custom_id": "a", "task": "medrec_extraction", "document": "Aspirin 81 mg."}
    bad_task = json.dumps({**good, "custom_id": "c", "task": "x"})
    path.write_text(json.dumps(good) + "\n{broken\n" + bad_task + "\n")
    result = cli("batch", "submit", str(path))
    assert result.exit_code == 1
    assert "2 invalid line(s)" in result.stderr
    assert "  line 2: not valid JSON" in result.stderr
    assert "  line 3: unknown task; valid tasks:" in result.stderr


def test_batch_status_results_and_retry(cli, tmp_path):
    folder = notes(tmp_path / "in", ["a.txt", "b.txt"])
    batch_id = cli("batch", "submit", str(folder), "--task", "medrec_extraction").stdout.strip()
    ids = _item_ids(batch_id)
    finish(ids[0], JobStatus.succeeded)
    finish(ids[1], JobStatus.failed)
    status = cli("batch", "status", batch_id, "--no-watch")
    assert status.exit_code == 1 and "completed_with_failures" in status.stdout
    results = cli("batch", "results", batch_id)
    lines = [json.loads(line) for line in results.stdout.splitlines()]
    assert [(x["custom_id"], x["status"]) for x in lines] == [("a.txt", "succeeded"),
                                                              ("b.txt", "failed")]  # fmt: skip
    retry = cli("batch", "retry", batch_id)
    assert retry.exit_code == 0 and "1 failed items queued again (round 2)" in retry.stdout


def test_batch_status_watches_the_counts_until_the_batch_ends(cli, tmp_path):
    folder = notes(tmp_path / "in", ["a.txt", "b.txt"])
    batch_id = cli("batch", "submit", str(folder), "--task", "medrec_extraction").stdout.strip()
    end_queued_jobs(stop_after=2)
    result = cli("batch", "status", batch_id, "--interval", "0.3")
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.stdout.splitlines()[0]


def test_results_of_a_running_batch_say_how_to_get_a_partial_file(cli, tmp_path):
    folder = notes(tmp_path / "in", ["a.txt"])
    batch_id = cli("batch", "submit", str(folder), "--task", "medrec_extraction").stdout.strip()
    result = cli("batch", "results", batch_id)
    assert result.exit_code == 1 and "partial=true" in result.stderr


def test_a_missing_api_key_is_refused(live_api, tmp_path):
    result = runner.invoke(app, ["batch", "status", "x"], env={"PONDER_API_URL": live_api,
                                                                "PONDER_API_KEY": ""})  # fmt: skip
    assert result.exit_code == 2 and "PONDER_API_KEY" in result.stderr


def _item_ids(batch_id: str) -> list[str]:
    with get_engine().connect() as conn:
        found = conn.execute(
            sa.text("select id from jobs where batch_id = :b order by batch_index"),
            {"b": batch_id},
        )
        return [r.id for r in found]
