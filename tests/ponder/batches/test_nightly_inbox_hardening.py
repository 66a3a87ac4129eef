"""Nightly runs against hostile or unlucky inboxes, without a worker: one bad file never stops
a run, nothing outside the inbox is read, and a file is archived only if it is the very file
that was submitted (one replaced meanwhile is left for the next run)."""

from __future__ import annotations

import json
import os
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ponder import config
from ponder.batches import nightly
from ponder.batches.inbox import FileRefused, read_capped
from ponder.batches.nightly import NightlyReport
from ponder.db import get_engine, session_scope
from ponder.notify.outbox import deliver

NOTE = "Metoprolol 50 mg by mouth twice daily."
OUTSIDE = "Warfarin 5 mg: a note that lives outside the inbox."
BAD_NAME = b"note-\xff.txt"
LONG_NAME = "n" * 201 + ".txt"
MiB = 1024 * 1024
HOLDS_NUL = (
    "holds a NUL byte, which text never does (a UTF-16 file without a byte order mark looks "
    "like this): save it as UTF-8 text"
)
SYMLINK = "a symbolic link, not a file: put the file itself in the inbox"


def rows(sql: str, **params: Any) -> list[sa.Row]:
    with get_engine().connect() as conn:
        return list(conn.execute(sa.text(sql), params))


def configure(monkeypatch: pytest.MonkeyPatch, inbox: Path, **overrides: Any) -> None:
    run = {"name": "clinic", "cron": "0 2 * * *", "tenant": "tenant-a", "inbox": str(inbox),
           "task": "medrec_extraction", "strategy": "single", "min_age_s": 0,
           "email": "pharmacy@example.org", **overrides}  # fmt: skip
    monkeypatch.setenv("PONDER_NIGHTLY", json.dumps([run]))
    config.get_settings.cache_clear()


