"""Evidence spans cut into segments for the review page: two quotes that begin at the same
place share one mark, and each finding's link scrolls to the mark its quote begins in."""

from __future__ import annotations

from api.review_web.highlight import anchors, segments

DOC = "metoprolol 50 mg by mouth twice daily; aspirin 81 mg daily"


def span(start: int, end: int) -> dict[str, object]:
    return {"located": True, "start": start, "end": end}


def test_quotes_that_begin_together_share_the_first_ones_anchor():
    spans = [span(0, 16), span(0, 37), span(39, 58)]  # 0 and 1 begin at "metoprolol"
    cut = segments(DOC, spans)
    assert [s.starts for s in cut if s.starts] == [(0, 1), (2,)]
    assert anchors(cut) == {0: 0, 1: 0, 2: 2}
    first = next(s for s in cut if s.starts)
    assert set(first.spans) == {0, 1}  # the shared mark is marked with both spans


def test_a_quote_not_located_has_no_anchor():
    spans = [span(0, 16), {"located": False, "start": 0, "end": 0}]
    assert anchors(segments(DOC, spans)) == {0: 0}
