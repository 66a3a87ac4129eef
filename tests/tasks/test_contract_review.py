import json
from pathlib import Path

import pytest

from ponder.verify import SCHEMA_VERIFIER, verify_candidate
from tasks.contract_review import (
    CATEGORIES,
    TASK,
    ContractReview,
    Finding,
    check_category_vocabulary,
    check_no_duplicates,
    check_nonempty_rationale,
    check_quote_grounding,
    normalise,
)
from tasks.registry import TASKS, get_task

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "contract_msa.txt"
DOCUMENT = (
    "This Agreement is governed by the laws of the State of New York.\n"
    "Customer's total liability shall not exceed  the fees paid in the prior 12 months."
)


GOVERNING_LAW = {
    "category": "governing_law",
    "quote": "governed by the laws of the State of New York",
    "risk": "low",
    "rationale": "Neutral choice of a commercial forum.",
}


def finding(**changes):
    return Finding(**GOVERNING_LAW | changes)


def review(*findings):
    return ContractReview(findings=list(findings))


def verdicts_for(output, document=DOCUMENT):
    text = output if isinstance(output, str) else output.model_dump_json()
    _, verdicts = verify_candidate(
        text=text, output_model=TASK.output_model, document=document, verifiers=TASK.verifiers
    )
    return {v.verifier: v for v in verdicts}


def test_taxonomy_has_the_41_cuad_categories():
    assert len(CATEGORIES) == 41
    assert {"governing_law", "cap_on_liability", "rofr_rofo_rofn"} <= set(CATEGORIES)
    assert all(description.strip() for description in CATEGORIES.values())


def test_grounded_finding_passes_every_verifier():
    verdicts = verdicts_for(review(finding()))
    assert all(v.passed and v.score == 1.0 for v in verdicts.values())


def test_fabricated_quote_fails_grounding_and_is_named():
    fabricated = finding(quote="Provider may terminate at will without notice.")
    result = check_quote_grounding(review(finding(), fabricated), DOCUMENT)
    assert not result.passed
    assert result.score == 0.5
    assert result.findings == [
        "governing_law: quote 'Provider may terminate at will without notice.' "
        "does not occur in the document"
    ]


def test_grounding_names_a_long_quote_truncated_to_80_characters():
    result = check_quote_grounding(review(finding(quote="x" * 300)), DOCUMENT)
    named = result.findings[0].split("'")[1]
    assert len(named) == 80


def test_grounding_ignores_case_whitespace_and_quote_style():
    quote = "CUSTOMER\u2019S total liability shall not exceed the fees paid"
    assert check_quote_grounding(review(finding(quote=quote)), DOCUMENT).passed


def test_whitespace_only_quote_fails_grounding():
    assert not check_quote_grounding(review(finding(quote="   ")), DOCUMENT).passed


def test_empty_findings_pass_every_verifier():
    verdicts = verdicts_for(review())
    assert all(v.passed and v.score == 1.0 for v in verdicts.values())


def test_category_outside_taxonomy_fails_vocabulary():
    # An unconstrained engine can emit any string; model_construct skips the schema like it.
    rogue = Finding.model_construct(
        category="confidentiality", quote="governed by", risk="low", rationale="x"
    )
    result = check_category_vocabulary(ContractReview.model_construct(findings=[rogue]), "")
    assert not result.passed
    assert result.findings == ["category 'confidentiality' is not in the taxonomy"]


def test_same_category_and_quote_twice_fails_no_duplicates():
    twice = review(finding(), finding(quote="  GOVERNED by the laws of the State of New York"))
    result = check_no_duplicates(twice, DOCUMENT)
    assert not result.passed
    assert result.score == 0.5
    assert "is listed 2 times" in result.findings[0]


def test_same_quote_under_two_categories_is_not_a_duplicate():
    two = review(finding(), finding(category="document_name"))
    assert check_no_duplicates(two, DOCUMENT).passed


