"""Verifier evaluation by mutation: what counts as caught, and ``ponder eval verifiers``'s
table, JSON and refusals."""

import json
import random
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel
from typer.testing import CliRunner

from ponder.cli.commands import app
from ponder.evaluation.mutation import (
    GoldCase,
    Mutant,
    MutationSuite,
    Skipped,
    evaluate_verifiers,
)
from ponder.tasktypes import TaskType
from ponder.verify import CheckResult, VerifierSpec
from tests.tasks.medrec_extraction.test_gold import ENCOUNTERS


class Words(BaseModel):
    words: list[str]


def every_word_in_document(output: Words, document: str) -> CheckResult:
    missing = [w for w in output.words if w not in document.split()]
    return CheckResult(not missing, 1.0, [f"'{w}' is not in the document" for w in missing])


TASK = TaskType(
    name="words", description="", output_model=Words, template="prompts/math_answer/solve.j2",
    system_prompt="", verifiers=(VerifierSpec("grounded", every_word_in_document, ""),),
)  # fmt: skip


def cases(path: Path) -> Iterator[GoldCase | Skipped]:
    yield GoldCase("clean", "a b c", Words(words=["a", "b"]))
    yield GoldCase("dirty", "a b c", Words(words=["a", "zz"]))  # the gold already fails
    yield Skipped("odd", "cannot be expressed")


def add_word(case: GoldCase, rng: random.Random) -> list[Mutant]:
    assert isinstance(case.answer, Words)
    return [
        Mutant("invented", Words(words=[*case.answer.words, "qq"]), "added qq"),
        Mutant("reordered", Words(words=case.answer.words[::-1]), "reordered"),
    ]


SUITE = MutationSuite("words", "test", ("invented", "reordered"), cases, add_word)


def test_a_mutant_counts_as_caught_only_for_a_finding_its_gold_did_not_have(tmp_path):
    payload = evaluate_verifiers(task=TASK, suite=SUITE, dataset=tmp_path)
    assert payload["gold"]["passed"] == 0.5 and payload["gold"]["count"] == 2
    assert payload["gold"]["failed_by_verifier"] == {"grounded": 1}
    assert payload["skipped"] == {"cannot be expressed": 1}
    invented, reordered = payload["mutations"]["invented"], payload["mutations"]["reordered"]
    assert (invented["caught"], invented["count"]) == (1.0, 2)
    # The dirty gold's reordered copy fails exactly as its gold did: not caught.
    assert (reordered["caught"], reordered["count"]) == (0.0, 2)
    assert {m["id"] for m in reordered["missed_examples"]} == {"clean", "dirty"}


def run(*args: str):
    return CliRunner().invoke(app, ["eval", "verifiers", *args])


def test_eval_verifiers_prints_the_table_and_writes_the_json(tmp_path):
    dataset, out = tmp_path / "train.json", tmp_path / "out.json"
    dataset.write_text(json.dumps(ENCOUNTERS))
    result = run("--task", "medrec_extraction", "--dataset", str(dataset), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "gold" in result.output and "omit_item" in result.output
    payload = json.loads(out.read_text())
    assert payload["task"] == "medrec_extraction"
    assert payload["gold"]["passed"] == 1.0
    assert set(payload["mutations"]) >= {"omit_item", "wrong_dose", "wrong_frequency"}
    assert all(
        {"caught", "count", "missed_examples"} <= set(m) for m in payload["mutations"].values()
    )


def test_eval_verifiers_refuses_an_unknown_task():
    result = run("--task", "poetry")
    assert result.exit_code == 2 and "no gold builder for task 'poetry'" in result.output


def test_eval_verifiers_refuses_a_missing_dataset(tmp_path):
    result = run("--task", "medrec_extraction", "--dataset", str(tmp_path / "none.json"))
    assert result.exit_code == 2 and "no such file" in result.output


def test_eval_verifiers_names_a_dataset_of_the_wrong_format(tmp_path):
    dataset = tmp_path / "train.json"
    dataset.write_text('[{"id": 1}]')
    result = run("--task", "medrec_extraction", "--dataset", str(dataset))
    assert result.exit_code == 2 and f"{dataset}" in result.output
