"""A small kustomize renderer for the subset our manifests use (resources, namespace, labels,
images, strategic-merge patches), so the rendered overlays can be validated offline."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml


def build(directory: Path) -> list[dict[str, Any]]:
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    resources: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            resources += build(path)
        else:
            resources += [d for d in yaml.safe_load_all(path.read_text()) if d]
    for patch in spec.get("patches", []):
        body = yaml.safe_load((directory / patch["path"]).read_text())
        target = find(resources, body["kind"], body["metadata"]["name"])
        merge(target, body)
    for label in spec.get("labels", []):
        for r in resources:
            r.setdefault("metadata", {}).setdefault("labels", {}).update(label["pairs"])
    for image in spec.get("images", []):
        for container in containers(resources):
            if container.get("image") == image["name"]:
                container["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
    if "namespace" in spec:
        for r in resources:
            r["metadata"]["namespace"] = spec["namespace"]
    return resources


def find(resources: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for r in resources:
        if r["kind"] == kind and r["metadata"]["name"] == name:
            return r
    raise KeyError(f"patch target {kind}/{name} not found")


def merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        elif isinstance(value, list) and isinstance(target.get(key), list) and _named(value):
            by_name = {item["name"]: item for item in target[key] if isinstance(item, dict)}
            for item in value:
                if item["name"] in by_name:
                    merge(by_name[item["name"]], item)
                else:
                    target[key].append(copy.deepcopy(item))
        else:
            target[key] = copy.deepcopy(value)


def _named(items: list[Any]) -> bool:
    return all(isinstance(i, dict) and "name" in i for i in items)


def containers(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in resources:
        pod = r.get("spec", {}).get("template", {}).get("spec", {})
        out += pod.get("containers", [])
    return out
