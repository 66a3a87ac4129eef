"""Strategies with ``early_stop``, against a scripted engine that stops some samples: the
setting reaches the engine, stopped samples are recorded but never selected and never vote,
and every token they spent is charged."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ponder.engines.base import GenerationRequest, Sample
from ponder.engines.confidence import EARLY_STOP_REASON, EarlyStop, StopRecord
from ponder.strategies import STRATEGIES
from tests.ponder.strategies.medrec import (
    BROKEN,
    DOC,
    GOOD,
    LISINOPRIL,
    METOPROLOL,
    TASK,
    answer,
)
from tests.ponder.strategies.scripted import MemoryRecorder, ScriptedEngine, by_step, make_context

EARLY_STOP = {"window": 4, "warmup": 1, "percentile": 90, "top_k": 3}
OTHER = answer(METOPROLOL, LISINOPRIL)


def finished(index: int, text: str, tokens: int = 10, logprob: float = -0.5) -> Sample:
    return Sample(index, text, tokens, "stop", token_logprobs=[logprob] * tokens)


def stopped(index: int, text: str, tokens: int, logprob: float = -0.01) -> Sample:
    """A sample the engine stopped: its text so far may even parse, and its token logprobs
    may look better than any finished one's; neither may make it count."""
    return Sample(
        index,
        text,
        tokens,
        EARLY_STOP_REASON,
        token_logprobs=[logprob] * tokens,
        stopped=StopRecord(tokens=tokens, window_confidence=0.8, threshold=1.25),
    )


def run(name, respond, *, n, params=None):
    engine = ScriptedEngine(respond=respond)
    recorder = MemoryRecorder()
    ctx = make_context(TASK, DOC, engine, name=name, n=n, params=params, recorder=recorder)
    return STRATEGIES[name].run(ctx), engine, recorder


def test_best_of_n_sends_the_early_stop_setting_in_its_one_request():
    _, engine, _ = run(
        "best_of_n", lambda r: [finished(i, GOOD) for i in range(r.n)], n=4,
        params={"early_stop": EARLY_STOP},
    )  # fmt: skip
    assert len(engine.requests) == 1
    assert engine.requests[0].early_stop == EarlyStop(window=4, warmup=1, percentile=90, top_k=3)


def test_best_of_n_without_early_stop_sends_none():
    _, engine, _ = run("best_of_n", lambda r: [finished(i, GOOD) for i in range(r.n)], n=2)
    assert engine.requests[0].early_stop is None


def test_a_stopped_sample_is_recorded_but_never_selected():
    # Every finished sample fails; the stopped one holds a valid answer and the best logprob.
    def respond(request: GenerationRequest) -> list[Sample]:
        return [finished(0, BROKEN), finished(1, BROKEN), stopped(2, GOOD, tokens=7)]

    outcome, _, recorder = run("best_of_n", respond, n=3, params={"early_stop": EARLY_STOP})
    assert outcome.selected is not None and outcome.selected.idx in (0, 1)
    assert outcome.status == "needs_review"
    kept = recorder.steps["sample"]
    assert [c.finish_reason for c in kept] == ["stop", "stop", EARLY_STOP_REASON]
    assert kept[2].text == GOOD and kept[2].completion_tokens == 7
    assert kept[2].parsed is None and not kept[2].passed_required
    assert outcome.rationale["stopped_early"] == ["sample/2"]
    assert all(c["idx"] != 2 for c in outcome.rationale["ranking"])


def test_a_stopped_sample_has_a_failed_verdict_from_every_verifier_saying_why():
    def respond(request: GenerationRequest) -> list[Sample]:
        return [finished(0, GOOD), stopped(1, GOOD, tokens=3)]

    _, _, recorder = run("best_of_n", respond, n=2, params={"early_stop": EARLY_STOP})
    verdicts = recorder.steps["sample"][1].verdicts
    assert [v.verifier for v in verdicts] == ["schema", *(v.name for v in TASK.verifiers)]
    assert all(not v.passed and "stopped early" in v.findings[0] for v in verdicts)


