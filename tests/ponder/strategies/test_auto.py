"""auto: the difficulty score from the signals, each band chosen for a document built to fall
in it, the route in the trace, the optional yes/no question, and the band table's checks."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from ponder.engines.base import GenerationRequest, Sample
from ponder.strategies import STRATEGIES
from ponder.strategies.auto import Params, difficulty_score, signal_names
from tests.ponder.strategies.medrec import GOOD, TASK
from tests.ponder.strategies.scripted import (
    MemoryRecorder,
    ScriptedEngine,
    make_context,
    run_like_runner,
)

DRUG_LINES = [
    "Metoprolol 50 mg by mouth twice daily.",
    "Lisinopril 10 mg daily.",
    "Aspirin 81 mg daily.",
    "Atorvastatin 40 mg nightly.",
    "Metformin 500 mg twice daily.",
    "Amlodipine 5 mg daily.",
    "Omeprazole 20 mg daily.",
    "Levothyroxine 50 mcg daily.",
    "Gabapentin 300 mg three times daily.",
]
TABLE: dict[str, Any] = {
    "bands": [
        {"max_score": 0.3, "strategy": "single"},
        {"max_score": 0.7, "strategy": "best_of_n", "n": 4},
        {"max_score": 1.0, "strategy": "adaptive"},
    ],
    # Only the medication count: a note with k distinct drugs scores k / 10.
    "weights": {"length": 0},
}


def note(drugs: int) -> str:
    return " ".join(DRUG_LINES[:drugs])


def run(document: str, table: dict | None = None, engine: ScriptedEngine | None = None):
    engine = engine or ScriptedEngine([GOOD])
    recorder = MemoryRecorder()
    ctx = make_context(
        TASK, document, engine, name="auto", n=2, params=table or TABLE, recorder=recorder
    )
    return run_like_runner(ctx), engine, recorder


@pytest.mark.parametrize(
    ("drugs", "band", "strategy", "n", "first_step"),
    [
        (1, 0, "single", 1, "single/sample"),
        (5, 1, "best_of_n", 4, "best_of_n/sample"),
        (9, 2, "adaptive", 2, "adaptive/initial"),
    ],
    ids=["easy-single", "medium-best_of_n", "hard-adaptive"],
)
def test_each_band_is_chosen_for_a_document_in_it_and_recorded(
    drugs, band, strategy, n, first_step
):
    outcome, engine, recorder = run(note(drugs))
    (route,) = recorder.of_kind("route")
    assert route["signals"]["medications"] == pytest.approx(drugs / 10)
    assert route["score"] == pytest.approx(drugs / 10)
    assert (route["band"], route["strategy"], route["n"]) == (band, strategy, n)
    assert route["max_score"] == TABLE["bands"][band]["max_score"]
    # The chosen configuration is what ran: its steps, under its own prefix, with its n.
    assert engine.requests[0].request_id == f"job-1:{first_step}"
    if strategy != "adaptive":  # adaptive's first try draws its own initial_n
        assert engine.requests[0].n == n
    assert outcome.status == "succeeded"
    assert outcome.rationale["route"] == {
        "band": band,
        "strategy": strategy,
        "n": n,
        "score": pytest.approx(drugs / 10),
    }


def test_the_route_records_every_signal_and_the_band_params():
    _, _, recorder = run(note(3), {**TABLE, "weights": {}})
    (route,) = recorder.of_kind("route")
    length = len(note(3)) / 4000
    assert route["signals"] == {"length": pytest.approx(length, abs=1e-4), "medications": 0.3}
    assert route["score"] == pytest.approx((length + 0.3) / 2, abs=1e-4)
    assert route["strategy"] == "single" and route["params"] == {}


def test_a_score_on_a_boundary_belongs_to_the_band_it_ends():
    table = Params.model_validate(TABLE)
    assert [table.band_for(s)[0] for s in (0.0, 0.3, 0.3001, 0.7, 0.71, 1.0)] == [
        0,
        0,
        1,
        1,
        2,
        2,
    ]


def test_the_score_is_the_weighted_mean_of_the_signals():
    signals = {"length": 0.2, "medications": 0.8}
    assert difficulty_score(signals, {}) == pytest.approx(0.5)
    assert difficulty_score(signals, {"medications": 3}) == pytest.approx((0.2 + 2.4) / 4)
    assert difficulty_score(signals, {"length": 0, "medications": 0}) == 0.0


def test_signals_are_clamped_to_the_unit_interval():
    signals = TASK.difficulty(note(9) * 3)  # 27 mentions of 9 drugs, 1000+ characters
    assert signals["medications"] == pytest.approx(0.9)
    assert all(0.0 <= v <= 1.0 for v in signals.values())
    assert signal_names(TASK) == {"length", "medications", "model"}


def _yes_no(p_yes: float):
    def respond(request: GenerationRequest):
        step = request.request_id.split(":", 1)[1]
        if step == "route":
            alternatives = {"yes": math.log(p_yes), "no": math.log(1 - p_yes)}
            return [Sample(0, "yes", 1, "stop", [math.log(p_yes)], [alternatives])]
        return [GOOD] * request.n

    return respond


def test_the_model_question_adds_its_p_yes_as_a_signal_and_is_charged():
    table = {**TABLE, "ask_model": True, "weights": {"length": 0, "medications": 0}}
    engine = ScriptedEngine(respond=_yes_no(0.9))
    _, engine, recorder = run(note(1), table, engine)
    question = engine.requests[0]
    assert question.request_id == "job-1:route"
    assert question.choice == ("yes", "no") and question.temperature == 0.0
    assert question.max_tokens == 2
    (route,) = recorder.of_kind("route")
    assert route["signals"]["model"] == pytest.approx(0.9)
    assert route["strategy"] == "adaptive"  # the model alone says hard: 0.9
    assert len(recorder.charged) == len(engine.requests)  # the question is paid for too


def test_without_the_model_question_the_router_calls_no_engine():
    _, engine, _ = run(note(1))
    assert [r.request_id for r in engine.requests] == ["job-1:single/sample"]


def test_a_band_with_params_runs_its_strategy_with_them():
    table = {
        "bands": [{"max_score": 1.0, "strategy": "refine", "params": {"max_rounds": 1}}],
    }
    _, engine, recorder = run(note(2), table)
    (route,) = recorder.of_kind("route")
    assert route["params"] == {"max_rounds": 1}
    assert engine.requests[0].request_id == "job-1:refine/round-1"


@pytest.mark.parametrize(
    ("bands", "reason"),
    [
        (
            [{"max_score": 0.7, "strategy": "single"}, {"max_score": 0.3, "strategy": "single"}],
            "bands[1] overlaps",
        ),
        (
            [{"max_score": 0.5, "strategy": "single"}, {"max_score": 0.5, "strategy": "single"}],
            "bands[1] overlaps",
        ),
        (
            [
                {"max_score": 0.5, "strategy": "single"},
                {"min_score": 0.6, "max_score": 1.0, "strategy": "single"},
            ],
            "bands[1] leaves a gap",
        ),
        ([{"max_score": 0.9, "strategy": "single"}], "end it at max_score = 1.0"),
        ([{"max_score": 1.0, "strategy": "guess"}], "unknown strategy 'guess'"),
        ([{"max_score": 1.0, "strategy": "auto"}], "cannot route to auto itself"),
        ([{"max_score": 1.0, "strategy": "single", "n": 3}], "draws exactly 1"),
        (
            [{"max_score": 1.0, "strategy": "refine", "params": {"rounds": 2}}],
            "invalid params for strategy refine",
        ),
        ([], "at least 1 item"),
    ],
    ids=[
        "decreasing",
        "zero-width",
        "gap",
        "short-of-1",
        "unknown-strategy",
        "itself",
        "n-on-single",
        "bad-params",
        "empty",
    ],
)
def test_a_bad_band_table_is_refused_with_the_reason(bands, reason):
    with pytest.raises(ValidationError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        STRATEGIES["auto"].validate_params({"bands": bands})


def test_a_table_freezes_each_band_with_its_strategy_defaults():
    table = STRATEGIES["auto"].validate_params(TABLE)
    assert table["bands"][2]["params"]["threshold"] == 0.8  # adaptive's default
    assert table["ask_model"] is False


def test_ponder_strategies_lists_auto_with_its_table_fields():
    from typer.testing import CliRunner

    from ponder.cli.commands import app

    result = CliRunner().invoke(app, ["strategies"])
    assert result.exit_code == 0
    line = next(i for i, text in enumerate(result.output.splitlines()) if text.startswith("auto "))
    parameters = result.output.splitlines()[line + 1]
    assert "bands=[Band(max_score=1.0, strategy='best_of_n')]" in parameters
    assert "ask_model=False" in parameters
