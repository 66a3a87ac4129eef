"""The document cut into segments, each plain or inside one or more evidence spans, so the
template can wrap spans in ``<mark>`` without ever writing HTML from Python."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Segment:
    text: str
    spans: tuple[int, ...]
    """Indices (into the evidence span list) of the spans covering this text; empty: plain."""
    starts: tuple[int, ...]
    """The spans that begin with this segment: the scroll targets ``#span-<i>``."""


def segments(document: str, spans: Sequence[dict[str, Any]]) -> list[Segment]:
    """Cut at every located span's start and end. Overlapping spans split into pieces, each
    piece marked with every span covering it; spans that coincide stay one piece."""
    located = [
        (i, int(s["start"]), int(s["end"]))
        for i, s in enumerate(spans)
        if s.get("located") and 0 <= int(s["start"]) < int(s["end"]) <= len(document)
    ]
    cuts = sorted({0, len(document), *(a for _, a, _ in located), *(b for _, _, b in located)})
    out = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        covering = tuple(i for i, s, e in located if s <= a and b <= e)
        starting = tuple(i for i, s, _ in located if s == a)
        out.append(Segment(document[a:b], covering, starting))
    return out


def anchors(cut: Sequence[Segment]) -> dict[int, int]:
    """For each located span, the span whose ``#span-<i>`` mark it starts in: two quotes that
    begin at the same place share one mark, and the second's link must scroll to it too."""
    return {i: segment.starts[0] for segment in cut for i in segment.starts}
