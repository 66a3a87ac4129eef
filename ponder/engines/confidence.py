"""Token confidence of samples in flight, and when to stop one early (DeepConf, Fu et al. 2025).

A token's confidence is the negative mean log-probability of the top-k alternatives at its
position: high when the model put its mass on one token, low when it hesitated. A sample's
confidence over a sliding window of its tokens dips where it loses its way. Once ``warmup``
samples of a request have finished, a percentile of their lowest window confidence is the
threshold; a running sample whose lowest window confidence falls below it is stopped.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

EARLY_STOP_REASON = "early_stop"
"""The finish reason of a stopped sample (fits the candidates table's 32 characters)."""


@dataclass(frozen=True)
class EarlyStop:
    """How one engine request stops its hopeless samples."""

    window: int = 32
    """Tokens per sliding window of a sample's confidence."""
    warmup: int = 2
    """Samples that must finish before the threshold is set; they are never stopped."""
    percentile: float = 10.0
    """Percentile (0-100) of the warm-up samples' lowest window confidence used as the
    threshold: higher stops more (100: below the most confident warm-up sample's lowest)."""
    top_k: int = 5
    """Alternatives per position whose log-probabilities make a token's confidence."""

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError("early_stop.window must be at least 1")
        if self.warmup < 1:
            raise ValueError("early_stop.warmup must be at least 1")
        if not 0.0 <= self.percentile <= 100.0:
            raise ValueError("early_stop.percentile must be between 0 and 100")
        if self.top_k < 1:
            raise ValueError("early_stop.top_k must be at least 1")


@dataclass(frozen=True)
class StopRecord:
    """Why and when a sample was stopped."""

    tokens: int
    """Tokens the sample had generated when it was stopped (all it ever generated)."""
    window_confidence: float
    """Its lowest window confidence at the stop."""
    threshold: float


def token_confidence(logprobs: Iterable[float], k: int) -> float | None:
    """Negative mean of the ``k`` highest finite log-probabilities at one position; None when
    the engine gave none."""
    top = heapq.nlargest(k, (lp for lp in logprobs if math.isfinite(lp)))
    if not top:
        return None
    return -sum(top) / len(top)


def window_confidences(confidences: Sequence[float], window: int) -> list[float]:
    """The mean of every run of ``window`` consecutive token confidences; a sample shorter than
    the window is one group of all its tokens (none for an empty sample)."""
    if not confidences:
        return []
    if len(confidences) <= window:
        return [sum(confidences) / len(confidences)]
    return [
        sum(confidences[start : start + window]) / window
        for start in range(len(confidences) - window + 1)
    ]


def lowest_window_confidence(confidences: Sequence[float], window: int) -> float | None:
    groups = window_confidences(confidences, window)
    return min(groups) if groups else None


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between ranks (numpy's
    default), so one value is its own every percentile."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = q / 100.0 * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class SlidingWindow:
    """A sample's window confidence as its tokens arrive: the current full window's mean and
    the lowest one seen; a sample shorter than the window has the mean of all its tokens."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._recent: deque[float] = deque(maxlen=size)
        self._total = 0.0
        self.lowest_full: float | None = None
        """Lowest mean of a full window so far; None until ``size`` tokens arrived."""

    def push(self, confidence: float) -> None:
        if len(self._recent) == self.size:
            self._total -= self._recent[0]
        self._recent.append(confidence)
        self._total += confidence
        if len(self._recent) == self.size:
            mean = self._total / self.size
            if self.lowest_full is None or mean < self.lowest_full:
                self.lowest_full = mean

    @property
    def lowest(self) -> float | None:
        """The sample's lowest window confidence as ``lowest_window_confidence`` defines it."""
        if self.lowest_full is not None:
            return self.lowest_full
        return self._total / len(self._recent) if self._recent else None


class EarlyStopTracker:
    """The confidence of one request's n samples and the stop decisions, fed as tokens arrive.

    The first ``warmup`` samples to finish set the threshold. From then on a running sample
    whose lowest full-window confidence is below it is to be stopped: had the threshold existed
    earlier it would have been stopped at that window, and a lowest value never rises again.
    """

    def __init__(self, config: EarlyStop, n: int) -> None:
        if n <= config.warmup:
            raise ValueError(
                f"early_stop.warmup ({config.warmup}) must be below the samples per request ({n})"
            )
        self.config = config
        self.windows = [SlidingWindow(config.window) for _ in range(n)]
        self.finished: list[int] = []
        """Indices that finished by themselves, in the order they finished."""
        self.stopped: dict[int, StopRecord] = {}
        self.threshold: float | None = None
        self.warmup_lowest: list[float] = []

    def observe(self, index: int, positions: Iterable[Iterable[float]]) -> None:
        """New tokens of sample ``index``: the log-probabilities of each one's alternatives."""
        window = self.windows[index]
        for logprobs in positions:
            confidence = token_confidence(logprobs, self.config.top_k)
            if confidence is not None:
                window.push(confidence)

    def finish(self, index: int) -> None:
        """Sample ``index`` finished by itself; the last warm-up one to finish sets the
        threshold."""
        if index in self.finished or index in self.stopped:
            return
        self.finished.append(index)
        if self.threshold is not None or len(self.finished) > self.config.warmup:
            return
        lowest = self.windows[index].lowest
        if lowest is not None:  # a sample with no scored token says nothing
            self.warmup_lowest.append(lowest)
        if len(self.finished) == self.config.warmup and self.warmup_lowest:
            self.threshold = percentile(self.warmup_lowest, self.config.percentile)

    def to_stop(self) -> list[int]:
        """Running samples that fell below the threshold (none before it is set)."""
        if self.threshold is None:
            return []
        done = set(self.finished) | set(self.stopped)
        return [
            i
            for i, window in enumerate(self.windows)
            if i not in done
            and window.lowest_full is not None
            and window.lowest_full < self.threshold
        ]

    def stop(self, index: int, *, tokens: int) -> StopRecord:
        """Record that sample ``index`` was stopped after generating ``tokens``."""
        window = self.windows[index]
        assert self.threshold is not None and window.lowest_full is not None  # from to_stop
        record = StopRecord(tokens, window.lowest_full, self.threshold)
        self.stopped[index] = record
        return record
