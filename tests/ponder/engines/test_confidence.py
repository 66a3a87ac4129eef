"""Token confidence, sliding windows, the warm-up threshold and the stop decisions, on numbers
worked out by hand."""

from __future__ import annotations

import math

import pytest

from ponder.engines.confidence import (
    EarlyStop,
    EarlyStopTracker,
    SlidingWindow,
    StopRecord,
    lowest_window_confidence,
    percentile,
    token_confidence,
    window_confidences,
)


def test_token_confidence_is_the_negative_mean_of_the_top_k_logprobs():
    # Top 3 of the four: -0.1, -2.0, -3.0 -> -(-5.1) / 3.
    assert token_confidence([-2.0, -0.1, -5.0, -3.0], k=3) == pytest.approx(1.7)


def test_a_peaked_position_is_more_confident_than_a_flat_one():
    peaked = token_confidence([-0.01, -6.0, -7.0], k=3)
    flat = token_confidence([-1.0, -1.1, -1.2], k=3)
    assert peaked is not None and flat is not None and peaked > flat


def test_token_confidence_ignores_infinite_logprobs_and_has_none_without_any():
    assert token_confidence([-0.5, -math.inf], k=5) == pytest.approx(0.5)
    assert token_confidence([], k=5) is None


def test_window_confidences_are_the_means_of_each_run_of_window_tokens():
    assert window_confidences([1.0, 2.0, 3.0, 4.0], 2) == [1.5, 2.5, 3.5]
    assert window_confidences([1.0, 2.0, 3.0, 4.0], 4) == [2.5]


def test_a_sample_shorter_than_the_window_is_one_group():
    assert window_confidences([1.0, 2.0, 3.0, 4.0], 10) == [2.5]
    assert window_confidences([], 3) == []
    assert lowest_window_confidence([], 3) is None


def test_lowest_window_confidence_finds_the_dip():
    # Windows of 2: (3+1)/2=2, (1+1)/2=1, (1+5)/2=3.
    assert lowest_window_confidence([3.0, 1.0, 1.0, 5.0], 2) == 1.0


def test_percentile_interpolates_between_ranks():
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 50) == pytest.approx(2.5)  # rank 1.5 between 2 and 3
    assert percentile(values, 10) == pytest.approx(1.3)  # rank 0.3 between 1 and 2
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile([5.0], 37) == 5.0


def test_sliding_window_tracks_the_lowest_full_window_as_tokens_arrive():
    window = SlidingWindow(2)
    window.push(3.0)
    assert window.lowest_full is None and window.lowest == 3.0  # shorter than the window
    window.push(1.0)
    assert window.lowest_full == 2.0
    window.push(1.0)
    assert window.lowest_full == 1.0
    window.push(5.0)
    assert window.lowest_full == 1.0  # a lowest value never rises again
    assert window.lowest == lowest_window_confidence([3.0, 1.0, 1.0, 5.0], 2)


def feed(tracker: EarlyStopTracker, index: int, confidences: list[float]) -> None:
    """Tokens whose only alternative has logprob -c: with top_k 1 each has confidence c."""
    tracker.observe(index, ([-c] for c in confidences))


def test_no_sample_is_stopped_before_the_warm_up_sets_the_threshold():
    tracker = EarlyStopTracker(EarlyStop(window=2, warmup=1, percentile=100, top_k=1), n=3)
    feed(tracker, 1, [0.5, 0.5])
    assert tracker.threshold is None and tracker.to_stop() == []


def test_the_warm_up_sets_the_threshold_and_a_sample_below_it_is_stopped():
    tracker = EarlyStopTracker(EarlyStop(window=2, warmup=1, percentile=100, top_k=1), n=3)
    feed(tracker, 0, [1.0, 1.0])  # lowest window 1.0
    feed(tracker, 1, [0.5, 0.5])  # lowest window 0.5: below
    feed(tracker, 2, [2.0, 2.0])  # lowest window 2.0: above
    tracker.finish(0)
    assert tracker.threshold == 1.0
    assert tracker.to_stop() == [1]
    assert tracker.stop(1, tokens=2) == StopRecord(tokens=2, window_confidence=0.5, threshold=1.0)
    assert tracker.to_stop() == []  # stopped once


def test_a_sample_that_has_not_filled_a_window_is_not_judged():
    tracker = EarlyStopTracker(EarlyStop(window=2, warmup=1, percentile=100, top_k=1), n=2)
    feed(tracker, 0, [1.0, 1.0])
    tracker.finish(0)
    feed(tracker, 1, [0.1])
    assert tracker.to_stop() == []
    feed(tracker, 1, [0.1])
    assert tracker.to_stop() == [1]


def test_the_threshold_is_the_percentile_of_the_warm_up_samples_lowest_windows():
    tracker = EarlyStopTracker(EarlyStop(window=2, warmup=2, percentile=50, top_k=1), n=4)
    feed(tracker, 0, [1.0, 1.0, 4.0])  # lowest window 1.0
    feed(tracker, 1, [3.0, 3.0])  # lowest window 3.0
    tracker.finish(0)
    assert tracker.threshold is None  # one of two warm-up samples
    tracker.finish(1)
    assert tracker.threshold == 2.0
    feed(tracker, 2, [1.9, 1.9])
    feed(tracker, 3, [2.1, 2.1])
    assert tracker.to_stop() == [2]


def test_a_sample_finishing_after_the_warm_up_does_not_move_the_threshold():
    tracker = EarlyStopTracker(EarlyStop(window=1, warmup=1, percentile=100, top_k=1), n=3)
    feed(tracker, 0, [1.0])
    tracker.finish(0)
    feed(tracker, 1, [9.0])
    tracker.finish(1)
    assert tracker.threshold == 1.0 and tracker.finished == [0, 1]


def test_early_stop_needs_more_samples_than_its_warm_up():
    with pytest.raises(ValueError, match="warmup"):
        EarlyStopTracker(EarlyStop(warmup=2), n=2)


@pytest.mark.parametrize(
    "fields",
    [{"window": 0}, {"warmup": 0}, {"percentile": -1}, {"percentile": 100.5}, {"top_k": 0}],
)
def test_an_impossible_early_stop_is_refused_at_construction(fields):
    with pytest.raises(ValueError, match="early_stop"):
        EarlyStop(**fields)
