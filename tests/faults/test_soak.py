"""Scenario 11 in small: ``bench/soak.py`` with a worker killed mid-run reports no job lost
and none duplicated (the full run's figures are in docs/reliability.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.faults, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]


def test_soak_with_a_worker_killed_loses_and_duplicates_nothing(vllm_server, tmp_path):
    # The workers use the session's vLLM server, so a restart takes seconds; the full run in
    # docs/reliability.md kills workers with their in-process engines.
    out = tmp_path / "soak.json"
    command = [sys.executable, "bench/soak.py", "--jobs", "12", "--workers", "1",
               "--submit-rate", "8", "--kill-every", "8", "--max-kills", "1",
               "--restart-after", "1", "--lease-ttl", "6", "--timeout", "420",
               "--engine-url", vllm_server, "--out", str(out)]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, timeout=600)
    report = json.loads(out.read_text())
    assert done.returncode == 0, report
    assert report["kills"] == 1, json.dumps(report)[-1500:]
    assert report["retried_after_a_kill"] >= 1  # the kill hit jobs in flight
    assert report["submitted"] == 12
    assert report["lost"] == 0 and report["duplicated"] == 0
    assert report["completed"] + report["failed"] == 12
    assert report["ended_without_webhook"] == 0
