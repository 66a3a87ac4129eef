"""``ponder eval`` refuses bad arguments and bad datasets before anything starts."""

from __future__ import annotations

from typer.testing import CliRunner

from ponder.cli.commands import app


def run(*args: str):
    return CliRunner().invoke(app, ["eval", *args])


def test_a_dataset_line_that_does_not_parse_is_named_and_nothing_runs(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "1", "task": "math_answer", "document": "x", "gold": {"answer": "1"}}\n'
                    "not json\n")  # fmt: skip
    result = run("--task", "math_answer", "--dataset", str(path))
    assert result.exit_code == 2
    assert f"error: {path}:2: not valid JSON" in result.output


def test_an_unknown_strategy_is_refused(tmp_path):
    result = run("--task", "math_answer", "--strategies", "single,best_of_x:3")
    assert result.exit_code == 2 and "unknown strategy 'best_of_x'" in result.output


def test_a_task_without_a_scorer_is_refused():
    result = run("--task", "poetry")
    assert result.exit_code == 2 and "no scorer for task 'poetry'" in result.output


def test_a_dataset_for_another_task_is_refused(tmp_path):
    path = tmp_path / "g.jsonl"
    path.write_text('{"question": "1 + 1?", "answer": "#### 2"}\n')
    result = run("--task", "contract_review", "--dataset", str(path))
    assert result.exit_code == 2 and "a gsm8k file has gold for math_answer" in result.output