def test_blank_rationale_fails_nonempty_rationale():
    result = check_nonempty_rationale(review(finding(rationale="  ")), DOCUMENT)
    assert not result.passed
    assert result.findings[0].endswith("has an empty rationale")


def test_rationale_that_repeats_the_quote_fails_nonempty_rationale():
    parrot = finding(rationale="Governed by the laws of the State of New York")
    assert not check_nonempty_rationale(review(parrot), DOCUMENT).passed


def test_optional_verifiers_weigh_half():
    optional = {v.name: v.weight for v in TASK.verifiers if not v.required}
    assert optional == {"no_duplicates": 0.5, "nonempty_rationale": 0.5}


def test_normalise_ignores_order_risk_rationale_and_case():
    cap = finding(category="cap_on_liability", quote="total liability shall not exceed")
    first = review(finding(), cap)
    second = review(
        cap.model_copy(update={"risk": "high", "rationale": "other"}),
        finding(quote="GOVERNED BY the laws of the State of New York"),
    )
    assert normalise(first) == normalise(second)
    assert normalise(first) != normalise(review(finding()))


def test_invalid_json_fails_schema_and_leaves_every_verifier_not_checked():
    verdicts = verdicts_for('{"findings": [')
    assert not verdicts[SCHEMA_VERIFIER].passed
    others = [v for name, v in verdicts.items() if name != SCHEMA_VERIFIER]
    assert len(others) == len(TASK.verifiers)
    assert all(not v.passed and "not checked" in v.findings[0] for v in others)


def test_output_schema_is_bounded():
    schema = TASK.json_schema()
    assert schema["properties"]["findings"]["maxItems"] == 8
    item = schema["$defs"]["Finding"]["properties"]
    assert item["quote"]["maxLength"] == 300
    assert item["rationale"]["maxLength"] == 200
    assert set(item["category"]["enum"]) == set(CATEGORIES)
    assert item["risk"]["enum"] == ["low", "medium", "high"]


def test_too_many_findings_fail_the_schema():
    text = json.dumps({"findings": [finding().model_dump()] * 9})
    assert not verdicts_for(text)[SCHEMA_VERIFIER].passed


def test_prompt_contains_the_document_and_every_category_id():
    system, user = TASK.messages("UNIQUE-CONTRACT-TEXT")
    assert system["role"] == "system" and user["role"] == "user"
    assert "UNIQUE-CONTRACT-TEXT" in user["content"]
    listed = {line[2:] for line in user["content"].splitlines() if line.startswith("- ")}
    assert set(CATEGORIES) <= listed


def test_messages_render_for_the_sample_contract():
    document = SAMPLE.read_text()
    _, user = TASK.messages(document)
    assert document.strip() in user["content"]
    assert len(TASK.template_version()) == 12


def test_hand_written_review_of_the_sample_passes_every_verifier():
    sample = review(
        finding(quote="governed by the laws of the State of New York"),
        finding(
            category="termination_for_convenience",
            quote="Customer may terminate this Agreement or any statement of work for "
            "convenience at any time upon thirty (30) days' prior written notice to Provider.",
            risk="medium",
        ),
        finding(
            category="cap_on_liability",
            quote="each party's total liability arising out of this agreement shall not "
            "exceed the fees paid by customer in the twelve (12) months",
        ),
        finding(
            category="no_solicit_of_employees",
            quote="neither party will solicit for employment any employee of the other party",
        ),
        finding(category="anti_assignment", quote="Neither party may assign this Agreement"),
    )
    verdicts = verdicts_for(sample, document=SAMPLE.read_text())
    assert all(v.passed for v in verdicts.values()), verdicts


def test_registry_finds_the_task_by_name():
    assert get_task("contract_review") is TASK
    assert set(TASKS) == {"contract_review", "medrec_extraction"}


def test_registry_raises_key_error_for_an_unknown_task():
    with pytest.raises(KeyError, match="unknown task type 'poetry'"):
        get_task("poetry")