def test_every_token_a_stopped_sample_spent_is_charged():
    def respond(request: GenerationRequest) -> list[Sample]:
        return [finished(0, GOOD, tokens=10), stopped(1, BROKEN, 4), stopped(2, BROKEN, 6)]

    _, engine, recorder = run("best_of_n", respond, n=3, params={"early_stop": EARLY_STOP})
    assert recorder.charged[0][1] == 10 + 4 + 6
    assert engine.results[0].completion_tokens == 20


def test_the_trace_says_when_and_why_each_sample_stopped():
    def respond(request: GenerationRequest) -> list[Sample]:
        return [finished(0, GOOD), stopped(1, BROKEN, tokens=5)]

    _, _, recorder = run("best_of_n", respond, n=2, params={"early_stop": EARLY_STOP})
    (event,) = recorder.of_kind("early_stop")
    assert event == {
        "step": "sample",
        "threshold": 1.25,
        "finished": 1,
        "stopped": [{"idx": 1, "tokens": 5, "window_confidence": 0.8, "threshold": 1.25}],
        "stopped_tokens": 5,
    }
    (samples,) = recorder.of_kind("samples")
    assert samples["candidates"][1]["stopped"] == EARLY_STOP_REASON


def test_stopped_samples_do_not_vote_in_self_consistency():
    # Three stopped samples hold OTHER (they would outvote GOOD); two finished hold GOOD.
    def respond(request: GenerationRequest) -> list[Sample]:
        return [
            finished(0, GOOD), stopped(1, OTHER, 5), stopped(2, OTHER, 5),
            stopped(3, OTHER, 5), finished(4, GOOD),
        ]  # fmt: skip

    outcome, engine, recorder = run(
        "self_consistency", respond, n=5, params={"early_stop": EARLY_STOP}
    )
    assert engine.requests[0].early_stop is not None
    (vote,) = recorder.of_kind("vote")
    assert vote["voters"] == 2
    assert not any("Lisinopril" in item["key"] for item in vote["items"])  # only OTHER has it
    assert outcome.selected is not None and not outcome.selected.stopped


def test_adaptive_gives_its_early_stop_to_the_rungs_that_sample():
    respond = by_step({"initial": [BROKEN], "sample": [GOOD]})
    outcome, engine, recorder = run(
        "adaptive", respond, n=3,
        params={"early_stop": {**EARLY_STOP, "warmup": 2}, "ladder": ["best_of_n"]},
    )  # fmt: skip
    by_id = {r.request_id.split(":", 1)[1]: r for r in engine.requests}
    # The first try draws 2 samples: all warm-up, so nothing to stop there, and the trace says so.
    assert by_id["initial"].early_stop is None
    (off,) = recorder.of_kind("early_stop_off")
    assert off["step"] == "initial" and off["warmup"] == 2
    assert by_id["esc1/sample"].early_stop == EarlyStop(window=4, warmup=2, percentile=90, top_k=3)
    assert outcome.selected is not None


def test_adaptive_confidence_ignores_stopped_samples():
    from ponder.strategies.adaptive import measure_confidence

    def respond(request: GenerationRequest) -> list[Sample]:
        return [finished(0, GOOD), finished(1, GOOD), stopped(2, BROKEN, 3)]

    _, _, recorder = run("best_of_n", respond, n=3, params={"early_stop": EARLY_STOP})
    confidence = measure_confidence(TASK, recorder.steps["sample"])
    assert confidence.agreement == 1.0  # two finished agree; the stopped one is not counted


@pytest.mark.parametrize("strategy", ["best_of_n", "self_consistency", "adaptive"])
@pytest.mark.parametrize(
    ("early_stop", "field"),
    [
        ({"window": 0}, "window"),
        ({"window": 1025}, "window"),
        ({"warmup": 0}, "warmup"),
        ({"warmup": 16}, "warmup"),
        ({"percentile": -0.1}, "percentile"),
        ({"percentile": 100.1}, "percentile"),
        ({"top_k": 0}, "top_k"),
        ({"top_k": 21}, "top_k"),
        ({"threshold": 2.0}, "threshold"),
    ],
)
def test_early_stop_out_of_range_is_refused_by_the_strategy_params(strategy, early_stop, field):
    with pytest.raises(ValidationError) as caught:
        STRATEGIES[strategy].validate_params({"early_stop": early_stop})
    assert caught.value.errors()[0]["loc"] == ("early_stop", field)
