"""contract_review and contract_review_full: the taxonomy, the bounded schemas, the prompts,
and hand-written reviews through every verifier."""

import json
from pathlib import Path

import pytest

from ponder.verify import SCHEMA_VERIFIER
from tasks.contract_review import FULL_TASK, TASK
from tasks.contract_review.schema import FullContractReview
from tasks.contract_review.task import normalise
from tasks.contract_review.taxonomy import CATEGORIES
from tasks.registry import TASKS, get_task
from tests.tasks.contract_review.fixtures import at, finding, review, verdicts_for

SAMPLE = Path(__file__).resolve().parents[3] / "samples" / "contract_msa.txt"


def test_taxonomy_has_the_41_cuad_categories_each_described():
    assert len(CATEGORIES) == 41
    assert {"governing_law", "cap_on_liability", "rofr_rofo_rofn"} <= set(CATEGORIES)
    assert all(description.strip() for description in CATEGORIES.values())


def test_grounded_finding_with_true_offsets_passes_every_verifier():
    cap = at("total liability shall not exceed", category="cap_on_liability")
    verdicts = verdicts_for(review(finding(), cap))
    assert all(v.passed and v.score == 1.0 for v in verdicts.values()), verdicts


def test_a_review_that_misses_a_reliably_cued_category_fails_only_completeness():
    verdicts = verdicts_for(review(finding()))
    failing = {name for name, v in verdicts.items() if not v.passed}
    assert failing == {"completeness"}  # "liability shall not exceed": cap_on_liability


def test_empty_findings_fail_only_completeness_when_a_cue_is_in_the_contract():
    verdicts = verdicts_for(review())
    failing = {name for name, v in verdicts.items() if not v.passed}
    assert failing == {"completeness"}  # "governed by the laws of" is a cue for governing_law


def test_category_fit_and_completeness_are_required_in_both_tasks():
    for task in (TASK, FULL_TASK):
        required = {v.name for v in task.verifiers if v.required}
        assert {"category_fit", "completeness"} <= required


def test_optional_verifiers_and_their_weights():
    optional = {v.name: v.weight for v in TASK.verifiers if not v.required}
    assert optional == {
        "offsets": 0.5,
        "no_duplicates": 0.5,
        "nonempty_rationale": 0.5,
        "judge": 1.0,
    }


def test_the_model_judge_is_declared_but_off_by_default():
    assert [v.name for v in TASK.verifiers if v.judge] == ["judge"]
    assert "judge" not in TASK.verifier_names()
    assert "judge" in TASK.verifier_names(judges=True)


def test_judge_runs_only_for_task_types_named_in_the_settings(monkeypatch):
    from ponder.config import Settings

    monkeypatch.setenv("PONDER_TASKS__JUDGE_VERIFIERS", '["contract_review"]')
    enabled = Settings().tasks.judge_verifiers
    assert TASK.judges_enabled(enabled)
    assert "judge" in TASK.verifier_names(judges=TASK.judges_enabled(enabled))
    assert not FULL_TASK.judges_enabled(enabled)


def test_judges_follow_the_settings_given_not_the_global_ones(monkeypatch):
    from ponder.config import get_settings

    monkeypatch.setenv("PONDER_TASKS__JUDGE_VERIFIERS", '["contract_review"]')
    get_settings.cache_clear()
    try:
        assert not TASK.judges_enabled(())
    finally:
        get_settings.cache_clear()


def test_normalise_ignores_order_offsets_risk_rationale_and_case():
    cap = at("total liability shall not exceed", category="cap_on_liability")
    first = review(finding(), cap)
    second = review(
        cap.model_copy(update={"risk": "high", "rationale": "other", "start": 0, "end": 3}),
        finding(quote="GOVERNED BY the laws of the State of New York"),
    )
    assert normalise(first) == normalise(second)
    assert normalise(first) != normalise(review(finding()))


def test_invalid_json_fails_schema_and_leaves_every_verifier_not_checked():
    verdicts = verdicts_for('{"findings": [')
    assert not verdicts[SCHEMA_VERIFIER].passed
    others = [v for name, v in verdicts.items() if name != SCHEMA_VERIFIER]
    assert len(others) == len(TASK.verifier_names())
    assert all(not v.passed and "not checked" in v.findings[0] for v in others)


def test_output_schema_is_bounded():
    schema = TASK.json_schema()
    assert schema["properties"]["findings"]["maxItems"] == 8
    item = schema["$defs"]["Finding"]["properties"]
    assert item["quote"]["maxLength"] == 300
    assert item["rationale"]["maxLength"] == 200
    for offset in ("start", "end"):
        assert item[offset]["type"] == "integer"
        assert item[offset]["minimum"] == 0 and item[offset]["maximum"] == 100_000
    assert set(item["category"]["enum"]) == set(CATEGORIES)
    assert item["risk"]["enum"] == ["low", "medium", "high"]


