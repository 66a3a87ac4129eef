"""The per-strategy figures: every item counts, failures included, and the table and JSON
carry the same numbers."""

import json

import pytest

from ponder.evaluation.harness import ItemRun, StrategyRun, StrategySpec, parse_strategies
from ponder.evaluation.loaders import EvalItem
from ponder.evaluation.report import format_table, percentile, plot, summarise, write_json


def item(i: int, answer: str = "18") -> EvalItem:
    return EvalItem(f"q{i}", "problem", {"answer": answer}, i)


def strategy_run() -> StrategyRun:
    runs = [
        ItemRun(item(1), "succeeded", "j1", {"answer": "18"}, 100, 50, 0.001, 2.0),
        ItemRun(item(2), "succeeded", "j2", {"answer": "5"}, 100, 50, 0.001, 4.0),
        ItemRun(item(3), "needs_review", "j3", {"answer": "18"}, 100, 50, 0.001, 6.0),
        ItemRun(item(4), "failed", "j4", None, 100, 0, 0.001, 1.0, "engine refused"),
        ItemRun(item(5), "refused", None, None, error="document too long"),
    ]
    return StrategyRun(StrategySpec("best_of_n:8", "best_of_n", 8), runs, 12.0)


def test_every_item_counts_and_failures_score_zero():
    figures = summarise("math_answer", strategy_run())
    assert figures["items"] == 5 and figures["failed_items"] == 2
    assert figures["score"] == pytest.approx(2 / 5)
    assert figures["verified_rate"] == pytest.approx(2 / 5)
    assert figures["precision_verified"] == pytest.approx(1 / 2)
    assert figures["correct"] == 2


def test_tokens_latency_and_cost_are_over_the_jobs_that_ran():
    figures = summarise("math_answer", strategy_run())
    assert figures["tokens_per_job"] == pytest.approx((150 * 3 + 100) / 4)
    assert figures["p50_s"] == pytest.approx(3.0)
    assert figures["p95_s"] == pytest.approx(5.7)
    assert figures["cost_per_job"] == pytest.approx(0.001)
    assert figures["cost_per_correct"] == pytest.approx(0.002)


def test_precision_is_undefined_when_nothing_was_verified():
    run = strategy_run()
    for r in run.runs:
        r.status = "needs_review"
    assert summarise("math_answer", run)["precision_verified"] is None


def test_percentile_interpolates_between_ranks():
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([], 0.5) is None


def payload() -> dict:
    return {
        "task": "math_answer", "dataset": "data.jsonl", "items": 5, "metric": "exact match",
        "right_rule": "right when exact",
        "prices": {"prompt": 0.05, "completion": 0.2, "currency": "USD"},
        "strategies": {"best_of_n:8": summarise("math_answer", strategy_run())},
    }  # fmt: skip


def test_the_table_has_a_row_per_strategy_with_its_figures():
    table = format_table(payload())
    row = next(line for line in table.splitlines() if line.startswith("best_of_n:8"))
    assert row.split() == [
        "best_of_n:8", "5", "2", "0.400", "0.400", "0.500", "138", "3.0", "5.7", "0.001000",
        "0.002000",
    ]  # fmt: skip


def test_json_keys_each_strategy_by_its_spec(tmp_path):
    path = tmp_path / "out.json"
    write_json(path, payload())
    figures = json.loads(path.read_text())["strategies"]["best_of_n:8"]
    for key in ("score", "verified_rate", "precision_verified", "tokens_per_job", "p50_s",
                "p95_s", "cost_per_correct", "items", "failed_items"):  # fmt: skip
        assert key in figures


def test_the_plot_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "plot.png"
    plot(path, payload())
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_strategy_specs_parse_name_and_n():
    specs = parse_strategies("single, best_of_n:8,self_consistency:8")
    assert [(s.text, s.name, s.n) for s in specs] == [
        ("single", "single", None),
        ("best_of_n:8", "best_of_n", 8),
        ("self_consistency:8", "self_consistency", 8),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [("best_of_x:8", "unknown strategy 'best_of_x'"), ("best_of_n:0", "positive whole number"),
     ("best_of_n:two", "positive whole number"), ("single:4", "always draws 1"),
     ("single,single", "listed twice"), (" , ", "no strategies")],
)  # fmt: skip
def test_bad_strategy_specs_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        parse_strategies(text)
