"""The Kubernetes manifests: every overlay renders and validates against the Kubernetes
schemas offline; the operational promises hold in the rendered objects."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest

from tests.deploy.kustomize import build, containers, find

K8S = Path(__file__).resolve().parents[2] / "k8s"
OVERLAYS = ["dev", "gpu", "pools"]
CRDS = {"ScaledObject"}  # KEDA's; not in the Kubernetes schemas


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_resource_is_valid_for_kubernetes(overlay):
    resources = build(K8S / "overlays" / overlay)
    assert len(resources) >= 10
    for resource in resources:
        if resource["kind"] in CRDS:
            continue
        kubernetes_validate.validate(resource, "1.30.0", strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_referenced_never_inlined(overlay):
    resources = build(K8S / "overlays" / overlay)
    assert not [r for r in resources if r["kind"] == "Secret"]
    for container in containers(resources):
        for env in container.get("env", []):
            assert "DATABASE__URL" not in env["name"] or "valueFrom" in env


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_are_replaced_by_the_overlay(overlay):
    for container in containers(build(K8S / "overlays" / overlay)):
        assert container["image"].startswith("registry.example.org/ponder/")


def test_gpu_overlay_requests_a_gpu_and_scales_on_queue_depth():
    resources = build(K8S / "overlays" / "gpu")
    worker = find(resources, "Deployment", "ponder-worker")
    pod = worker["spec"]["template"]["spec"]
    limits = pod["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1"
    # SIGTERM gives the runs back within worker.shutdown_grace_s; the pod waits longer.
    env = find(resources, "ConfigMap", "ponder-env")["data"]
    assert float(env["PONDER_WORKER__SHUTDOWN_GRACE_S"]) < pod["terminationGracePeriodSeconds"]
    assert pod["terminationGracePeriodSeconds"] <= 30  # a spot reclaim's notice, an eviction
    quarantine = find(resources, "Deployment", "ponder-quarantine-worker")["spec"]
    [container] = quarantine["template"]["spec"]["containers"]
    assert container["command"][-6:] == ["-Q", "quarantine", "-P", "threads", "-c", "1"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    scaled = find(resources, "ScaledObject", "ponder-worker")
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["type"] == "redis" and trigger["metadata"]["listName"] == "reasoning"
    assert scaled["spec"]["scaleTargetRef"]["name"] == "ponder-worker"


def test_api_has_probes_beat_has_one_replica_and_migrations_run_as_a_job():
    resources = build(K8S / "overlays" / "dev")
    api = find(resources, "Deployment", "ponder-api")["spec"]["template"]["spec"]["containers"][0]
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    beat = find(resources, "Deployment", "ponder-beat")["spec"]
    assert beat["replicas"] == 1 and beat["strategy"]["type"] == "Recreate"
    job = find(resources, "Job", "ponder-migrate")
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "ponder",
        "db",
        "migrate",
    ]
    assert {r["kind"] for r in resources} >= {"PodDisruptionBudget", "ConfigMap", "Service"}
    flower = find(resources, "Deployment", "ponder-flower")["spec"]["template"]["spec"]
    assert any(e["name"] == "FLOWER_BASIC_AUTH" for e in flower["containers"][0]["env"])


def test_the_pools_overlay_scales_each_models_worker_on_its_own_queue():
    resources = build(K8S / "overlays" / "pools")
    lists = {
        obj["spec"]["scaleTargetRef"]["name"]: obj["spec"]["triggers"][0]["metadata"]["listName"]
        for obj in resources
        if obj["kind"] == "ScaledObject"
    }
    assert lists == {"ponder-worker": "reasoning", "ponder-worker-large": "reasoning.large"}
    large = find(resources, "Deployment", "ponder-worker-large")["spec"]["template"]["spec"]
    [container] = large["containers"]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    assert env["PONDER_WORKER__MODEL"] == "large"
    assert container["command"][container["command"].index("-Q") + 1] == "reasoning.large"