def test_full_review_schema_bounds_the_absent_list_to_the_taxonomy():
    schema = FULL_TASK.json_schema()
    assert schema["properties"]["findings"]["maxItems"] == 12
    absent = schema["properties"]["absent"]
    assert absent["maxItems"] == 41
    assert set(absent["items"]["enum"]) == set(CATEGORIES)


def test_too_many_findings_fail_the_schema():
    text = json.dumps({"findings": [finding().model_dump()] * 9})
    assert not verdicts_for(text)[SCHEMA_VERIFIER].passed


def test_negative_offsets_fail_the_schema():
    text = json.dumps({"findings": [finding().model_dump() | {"start": -1}]})
    assert not verdicts_for(text)[SCHEMA_VERIFIER].passed


def test_prompt_contains_the_document_every_category_id_and_asks_for_offsets():
    system, user = TASK.messages("UNIQUE-CONTRACT-TEXT")
    assert system["role"] == "system" and user["role"] == "user"
    assert "UNIQUE-CONTRACT-TEXT" in user["content"]
    listed = {line[2:] for line in user["content"].splitlines() if line.startswith("- ")}
    assert set(CATEGORIES) <= listed
    assert '"start"' in user["content"] and '"end"' in user["content"]


def test_full_review_prompt_asks_for_the_absent_categories():
    _, user = FULL_TASK.messages("UNIQUE-CONTRACT-TEXT")
    assert '"absent"' in user["content"] and "UNIQUE-CONTRACT-TEXT" in user["content"]


def test_messages_render_for_the_sample_contract():
    document = SAMPLE.read_text()
    _, user = TASK.messages(document)
    assert document.strip() in user["content"]
    assert len(TASK.template_version()) == 12


def _sample_review(document: str) -> list:
    return [
        at("governed by the laws of the State of New York", document),
        at(
            "Customer may terminate this Agreement or any statement of work for convenience at "
            "any time upon thirty (30) days' prior written notice to Provider.",
            document,
            category="termination_for_convenience",
            risk="medium",
        ),
        at(
            "EACH PARTY'S TOTAL LIABILITY ARISING OUT OF THIS AGREEMENT SHALL NOT EXCEED THE "
            "FEES PAID BY CUSTOMER IN THE TWELVE (12) MONTHS",
            document,
            category="cap_on_liability",
        ),
        at(
            "neither party will solicit for employment any employee of the other party",
            document,
            category="no_solicit_of_employees",
        ),
        at("Neither party may assign this Agreement", document, category="anti_assignment"),
        at("renews automatically for successive one-year terms", document,
           category="renewal_term"),
        at("entered into as of March 1, 2024", document, category="agreement_date"),
        at("written notice of non-renewal at least sixty (60) days before the end of the "
           "then-current term", document, category="notice_period_to_terminate_renewal"),
    ]  # fmt: skip


def test_sample_review_at_its_limit_records_the_cued_category_it_had_no_room_for():
    document = SAMPLE.read_text()
    verdicts = verdicts_for(review(*_sample_review(document)), document=document)
    completeness = verdicts["completeness"]
    assert completeness.passed and completeness.score < 1
    assert "effective_date not reported" in completeness.findings[0]


def test_hand_written_review_of_the_sample_passes_every_verifier():
    document = SAMPLE.read_text()
    verdicts = verdicts_for(review(*_sample_review(document)), document=document)
    assert all(v.passed for v in verdicts.values()), verdicts


def test_hand_written_full_review_of_the_sample_passes_every_verifier():
    document = SAMPLE.read_text()
    findings = _sample_review(document)
    found = {f.category for f in findings}
    full = FullContractReview(
        findings=findings + [at('the "Effective Date"', document, category="effective_date")],
        absent=[c for c in CATEGORIES if c not in found | {"effective_date"}],
    )
    verdicts = verdicts_for(full, document=document, task=FULL_TASK)
    assert all(v.passed for v in verdicts.values()), verdicts


def test_registry_finds_each_task_by_name():
    assert get_task("contract_review") is TASK
    assert get_task("contract_review_full") is FULL_TASK
    assert set(TASKS) == {
        "contract_review",
        "contract_review_full",
        "medrec_extraction",
        "math_answer",
        "chat_completion",
    }


def test_registry_raises_key_error_for_an_unknown_task():
    with pytest.raises(KeyError, match="unknown task type 'poetry'"):
        get_task("poetry")
