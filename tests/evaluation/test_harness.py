"""End to end: ``ponder eval`` on a tiny dataset through the job service, a real Celery
worker subprocess and the real engine; an item the service refuses counts as a failure."""

from __future__ import annotations

import json

import pytest
import redis
import sqlalchemy as sa

from ponder import config, queue
from ponder.db import get_engine
from ponder.evaluation.command import EvalArgs, evaluate
from ponder.evaluation.harness import EVAL_TENANT
from tests.conftest import SPARE_BROKER

pytestmark = pytest.mark.e2e

# Written for this test: two small problems and one too long for the task (5000 characters).
PROBLEMS = [
    ("two-apples", "Sam has 2 apples and buys 3 more. How many apples does he have?", "5"),
    ("three-boxes", "Each box holds 4 pens. How many pens are in 3 boxes?", "12"),
    ("too-long", "How many words are here? " + "word " * 1200, "1200"),
]


@pytest.fixture
def spare_broker(monkeypatch: pytest.MonkeyPatch):
    """A broker no other test worker consumes from, so only the eval's own worker runs."""
    redis.Redis.from_url(SPARE_BROKER).flushdb()
    monkeypatch.setenv("PONDER_BROKER__URL", SPARE_BROKER)
    monkeypatch.setenv("PONDER_LIMITS__MAX_TOKENS_PER_SAMPLE", "96")
    config.get_settings.cache_clear()
    queue.celery_app.cache_clear()
    yield
    config.get_settings.cache_clear()
    queue.celery_app.cache_clear()


def test_a_tiny_dataset_runs_end_to_end_and_a_refused_item_counts(clean_db, spare_broker, tmp_path):
    dataset = tmp_path / "tiny.jsonl"
    dataset.write_text("".join(
        json.dumps({"id": i, "task": "math_answer", "document": d, "gold": {"answer": a}}) + "\n"
        for i, d, a in PROBLEMS
    ))  # fmt: skip
    out = tmp_path / "out.json"
    payload = evaluate(
        EvalArgs(task="math_answer", strategies="single", dataset=dataset, out=out,
                 concurrency=2, timeout_s=600)
    )  # fmt: skip

    figures = payload["strategies"]["single"]
    assert figures["items"] == 3 and figures["failed_items"] == 1
    by_id = {p["id"]: p for p in figures["per_item"]}
    assert by_id["too-long"]["status"] == "refused"
    assert "5000" in by_id["too-long"]["error"]
    for ran in ("two-apples", "three-boxes"):
        assert by_id[ran]["status"] in {"succeeded", "needs_review"}
        assert by_id[ran]["tokens"] > 0 and by_id[ran]["latency_s"] > 0
    assert figures["tokens_per_job"] > 0 and figures["p50_s"] > 0
    assert json.loads(out.read_text())["strategies"]["single"]["items"] == 3

    with get_engine().connect() as conn:
        rows = conn.execute(sa.text(
            "select j.status, j.metadata, j.config from jobs j join tenants t on t.id = "
            "j.tenant_id where t.name = :tenant order by j.created_at"
        ), {"tenant": EVAL_TENANT}).all()  # fmt: skip
    assert [r.metadata["eval_strategy"] for r in rows] == ["warm-up", "single", "single"]
    assert all(r.config["strategy"]["max_tokens"] == 96 for r in rows)
    assert all(r.status in {"succeeded", "needs_review"} for r in rows)
