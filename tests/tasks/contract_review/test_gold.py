"""The contract review gold builder and its mutations, on tiny CUAD-format files."""

import random
from pathlib import Path

from ponder.evaluation.loaders import load_dataset
from ponder.evaluation.mutation import GoldCase, Skipped, evaluate_verifiers
from tasks.contract_review import FULL_TASK, TASK
from tasks.contract_review.gold import (
    CLASSES,
    FULL_SUITE,
    SUITE,
    contract_mutants,
)
from tasks.contract_review.schema import ContractReview, FullContractReview
from tasks.contract_review.taxonomy import CATEGORIES
from tests.evaluation.test_loaders import cuad_csv

GOVERNING_LAW = "This Agreement shall be governed by the laws of the State of Delaware."
AUDIT = "Buyer may audit the books and records of Seller once in each calendar year."
CONVENIENCE = "Either party may terminate this Agreement for convenience on sixty days' notice."
ASSIGNMENT = "Neither party may assign this Agreement without the prior written consent."
INSURANCE = (
    "Supplier shall maintain general liability insurance " + "in amounts and " * 30 + "so on."
)

CUED = {
    "Filename": "cued.pdf",
    "Governing Law": repr([GOVERNING_LAW]),
    "Audit Rights": repr([AUDIT]),
    "Termination For Convenience": repr([CONVENIENCE]),
    "Anti-Assignment": repr([ASSIGNMENT]),
}
"""Every clause has a reliable cue and uses its category's words: each mutation is caught."""


def _cases(path: Path, suite=SUITE) -> list[GoldCase | Skipped]:
    return list(suite.gold_cases(path))


def test_gold_findings_quote_each_categorys_first_span_with_its_offsets(tmp_path):
    row = {
        "Filename": "a.pdf",
        "Parties": repr(["Acme", "Acme Corporation"]),
        "Governing Law": repr([GOVERNING_LAW, "Delaware courts decide every dispute."]),
        "Insurance": repr([INSURANCE]),
    }
    path = cuad_csv(tmp_path, [row])
    (case,) = _cases(path)
    assert isinstance(case, GoldCase) and case.id == "a.pdf"
    (item,) = load_dataset(path, task="contract_review")
    assert case.document == item.document  # the document the eval scores
    findings = case.answer.findings
    assert [f.category for f in findings] == ["parties", "governing_law", "insurance"]
    for f in findings:
        assert case.document[f.start : f.end] == f.quote
        assert f.risk == "medium" and f.rationale == CATEGORIES[f.category]
    # "Acme" alone cannot establish a party; the first span that can is quoted.
    assert findings[0].quote == "Acme Corporation"
    assert findings[1].quote == GOVERNING_LAW


def test_a_clause_over_300_characters_is_quoted_by_its_first_words(tmp_path):
    (case,) = _cases(cuad_csv(tmp_path, [{"Filename": "a.pdf", "Insurance": repr([INSURANCE])}]))
    (finding,) = case.answer.findings
    assert len(finding.quote) <= 300 and INSURANCE.startswith(finding.quote)
    assert INSURANCE[len(finding.quote)] == " "  # cut at a word boundary


def test_a_contract_without_spans_is_skipped(tmp_path):
    (case,) = _cases(cuad_csv(tmp_path, [{"Filename": "empty.pdf"}]))
    assert isinstance(case, Skipped) and case.id == "empty.pdf"


def test_a_contract_over_the_findings_limit_keeps_the_first_in_taxonomy_order(tmp_path):
    columns = ["Governing Law", "Parties", "Document Name", "Agreement Date", "Effective Date",
               "Expiration Date", "Renewal Term", "Notice Period To Terminate Renewal",
               "Audit Rights", "Insurance", "Warranty Duration", "Cap On Liability",
               "Liquidated Damages", "Third Party Beneficiary"]  # fmt: skip
    row = {"Filename": "long.pdf"} | {c: repr([f"Clause {i} of this long contract."])
                                      for i, c in enumerate(columns)}  # fmt: skip
    path = cuad_csv(tmp_path, [row])
    (short,) = _cases(path)
    assert [f.category for f in short.answer.findings] == list(CATEGORIES)[:8]
    assert short.dropped == ("audit_rights", "cap_on_liability", "liquidated_damages",
                             "warranty_duration", "insurance",
                             "third_party_beneficiary")  # fmt: skip
    (full,) = _cases(path, FULL_SUITE)
    assert isinstance(full.answer, FullContractReview) and len(full.answer.findings) == 12
    found = {f.category for f in full.answer.findings}
    assert set(full.answer.absent) == set(CATEGORIES) - found


def test_mutants_are_one_per_class_and_the_same_for_a_seed(tmp_path):
    (case,) = _cases(cuad_csv(tmp_path, [CUED]))
    first = contract_mutants(case, random.Random("0:cued.pdf"))
    again = contract_mutants(case, random.Random("0:cued.pdf"))
    assert [m.kind for m in first] == list(CLASSES)
    assert [(m.what, m.answer) for m in first] == [(m.what, m.answer) for m in again]
    assert all(isinstance(m.answer, ContractReview) for m in first)


def test_mutants_of_a_full_review_keep_absent_consistent_with_findings(tmp_path):
    (case,) = _cases(cuad_csv(tmp_path, [CUED]), FULL_SUITE)
    for mutant in contract_mutants(case, random.Random(1)):
        answer = mutant.answer
        assert isinstance(answer, FullContractReview)
        found = {f.category for f in answer.findings}
        assert set(answer.absent) == set(CATEGORIES) - found, mutant.what


def test_evaluate_verifiers_passes_the_gold_and_catches_every_mutation(tmp_path):
    path = cuad_csv(tmp_path, [CUED, {"Filename": "empty.pdf"}])
    for task, suite in ((TASK, SUITE), (FULL_TASK, FULL_SUITE)):
        payload = evaluate_verifiers(task=task, suite=suite, dataset=path)
        assert payload["gold"]["passed"] == 1.0, payload["gold"]
        assert len(payload["skipped"]) == 1
        caught = {kind: tally["caught"] for kind, tally in payload["mutations"].items()}
        assert caught == dict.fromkeys(CLASSES, 1.0), payload["mutations"]
