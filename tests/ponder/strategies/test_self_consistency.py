"""self_consistency: item votes, min_support, the verified consensus, and whole-answer votes."""

from __future__ import annotations

import dataclasses
import json

from tests.ponder.strategies.medrec import (
    ASPIRIN,
    DOC,
    GOOD,
    INVENTED,
    LISINOPRIL,
    METOPROLOL,
    TASK,
    answer,
    med,
)
from tests.ponder.strategies.scripted import (
    MemoryRecorder,
    ScriptedEngine,
    make_context,
    run_like_runner,
)

VOTES = [
    answer(METOPROLOL, LISINOPRIL),
    answer(METOPROLOL, LISINOPRIL, ASPIRIN),
    answer(METOPROLOL),
    answer(METOPROLOL, INVENTED),
]


def run(texts, *, n=None, params=None, task=TASK, recorder=None, engine=None):
    engine = engine or ScriptedEngine(texts)
    recorder = recorder or MemoryRecorder()
    ctx = make_context(
        task, DOC, engine, name="self_consistency", n=n or len(texts), params=params,
        recorder=recorder,
    )  # fmt: skip
    return run_like_runner(ctx), ctx, engine, recorder


def names(candidate) -> list[str]:
    return [m["name"] for m in json.loads(candidate.text)["medications"]]


def test_all_samples_are_drawn_in_one_engine_request():
    _, _, engine, _ = run(VOTES)
    assert [r.n for r in engine.requests] == [4]


def test_each_item_is_supported_by_the_number_of_samples_that_contain_it():
    _, _, _, recorder = run(VOTES)
    (vote,) = recorder.of_kind("vote")
    support = {item["key"]: item["support"] for item in vote["items"]}
    assert support == {
        "metoprolol | BID": 4,
        "lisinopril | daily": 2,
        "aspirin | daily": 1,
        "benjycillin | daily": 1,
    }
    assert vote["voters"] == 4 and vote["needed"] == 2


def test_items_below_min_support_are_dropped_from_the_consensus():
    outcome, _, _, recorder = run(VOTES, params={"min_support": 0.75})
    (vote,) = recorder.of_kind("vote")
    assert {i["key"]: i["kept"] for i in vote["items"]} == {
        "metoprolol | BID": True,
        "lisinopril | daily": False,
        "aspirin | daily": False,
        "benjycillin | daily": False,
    }
    assert all(i["why"] == "support" for i in vote["items"] if not i["kept"])
    assert outcome.selected is not None and names(outcome.selected) == ["Metoprolol"]


def test_a_sample_listing_an_item_twice_votes_for_it_once():
    twice = med("metoprolol", "50", "BID", "Metoprolol 50 mg by mouth twice daily")
    _, _, _, recorder = run([answer(METOPROLOL, twice), answer(LISINOPRIL)])
    (vote,) = recorder.of_kind("vote")
    assert {i["key"]: i["support"] for i in vote["items"]}["metoprolol | BID"] == 1


def test_the_consensus_is_verified_and_recorded_with_zero_tokens():
    outcome, ctx, engine, recorder = run(VOTES)
    (consensus,) = recorder.steps["consensus"]
    assert names(consensus) == ["Metoprolol", "Lisinopril"]
    assert {v.verifier for v in consensus.verdicts} == {"schema", *TASK.verifier_names()}
    assert consensus.passed_required and consensus.completion_tokens == 0
    assert outcome.status == "succeeded" and outcome.selected is consensus
    assert outcome.rationale["support"] == {"metoprolol | BID": 4, "lisinopril | daily": 2}
    reported = sum(r.prompt_tokens + r.completion_tokens for r in engine.results)
    assert ctx.budget.spent == reported  # the consensus cost nothing


def test_a_consensus_failing_a_required_check_loses_to_a_sample_that_passes():
    texts = [answer(METOPROLOL, INVENTED), answer(METOPROLOL, INVENTED), GOOD]
    outcome, _, _, recorder = run(texts)
    (consensus,) = recorder.steps["consensus"]
    assert not consensus.passed_required  # the invented drug had a majority
    assert outcome.status == "succeeded"
    assert outcome.selected is not None and outcome.selected.step == "sample"


def test_a_retry_reuses_the_recorded_consensus():
    recorder = MemoryRecorder()
    engine = ScriptedEngine(VOTES)
    run(VOTES, recorder=recorder, engine=engine)
    first = recorder.steps["consensus"][0]
    outcome, _, _, _ = run(VOTES, recorder=recorder, engine=engine)
    assert len(engine.requests) == 1
    assert outcome.selected is first


def test_without_an_items_field_the_normalised_majority_answer_wins():
    whole = dataclasses.replace(TASK, items_field=None, item_key=None)
    bid = answer(med("Metoprolol", "50", "BID", "Metoprolol 50 mg by mouth twice daily"))
    outcome, _, _, recorder = run([answer(LISINOPRIL), GOOD, bid], task=whole)
    (vote,) = recorder.of_kind("vote")
    assert vote["answers"][0] == {"key": "metoprolol | BID", "support": 2, "kept": True}
    assert outcome.selected is not None and outcome.selected.idx in (1, 2)
    assert "consensus" not in recorder.steps


def test_the_consensus_keeps_no_more_items_than_the_output_model_allows():
    drugs = [med(f"Drug{i}", "1", "daily", f"Drug{i} 1 mg daily") for i in range(11)]
    _, _, _, recorder = run([answer(*drugs[:10]), answer(*drugs[1:])], params={"min_support": 0})
    (vote,) = recorder.of_kind("vote")
    assert sum(i["kept"] for i in vote["items"]) == 10
    assert [i["why"] for i in vote["items"] if not i["kept"]] == ["limit"]
    assert len(names(recorder.steps["consensus"][0])) == 10
