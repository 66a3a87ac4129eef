"""``ponder review export``: reviewed jobs as ``ponder eval`` JSONL, gold = the reviewed answer."""

from __future__ import annotations

from typer.testing import CliRunner

from ponder.cli.commands import app
from ponder.config import get_settings
from ponder.db import session_scope
from ponder.evaluation.loaders import load_dataset
from ponder.evaluation.scoring import score_item
from ponder.reviews.service import decide
from tests.ponder.reviews.jobs import GOOD, answer, ended_job


def test_the_export_loads_as_an_eval_dataset_and_scores_the_reviewed_answers_one(
    tenant, isolated_broker, tmp_path
):
    corrected = answer(dose="80", unit="mg", frequency=None)
    decisions = {
        ended_job(tenant.tenant_id): ("corrected", corrected, "the note says 80"),
        ended_job(tenant.tenant_id): ("approved", None, None),
        ended_job(tenant.tenant_id): ("rejected", None, "not a medication list"),
    }
    answers = {}
    with session_scope() as session:
        for job_id, (decision, given, reason) in decisions.items():
            record = decide(session=session, tenant_id=tenant.tenant_id, job_id=job_id,
                            reviewer_id=None, api_key_id=None, decision=decision, answer=given,
                            reason=reason, settings=get_settings())  # fmt: skip
            answers[job_id] = record["answer_after"]
    result = CliRunner().invoke(
        app, ["review", "export", "--tenant", "tenant-a", "--task", "medrec_extraction"]
    )
    assert result.exit_code == 0, result.output
    path = tmp_path / "gold.jsonl"
    path.write_text(result.stdout)
    items = load_dataset(path, task="medrec_extraction")
    assert len(items) == 2  # the rejection has no answer
    for item in items:
        assert score_item("medrec_extraction", answers[item.id], item.gold).score == 1.0
    golds = [set(item.gold["medications"]) for item in items]
    assert {"aspirin 80 mg", "Metoprolol 25 mg"} in golds  # the correction, not the machine's
    assert GOOD["medications"][0]["dose"] == "81"