@pytest.fixture
def inbox(
    tmp_path: Path, tenant, isolated_broker, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    folder = tmp_path / "inbox"
    folder.mkdir()
    configure(monkeypatch, folder)
    yield folder
    monkeypatch.undo()
    config.get_settings.cache_clear()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file next to the inbox, never to be read by a run."""
    path = tmp_path / "outside.txt"
    path.write_text(OUTSIDE)
    return path


def run_now() -> NightlyReport:
    """What ``ponder.nightly_run`` does, keeping the whole report (the task returns counts)."""
    return nightly.run_nightly(name="clinic", settings=config.get_settings())


def reasons(report: NightlyReport) -> dict[str, str]:
    return {r["file"]: r["error"] for r in report.rejected}


def stored_reasons() -> dict[str, str]:
    (batch,) = rows("select rejected_files from batches order by created_at desc limit 1")
    return {r["file"]: r["error"] for r in batch.rejected_files}


def documents() -> dict[str, str]:
    return {r.custom_id: r.document for r in rows("select custom_id, document from jobs")}


def archived(inbox: Path) -> list[str]:
    return sorted(os.fsencode(p.relative_to(inbox / "archive")).split(b"/", 1)[1].decode(
        "utf-8", "backslashreplace") for p in (inbox / "archive").rglob("*")
        if p.is_file() or p.is_symlink())  # fmt: skip


def in_inbox(inbox: Path) -> list[str]:
    return sorted(p.name for p in inbox.iterdir() if p.name != "archive")


def wrap_archive(monkeypatch: pytest.MonkeyPatch, before: Callable[[], None]) -> None:
    """Run ``before`` after the batch commit, just before the archive step."""
    original = nightly._archive

    def archive(run: Any, report: Any) -> None:
        before()
        original(run, report)

    monkeypatch.setattr(nightly, "_archive", archive)


def test_one_bad_file_of_each_kind_never_stops_the_run(inbox, outside, monkeypatch):
    (inbox / "good.txt").write_text(NOTE)
    (inbox / "nul.txt").write_bytes(b"Metoprolol\x0050 mg")
    with open(os.path.join(os.fsencode(inbox), BAD_NAME), "wb") as handle:
        handle.write(b"Aspirin 81 mg daily.")
    (inbox / "link.txt").symlink_to(outside)
    with open(inbox / "huge.txt", "wb") as handle:
        handle.truncate(200 * MiB)  # sparse
    (inbox / "replaced.txt").write_text("Lisinopril 10 mg daily.")

    def replace() -> None:
        (inbox / "new.tmp").write_text("Lisinopril 20 mg daily, dose raised.")
        os.replace(inbox / "new.tmp", inbox / "replaced.txt")

    with monkeypatch.context() as patch:
        wrap_archive(patch, replace)
        report = run_now()

    assert sorted(report.submitted) == ["good.txt", "replaced.txt"]
    assert documents() == {"good.txt": NOTE, "replaced.txt": "Lisinopril 10 mg daily."}
    expected = {
        "nul.txt": HOLDS_NUL,
        "note-\\xff.txt": "the file name is not valid UTF-8: rename the file",
        "link.txt": SYMLINK,
        "huge.txt": "larger than 1000000 bytes (the run's max_file_bytes): split the document",
    }
    assert reasons(report) == expected
    assert stored_reasons() == expected
    assert all(OUTSIDE not in doc for doc in documents().values())
    assert outside.read_text() == OUTSIDE
    assert report.left_in_inbox == ["replaced.txt"]
    assert "replaced.txt" not in archived(inbox)
    assert archived(inbox) == ["good.txt", "rejected/huge.txt", "rejected/link.txt",
                               "rejected/note-\\xff.txt", "rejected/nul.txt"]  # fmt: skip

    second = run_now()
    assert second.submitted == ["replaced.txt"] and second.rejected == []
    (job,) = rows("select document from jobs where batch_id = :b", b=second.batch_id)
    assert job.document == "Lisinopril 20 mg daily, dose raised."
    assert in_inbox(inbox) == []


def test_a_run_of_bad_files_only_sends_its_report_and_the_next_run_is_not_blocked(
    inbox, outside, smtp_server
):
    (inbox / "utf16.txt").write_bytes(NOTE.encode("utf-16-le"))  # no byte order mark
    with open(os.path.join(os.fsencode(inbox), BAD_NAME), "wb") as handle:
        handle.write(b"Aspirin 81 mg daily.")
    (inbox / "link.txt").symlink_to(outside)
    first = run_now()
    assert (first.submitted, len(first.rejected)) == ([], 3)
    (note,) = rows(
        "select id, event_type, channel from notifications where batch_id = :b", b=first.batch_id
    )
    assert (note.event_type, note.channel) == ("batch.failed", "email")
    settings = config.get_settings().model_copy(deep=True)
    settings.notify.smtp_port = smtp_server.port
    sent_before = len(smtp_server.messages)  # the SMTP server lives for the whole session
    with session_scope() as session:
        deliver(session=session, notification_id=note.id, settings=settings)
    (mail,) = smtp_server.messages[sent_before:]
    text = mail.get_body(preferencelist=("plain",)).get_content()
    assert f"- utf16.txt: {HOLDS_NUL}" in text
    assert "- note-\\xff.txt: the file name is not valid UTF-8: rename the file" in text
    assert f"- link.txt: {SYMLINK}" in text

    (inbox / "good.txt").write_text(NOTE)
    second = run_now()
    assert (second.submitted, second.rejected) == (["good.txt"], [])
    assert in_inbox(inbox) == []


def test_a_file_holding_nul_bytes_is_refused_and_the_others_run(inbox):
    (inbox / "good.txt").write_text(NOTE)
    (inbox / "nul.txt").write_bytes(b"Metoprolol\x0050 mg")
    (inbox / "utf16.txt").write_bytes(NOTE.encode("utf-16-le"))
    report = run_now()
    assert report.submitted == ["good.txt"]
    assert stored_reasons() == {"nul.txt": HOLDS_NUL, "utf16.txt": HOLDS_NUL}


def test_a_file_name_that_is_not_utf8_is_refused_and_the_others_run(inbox):
    (inbox / "good.txt").write_text(NOTE)
    with open(os.path.join(os.fsencode(inbox), BAD_NAME), "wb") as handle:
        handle.write(NOTE.encode() + b" Bad name.")
    report = run_now()
    assert report.submitted == ["good.txt"]
    assert stored_reasons() == {
        "note-\\xff.txt": "the file name is not valid UTF-8: rename the file"
    }
    assert archived(inbox) == ["good.txt", "rejected/note-\\xff.txt"]


def test_a_file_name_over_200_characters_is_refused_and_the_others_run(inbox):
    (inbox / "good.txt").write_text(NOTE)
    (inbox / LONG_NAME).write_text(NOTE + " Long name.")
    report = run_now()
    assert report.submitted == ["good.txt"]
    assert stored_reasons() == {
        LONG_NAME: "the file name is longer than 200 characters: rename the file"
    }


def test_a_symlink_in_the_inbox_is_refused_and_its_target_not_read(inbox, outside):
    (inbox / "link.txt").symlink_to(outside)
    (inbox / "good.txt").write_text(NOTE)
    report = run_now()
    assert reasons(report) == {"link.txt": SYMLINK}
    assert documents() == {"good.txt": NOTE}
    assert outside.read_text() == OUTSIDE


def test_a_file_swapped_for_a_symlink_after_the_listing_is_not_followed(
    inbox, outside, monkeypatch
):
    (inbox / "a.txt").write_text(NOTE)
    listing = nightly.inbox_files

    def swap_after_listing(*args: Any, **kwargs: Any) -> Any:
        names = listing(*args, **kwargs)
        (inbox / "a.txt").unlink()
        (inbox / "a.txt").symlink_to(outside)
        return names

    monkeypatch.setattr(nightly, "inbox_files", swap_after_listing)
    report = run_now()
    assert reasons(report) == {"a.txt": SYMLINK}
    assert documents() == {}
    assert outside.read_text() == OUTSIDE


def test_a_hard_link_to_a_file_outside_the_inbox_is_refused(inbox, outside):
    os.link(outside, inbox / "linked.txt")
    report = run_now()
    assert report.submitted == []
    assert reasons(report) == {
        "linked.txt": "the file has 2 hard links, so it may also be a file outside the inbox: "
        "copy it into the inbox instead of linking it"
    }
    assert documents() == {}
    assert outside.read_text() == OUTSIDE


def test_a_file_over_the_size_cap_is_refused_without_being_read(inbox):
    with open(inbox / "huge.txt", "wb") as handle:
        handle.truncate(200 * MiB)  # sparse: 200 MB that take no disk
    tracemalloc.start()
    try:
        report = run_now()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [r["file"] for r in report.rejected] == ["huge.txt"]
    assert peak < 20 * MiB  # reading it whole takes 200 MiB at least


def test_the_size_cap_is_the_runs_max_file_bytes(inbox, monkeypatch):
    configure(monkeypatch, inbox, max_file_bytes=len(NOTE))
    (inbox / "fits.txt").write_text(NOTE)
    (inbox / "over.txt").write_text(NOTE + "!")
    report = run_now()
    assert report.submitted == ["fits.txt"]
    assert reasons(report) == {
        "over.txt": f"larger than {len(NOTE)} bytes (the run's max_file_bytes): split the document"
    }


def test_a_file_growing_while_read_is_read_no_further_than_the_cap(tmp_path, monkeypatch):
    (tmp_path / "growing.txt").write_bytes(b"x" * MiB)
    real_fstat, real_read = os.fstat, os.read
    read = []

    def fstat_before_growth(fd: int) -> os.stat_result:
        st = real_fstat(fd)
        fields = list(st)
        fields[6] = 10  # st_size when it was opened: it grew since
        return os.stat_result(fields, {"st_mtime_ns": st.st_mtime_ns})

    def counting_read(fd: int, n: int) -> bytes:
        data = real_read(fd, n)
        read.append(len(data))
        return data

    folder = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(os, "fstat", fstat_before_growth)
            patch.setattr(os, "read", counting_read)
            with pytest.raises(FileRefused, match="larger than 1000 bytes"):
                read_capped(folder, "growing.txt", 1000)
    finally:
        os.close(folder)
    assert sum(read) == 1001


def test_a_file_replaced_after_the_commit_is_left_for_the_next_run(inbox, monkeypatch):
    (inbox / "a.txt").write_text(NOTE)

    def replace() -> None:
        (inbox / "new.tmp").write_text("Lisinopril 10 mg daily.")
        os.replace(inbox / "new.tmp", inbox / "a.txt")

    with monkeypatch.context() as patch:
        wrap_archive(patch, replace)
        first = run_now()
    assert (first.submitted, first.left_in_inbox) == (["a.txt"], ["a.txt"])
    assert not (inbox / "archive").exists() or archived(inbox) == []
    second = run_now()
    assert second.submitted == ["a.txt"]
    (job,) = rows("select document from jobs where batch_id = :b", b=second.batch_id)
    assert job.document == "Lisinopril 10 mg daily."
    assert archived(inbox) == ["a.txt"] and in_inbox(inbox) == []


def test_a_file_rewritten_in_place_after_the_commit_is_left_for_the_next_run(inbox, monkeypatch):
    path = inbox / "a.txt"
    path.write_text(NOTE)

    def rewrite_in_place() -> None:  # same inode, size and mtime: only the content tells
        st = path.stat()
        with open(path, "r+b") as handle:
            handle.write(b"Atenolol  ")
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))

    with monkeypatch.context() as patch:
        wrap_archive(patch, rewrite_in_place)
        first = run_now()
    assert first.left_in_inbox == ["a.txt"] and path.exists()
    assert run_now().submitted == ["a.txt"]
    jobs = rows("select document from jobs order by created_at")
    assert [j.document for j in jobs] == [NOTE, "Atenolol  " + NOTE[10:]]


def test_a_changed_file_put_back_never_replaces_one_arriving_under_its_name(inbox, monkeypatch):
    (inbox / "a.txt").write_text(NOTE)

    def arrive_meanwhile(inbox_fd: int, holding: str, seen: Any) -> bool:
        (inbox / "a.txt").write_text("Lisinopril 10 mg daily.")
        return False  # the held file changed too

    monkeypatch.setattr("ponder.batches.inbox._is_unchanged", arrive_meanwhile)
    report = run_now()
    assert report.left_in_inbox == ["a.txt"]
    kept = [p for p in inbox.iterdir() if p.name not in ("a.txt", "archive")]
    assert [p.read_text() for p in kept] == [NOTE]
    assert kept[0].name.startswith("a-") and kept[0].suffix == ".txt"
    assert (inbox / "a.txt").read_text() == "Lisinopril 10 mg daily."
