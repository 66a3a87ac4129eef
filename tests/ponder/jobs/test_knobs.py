"""The knobs file: defaults per task, tenant caps, re-read on change, bad files refused."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ponder import config
from ponder.jobs.knobs import KnobsError, KnobsStore, parse_knobs

GOOD = """
[tasks.medrec_extraction]
strategy = "refine"
n = 2
budget_tokens = 9000
params = { max_rounds = 2 }

[tenants.default]
max_n = 6
max_budget_tokens = 20000
"""


def write(path: Path, text: str) -> None:
    path.write_text(text)
    # A new mtime even within the filesystem's timestamp resolution.
    stamp = time.time() + (1 if path.exists() else 0)
    os.utime(path, (stamp, stamp))


def test_a_valid_file_gives_task_defaults_and_caps(tmp_path):
    path = tmp_path / "knobs.toml"
    write(path, GOOD)
    knobs = parse_knobs(path)
    assert knobs.for_task("medrec_extraction").strategy == "refine"
    assert knobs.caps_for("anyone").max_n == 6


def test_toml_syntax_error_names_the_file_and_line(tmp_path):
    path = tmp_path / "knobs.toml"
    write(path, '[tasks.medrec_extraction]\nstrategy = "refine\n')
    with pytest.raises(KnobsError, match=r"knobs.toml: .*line 2"):
        parse_knobs(path)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('[tasks.medrec_extraction]\nstrategy = "guess"\n', "unknown strategy 'guess'"),
        ('[tasks.medrec_extraction]\nstrategy = "refine"\nparams = { rounds = 1 }\n', "rounds"),
        ("[tasks.medrec_extraction]\nn = 0\n", "greater than or equal to 1"),
        ("[tenants.default]\nmax_n = -1\n", "max_n"),
        ("[surprise]\nx = 1\n", "surprise"),
    ],
    ids=["unknown-strategy", "unknown-param", "n-zero", "negative-cap", "unknown-section"],
)
def test_invalid_values_are_refused_with_line_and_reason(tmp_path, text, reason):
    path = tmp_path / "knobs.toml"
    write(path, text)
    with pytest.raises(KnobsError) as info:
        parse_knobs(path)
    assert str(path) in str(info.value) and "line " in str(info.value)
    assert reason in str(info.value)


def test_store_rereads_on_change_and_keeps_the_previous_config_on_a_bad_file(tmp_path):
    path = tmp_path / "knobs.toml"
    write(path, GOOD)
    store = KnobsStore(path)
    assert store.current().for_task("medrec_extraction").n == 2
    write(path, GOOD.replace("n = 2", "n = 3"))
    assert store.current().for_task("medrec_extraction").n == 3
    write(path, "[tasks.medrec_extraction\n")
    assert store.current().for_task("medrec_extraction").n == 3  # previous stays in force
    assert store.last_error is not None and "knobs.toml" in store.last_error


def knobs_in_force(tmp_path, monkeypatch, text: str):
    """A knobs file holding ``text``, in force for the API (``PONDER_KNOBS_FILE``) until the
    test ends: a fixture's body (``yield from``)."""
    from ponder.jobs.knobs import knobs_store

    path = tmp_path / "knobs.toml"
    write(path, text)
    monkeypatch.setenv("PONDER_KNOBS_FILE", str(path))
    config.get_settings.cache_clear()
    knobs_store.cache_clear()
    yield path
    monkeypatch.undo()
    config.get_settings.cache_clear()
    knobs_store.cache_clear()


@pytest.fixture
def knobs_file(tmp_path, monkeypatch):
    yield from knobs_in_force(tmp_path, monkeypatch, GOOD)


def test_a_job_without_a_strategy_takes_the_task_defaults(api, tenant, isolated_broker, knobs_file):
    body = {"task": "medrec_extraction", "document": "Aspirin 81 mg daily."}
    job = api.post("/v1/jobs", json=body, headers=tenant.headers).json()
    strategy = job["config"]["strategy"]
    assert strategy["name"] == "refine" and strategy["n"] == 2
    assert strategy["params"] == {"max_rounds": 2} and strategy["budget_tokens"] == 9000


def test_overrides_beyond_the_tenant_caps_are_refused(api, tenant, isolated_broker, knobs_file):
    body = {"task": "medrec_extraction", "document": "Aspirin 81 mg daily.", "n": 8}
    response = api.post("/v1/jobs", json=body, headers=tenant.headers)
    assert response.status_code == 422 and "between 1 and 6" in response.json()["error"]
    body = {**body, "n": 2, "budget_tokens": 30000}
    response = api.post("/v1/jobs", json=body, headers=tenant.headers)
    assert response.status_code == 422 and "cap of 20000" in response.json()["error"]
