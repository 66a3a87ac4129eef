"""Dataset loaders: our JSONL and the public formats, and every bad input named by file and
line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.evaluation.loaders import DatasetError, detect_format, load_dataset

CATEGORY_COLUMNS = [
    "Document Name", "Parties", "Agreement Date", "Effective Date", "Expiration Date",
    "Renewal Term", "Notice Period To Terminate Renewal", "Governing Law", "Most Favored Nation",
    "Competitive Restriction Exception", "Non-Compete", "Exclusivity", "No-Solicit Of Customers",
    "No-Solicit Of Employees", "Non-Disparagement", "Termination For Convenience",
    "Rofr/Rofo/Rofn", "Change Of Control", "Anti-Assignment", "Revenue/Profit Sharing",
    "Price Restrictions", "Minimum Commitment", "Volume Restriction", "Ip Ownership Assignment",
    "Joint Ip Ownership", "License Grant", "Non-Transferable License",
    "Affiliate License-Licensor", "Affiliate License-Licensee",
    "Unlimited/All-You-Can-Eat-License", "Irrevocable Or Perpetual License",
    "Source Code Escrow", "Post-Termination Services", "Audit Rights", "Uncapped Liability",
    "Cap On Liability", "Liquidated Damages", "Warranty Duration", "Insurance",
    "Covenant Not To Sue", "Third Party Beneficiary",
]  # fmt: skip


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(tmp_path: Path, *records: object, name: str = "data.jsonl") -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    return write(tmp_path, name, "\n".join(lines) + "\n")


def ours(i: int, **changes: object) -> dict:
    record = {"id": f"q{i}", "task": "math_answer", "document": "1 + 1?", "gold": {"answer": "2"}}
    return record | changes


def test_our_jsonl_loads_in_file_order_with_line_numbers(tmp_path):
    path = jsonl(tmp_path, ours(1), "", ours(2, gold={"answer": 7}))
    items = load_dataset(path, task="math_answer")
    assert [(i.id, i.line, i.gold) for i in items] == [
        ("q1", 1, {"answer": "2"}),
        ("q2", 3, {"answer": 7}),
    ]


def test_limit_takes_the_first_items(tmp_path):
    path = jsonl(tmp_path, *(ours(i) for i in range(5)))
    assert [i.id for i in load_dataset(path, task="math_answer", limit=2)] == ["q0", "q1"]


def test_a_line_that_does_not_parse_is_named(tmp_path):
    path = jsonl(tmp_path, ours(1), '{"id": "q2", "task": ')
    with pytest.raises(DatasetError, match=r"data\.jsonl:2: not valid JSON"):
        load_dataset(path, task="math_answer")


def test_a_missing_gold_field_is_named_with_its_line(tmp_path):
    record = ours(2)
    del record["gold"]
    path = jsonl(tmp_path, ours(1), record)
    with pytest.raises(DatasetError, match=r"data\.jsonl:2: record has no 'gold'"):
        load_dataset(path, task="math_answer")


def test_gold_of_the_wrong_shape_is_named(tmp_path):
    path = jsonl(tmp_path, ours(1, gold={"answer": "eighteen"}))
    with pytest.raises(DatasetError, match=r":1: 'gold' answer 'eighteen' is not a number"):
        load_dataset(path, task="math_answer")


def test_medication_gold_must_be_a_list_of_names(tmp_path):
    record = ours(1, task="medrec_extraction", gold={"medications": "metoprolol"})
    path = jsonl(tmp_path, record)
    with pytest.raises(DatasetError, match=r':1: \'gold\' must be an object \{"medications"'):
        load_dataset(path, task="medrec_extraction")


def test_contract_gold_must_use_the_taxonomy(tmp_path):
    record = ours(1, task="contract_review", gold={"categories": ["confidentiality"]})
    path = jsonl(tmp_path, record)
    with pytest.raises(DatasetError, match="outside the taxonomy"):
        load_dataset(path, task="contract_review")


def test_a_record_for_another_task_is_a_mismatch(tmp_path):
    path = jsonl(tmp_path, ours(1), ours(2, task="contract_review"))
    with pytest.raises(DatasetError, match=r":2: record is for task 'contract_review'"):
        load_dataset(path, task="math_answer")


def test_an_empty_dataset_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="holds no"):
        load_dataset(write(tmp_path, "empty.jsonl", "\n"), task="math_answer")


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        load_dataset(tmp_path / "nope.jsonl", task="math_answer")


def test_gsm8k_gold_is_the_number_after_the_marks(tmp_path):
    path = jsonl(tmp_path, {"question": "Q?", "answer": "2 * 3 = 6\n#### 1,200"}, name="g.jsonl")
    assert detect_format(path) == "gsm8k"
    (item,) = load_dataset(path, task="math_answer")
    assert (item.id, item.document, item.gold) == ("gsm8k-1", "Q?", {"answer": "1200"})


def test_gsm8k_answer_without_a_final_number_is_named(tmp_path):
    path = jsonl(tmp_path, {"question": "Q?", "answer": "six"}, name="g.jsonl")
    with pytest.raises(DatasetError, match=r"g\.jsonl:1: the answer has no final number"):
        load_dataset(path, task="math_answer")


def encounter(i: int, orders: list[dict] | None = None) -> dict:
    return {
        "id": f"enc{i}",
        "transcript": [
            {"turn_id": 1, "speaker": "DOCTOR", "transcript": "start lasix 40 mg a day ."},
            {"turn_id": 2, "speaker": "PATIENT", "transcript": "okay ."},
        ],
        "expected_orders": orders
        if orders is not None
        else [
            {"order_type": "medication", "description": "lasix 40 mg a day"},
            {"order_type": "lab", "description": "hemoglobin a1c"},
        ],
    }


def test_simord_gold_is_the_medication_orders(tmp_path):
    path = write(tmp_path, "simord.json", json.dumps([encounter(1), encounter(2, [])], indent=1))
    items = load_dataset(path, task="medrec_extraction")
    assert [i.gold for i in items] == [{"medications": ["lasix 40 mg a day"]}, {"medications": []}]
    assert items[0].document == "DOCTOR: start lasix 40 mg a day .\nPATIENT: okay ."
    assert items[1].line > items[0].line > 1


def test_simord_encounter_without_orders_is_named_with_its_line(tmp_path):
    broken = encounter(2)
    del broken["expected_orders"]
    path = write(tmp_path, "simord.json", json.dumps([encounter(1), broken], indent=1))
    line = json.dumps([encounter(1), broken], indent=1).splitlines().index(" {", 2) + 1
    with pytest.raises(DatasetError, match=rf"simord\.json:{line}: encounter 'enc2' has no"):
        load_dataset(path, task="medrec_extraction")


def test_a_json_file_that_is_not_simord_is_a_format_mismatch(tmp_path):
    path = write(tmp_path, "other.json", '{"rows": []}')
    with pytest.raises(DatasetError, match=r"other\.json:1: not a SIMORD file"):
        load_dataset(path, task="medrec_extraction")


def test_a_public_format_for_another_task_is_a_mismatch(tmp_path):
    path = write(tmp_path, "simord.json", json.dumps([encounter(1)]))
    with pytest.raises(DatasetError, match="a simord file has gold for medrec_extraction"):
        load_dataset(path, task="contract_review")


def cuad_csv(tmp_path: Path, rows: list[dict[str, str]], columns=CATEGORY_COLUMNS) -> Path:
    import csv

    path = tmp_path / "master.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        fields = ["Filename"] + [f for c in columns for f in (c, f"{c}-Answer")]
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({f: row.get(f, "[]") for f in fields})
    return path


def test_cuad_document_is_built_from_spans_and_gold_is_the_categories_present(tmp_path):
    row = {
        "Filename": "a.pdf",
        "Governing Law": "['This Agreement is governed by the laws of Nevada.']",
        "Cap On Liability": '["Company\'s liability shall not exceed the fees."]',
        "Expiration Date": "['This Agreement is governed by the laws of Nevada.']",
    }
    (item,) = load_dataset(cuad_csv(tmp_path, [row]), task="contract_review")
    assert item.id == "a.pdf" and item.line == 2
    assert item.document == (
        "This Agreement is governed by the laws of Nevada.\n\n"
        "Company's liability shall not exceed the fees."
    )
    assert item.gold == {"categories": ["cap_on_liability", "expiration_date", "governing_law"]}


def test_cuad_spans_past_the_size_limit_are_left_out_with_their_category(tmp_path):
    row = {"Filename": "a.pdf", "Parties": "['Acme Inc.']", "Insurance": f"['{'x' * 500}']"}
    (item,) = load_dataset(cuad_csv(tmp_path, [row]), task="contract_review", cuad_chars=200)
    assert item.document == "Acme Inc." and item.gold == {"categories": ["parties"]}


def test_a_csv_without_the_cuad_columns_is_a_format_mismatch(tmp_path):
    path = cuad_csv(tmp_path, [{"Filename": "a.pdf"}], columns=["Parties"])
    with pytest.raises(DatasetError, match=r"master\.csv:1: not a CUAD master clauses file"):
        load_dataset(path, task="contract_review")


def test_a_cuad_cell_that_is_not_a_list_is_named_with_its_line(tmp_path):
    path = cuad_csv(tmp_path, [{"Filename": "a.pdf"}, {"Filename": "b.pdf", "Parties": "[oops"}])
    with pytest.raises(DatasetError, match=r"master\.csv:3: column 'Parties' is not a list"):
        load_dataset(path, task="contract_review")


def test_an_unknown_extension_asks_for_the_format(tmp_path):
    with pytest.raises(DatasetError, match="pass --format"):
        load_dataset(write(tmp_path, "data.txt", "x"), task="math_answer")


def test_a_forced_format_that_does_not_fit_the_file_is_named(tmp_path):
    path = jsonl(tmp_path, ours(1))
    with pytest.raises(DatasetError, match=r"data\.jsonl:1: not a SIMORD file"):
        load_dataset(path, task="medrec_extraction", fmt="simord")
