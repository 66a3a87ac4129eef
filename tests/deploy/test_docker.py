"""The Docker images and compose file: Dockerfiles pass hadolint, and every command refers
to a real entry point of the project (no Docker engine runs here, so nothing is built)."""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((ROOT / "docker").glob("Dockerfile.*"))
COMPOSE = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
K8S_COMMANDS = []
for path in (ROOT / "k8s").rglob("*.yaml"):
    for doc in yaml.safe_load_all(path.read_text()):
        pod = (doc or {}).get("spec", {}).get("template", {}).get("spec", {})
        K8S_COMMANDS += [c["command"] for c in pod.get("containers", []) if "command" in c]


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(__import__("sys").executable).parent / "hadolint")
    return found


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(dockerfile):
    result = subprocess.run(
        [hadolint(), "--config", str(ROOT / ".hadolint.yaml"), str(dockerfile)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_run_as_a_non_root_user(dockerfile):
    users = re.findall(r"^USER (\S+)", dockerfile.read_text(), re.MULTILINE)
    assert users and users[-1] not in ("root", "0")


def check_entry_point(command: list[str]) -> None:
    """Fail unless the command starts one of the project's real entry points."""
    program, args = command[0], command[1:]
    if program == "uvicorn":
        module, attr = args[0].split(":")
        assert hasattr(importlib.import_module(module), attr), args[0]
    elif program == "celery":
        assert args[0] == "-A"
        assert hasattr(importlib.import_module(args[1]), "app"), args[1]
        assert args[2] in ("worker", "beat", "flower", "inspect"), args[2]
        if "-Q" in args:
            queues = set(args[args.index("-Q") + 1].split(","))
            # A model's pool consumes `reasoning.<model>` (ponder/queue.py).
            named = {q for q in queues if q.startswith("reasoning.") and len(q) > len("reasoning.")}
            assert queues - named <= {"reasoning", "quarantine", "notify", "default"}, queues
    elif program == "ponder":
        scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
        assert "ponder" in scripts
        from ponder.cli.commands import app

        result = CliRunner().invoke(app, [*[a for a in args if not a.startswith("-")], "--help"])
        assert result.exit_code == 0, (command, result.output)
    else:
        pytest.fail(f"unknown program {program!r} in {command}")


@pytest.mark.parametrize("name", sorted(COMPOSE["services"]))
def test_compose_service_commands_are_real_entry_points(name):
    service = COMPOSE["services"][name]
    if "build" not in service:
        assert "image" in service  # a third-party service (postgres, redis, mail catcher)
        return
    check_entry_point(service["command"])


def test_compose_has_health_checks_and_a_one_shot_migration():
    services = COMPOSE["services"]
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], (name, dependency)
    assert services["migrate"]["restart"] == "no"
    assert services["api"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    assert {"postgres", "redis", "api", "worker", "beat", "flower", "mailpit"} <= set(services)
    assert "--basic-auth" in " ".join(services["flower"]["command"])


@pytest.mark.parametrize("command", K8S_COMMANDS, ids=lambda c: " ".join(c[:3]))
def test_kubernetes_commands_are_real_entry_points(command):
    check_entry_point(command)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_cmd_is_a_real_entry_point(dockerfile):
    cmd = re.findall(r"^CMD (\[.*\])", dockerfile.read_text(), re.MULTILINE)[-1]
    check_entry_point(yaml.safe_load(cmd))


def test_grafana_dashboard_queries_only_metrics_we_export():
    import json

    dashboard = json.loads((ROOT / "docker" / "grafana-dashboard.json").read_text())
    exported = {
        "ponder_jobs", "ponder_queue_depth", "ponder_job_latency_seconds_bucket",
        "ponder_tokens_total", "ponder_cost_total", "ponder_verdicts_total",
        "ponder_escalations_total", "ponder_delivery_attempts_total", "ponder_alert_active",
        "ponder_engine_requests_in_flight",
    }  # fmt: skip
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            names = set(re.findall(r"\bponder_[a-z_]+", target["expr"]))
            assert names and names <= exported, (panel["title"], names - exported)
