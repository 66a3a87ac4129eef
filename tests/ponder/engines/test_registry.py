"""The model registry: built from ``engine`` when none is configured, refused at start-up
naming the entry when an entry cannot be served, and the knobs file's model names checked
against it."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from pydantic import ValidationError

from ponder import config
from ponder.config import Settings
from ponder.engines.registry import UnknownModel
from ponder.jobs.knobs import KnobsError, KnobsStore, parse_knobs


def configured(**fields: Any) -> Settings:
    """Settings from the environment, with these sections set (typed by pydantic)."""
    return Settings(**fields)


SMALL: dict[str, Any] = {
    "name": "small",
    "kind": "vllm",
    "model": "",
    "dtype": "float32",
    "max_model_len": 2048,
    "prices": {"per_million_completion_tokens": 2.0},
}
LARGE: dict[str, Any] = {
    "name": "large",
    "kind": "openai",
    "model": "Qwen/Qwen3-32B",
    "base_url": "http://127.0.0.1:8001/v1",
    "dtype": "bfloat16",
    "max_model_len": 32768,
    "reasoning_parser": "qwen3",
    "prices": {"per_gpu_hour": 4.0},
}


def test_without_a_registry_the_engine_settings_are_the_one_default_entry():
    settings = configured(cost={"per_million_prompt_tokens": 1.5})
    registry = settings.registry
    assert registry.names() == ["default"] and registry.default == "default"
    entry = registry.get(None)
    assert entry.kind == "vllm" and entry.model == settings.model_path
    assert entry.dtype == settings.engine.dtype
    assert entry.max_model_len == settings.engine.max_model_len
    assert entry.prices.per_million_prompt_tokens == 1.5  # the cost section's prices
    assert registry.queues() == ["reasoning"]
    assert settings.worker_model.name == "default"


def test_a_registry_routes_the_default_to_reasoning_and_others_to_their_own_queue():
    settings = configured(models=[SMALL, LARGE], default_model="small")
    registry = settings.registry
    assert registry.queue("small") == "reasoning"
    assert registry.queue("large") == "reasoning.large"
    assert registry.queue(None) == "reasoning"
    assert registry.get("small").model == settings.model_path  # empty: the embedded model
    assert configured(models=[SMALL, LARGE], default_model="large").registry.queue("small") == (
        "reasoning.small"
    )


def test_the_first_entry_is_the_default_when_none_is_named():
    assert configured(models=[LARGE, SMALL]).registry.default == "large"


def test_an_unknown_name_lists_the_known_models():
    registry = configured(models=[SMALL, LARGE]).registry
    with pytest.raises(UnknownModel, match="known models: large, small"):
        registry.get("huge")


@pytest.mark.parametrize("field", ["kind", "model", "dtype", "max_model_len"])
def test_an_entry_missing_a_field_is_refused_naming_the_entry(field):
    entry = {k: v for k, v in LARGE.items() if k != field}
    with pytest.raises(ValidationError, match=f"models entry 'large': missing {field}"):
        configured(models=[SMALL, entry])


def test_an_unknown_reasoning_parser_is_refused_naming_the_entry_and_the_known_ones():
    with pytest.raises(ValidationError) as info:
        configured(models=[SMALL, {**LARGE, "reasoning_parser": "qwen9"}])
    message = str(info.value)
    assert "models entry 'large': unknown reasoning_parser 'qwen9'" in message
    assert "deepseek_r1" in message and "qwen3" in message


@pytest.mark.parametrize(
    ("models", "default", "phrase"),
    [
        (
            [SMALL, {**LARGE, "base_url": ""}],
            "",
            "models entry 'large': kind openai needs base_url",
        ),
        ([SMALL, {**SMALL, "dtype": "bfloat16"}], "", "names must be unique; repeated: small"),
        ([SMALL, LARGE], "medium", "default_model 'medium' is not in the registry"),
        ([{**SMALL, "name": "Small Model"}], "", "name"),
        ([{**SMALL, "colour": "blue"}], "", "colour"),
    ],
)
def test_a_registry_that_cannot_be_served_is_refused(models, default, phrase):
    with pytest.raises(ValidationError, match=phrase):
        configured(models=models, default_model=default)


def test_a_worker_naming_a_model_outside_the_registry_is_refused():
    with pytest.raises(ValidationError, match="worker.model 'huge' is not in the registry"):
        configured(models=[SMALL, LARGE], worker={"model": "huge"})
    assert configured(models=[SMALL, LARGE], worker={"model": "large"}).worker_model.name == "large"


def test_the_registry_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("PONDER_MODELS", json.dumps([SMALL, LARGE]))
    monkeypatch.setenv("PONDER_DEFAULT_MODEL", "small")
    monkeypatch.setenv("PONDER_WORKER__MODEL", "large")
    settings = configured()
    assert settings.registry.names() == ["large", "small"]
    assert settings.worker_model.base_url == "http://127.0.0.1:8001/v1"


def test_each_entry_prices_its_own_jobs():
    registry = configured(models=[SMALL, LARGE]).registry
    assert registry.get("small").prices.cost(prompt=10, completion=1_000_000, engine_s=0) == 2.0
    assert registry.get("large").prices.cost(prompt=0, completion=0, engine_s=1800) == 2.0
    assert configured().registry.get(None).prices.cost(prompt=5, completion=5, engine_s=5) is None


@pytest.fixture
def registry_env(monkeypatch):
    monkeypatch.setenv("PONDER_MODELS", json.dumps([SMALL, LARGE]))
    config.get_settings.cache_clear()
    yield
    monkeypatch.undo()
    config.get_settings.cache_clear()


KNOBS = """\
[tasks.medrec_extraction]
strategy = "best_of_n"
model = "large"
fallback_model = "small"
"""


def test_knobs_name_a_task_model_and_its_fallback(tmp_path, registry_env):
    path = tmp_path / "knobs.toml"
    path.write_text(KNOBS)
    task = parse_knobs(path).for_task("medrec_extraction")
    assert (task.model, task.fallback_model) == ("large", "small")


@pytest.mark.parametrize(
    ("text", "line", "phrase"),
    [
        (KNOBS.replace('model = "large"', 'model = "huge"'), 3, "tasks.medrec_extraction.model"),
        (KNOBS.replace('= "small"', '= "tiny"'), 4, "tasks.medrec_extraction.fallback_model"),
    ],
)
def test_knobs_naming_an_unknown_model_are_refused_with_file_and_line(
    tmp_path, registry_env, text, line, phrase
):
    path = tmp_path / "knobs.toml"
    path.write_text(text)
    with pytest.raises(KnobsError) as info:
        parse_knobs(path)
    message = str(info.value)
    assert message.startswith(f"{path}: line {line}: {phrase}: unknown model"), message
    assert "known models: large, small" in message


def test_a_knobs_file_naming_an_unknown_fallback_leaves_the_previous_knobs(tmp_path, registry_env):
    path = tmp_path / "knobs.toml"
    path.write_text(KNOBS)
    store = KnobsStore(path)
    assert store.current().for_task("medrec_extraction").fallback_model == "small"
    path.write_text(KNOBS.replace('= "small"', '= "tiny"') + "n = 3\n")
    os.utime(path, (1, 1))  # a new modification time however fast the rewrite
    assert store.current().for_task("medrec_extraction").fallback_model == "small"
    assert store.current().for_task("medrec_extraction").n is None
    assert store.last_error is not None and "unknown model 'tiny'" in store.last_error


def test_a_nightly_run_naming_an_unknown_model_is_refused_at_start_up(tmp_path):
    run = {"name": "notes", "cron": "@daily", "tenant": "t", "inbox": str(tmp_path),
           "task": "medrec_extraction", "model": "huge"}  # fmt: skip
    with pytest.raises(ValidationError, match="nightly run 'notes': unknown model 'huge'"):
        configured(models=[SMALL, LARGE], nightly=[run])
    assert configured(models=[SMALL, LARGE], nightly=[{**run, "model": "large"}]).nightly
