"""Locating a quote in a document: offsets of the original text, exact, folded or near."""

import time

from tasks.common.locate import FoldedText, locate

DOCUMENT = "Section 9.  The \u201cLicensee\u201d shall NOT\nassign this Agreement."


def test_exact_quote_is_located_at_its_offsets():
    where = locate("shall NOT", DOCUMENT)
    assert where is not None and where.how == "exact"
    assert DOCUMENT[where.start : where.end] == "shall NOT"


def test_folded_quote_maps_back_to_the_original_span():
    where = locate('the "licensee" shall not assign', DOCUMENT)
    assert where is not None and where.how == "normalised"
    assert DOCUMENT[where.start : where.end] == "The \u201cLicensee\u201d shall NOT\nassign"


def test_near_exact_quote_is_located_with_its_edit_ratio():
    where = locate("shall not asign this Agreement", DOCUMENT)
    assert where is not None and where.how == "near-exact"
    assert where.edit_ratio == round(1 / 30, 3)
    assert DOCUMENT[where.start : where.end] == "shall NOT\nassign this Agreement"


def test_paraphrase_is_not_located():
    assert locate("the licensee may not transfer the contract", DOCUMENT) is None


def test_empty_quote_is_not_located():
    assert locate("  ", DOCUMENT) is None


def test_folded_text_collapses_whitespace_and_remembers_origins():
    folded = FoldedText("  A\u00a0 B  ")
    assert folded.text == "a b"
    assert folded.original_span(0, 3) == (2, 6)


def test_near_exact_search_in_a_long_document_is_fast():
    document = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 900) + DOCUMENT
    started = time.perf_counter()
    where = locate("The Licensee shall not asign this Agreement", document)
    assert where is not None and where.how == "near-exact"
    assert time.perf_counter() - started < 5.0  # a scan of the whole document takes 10+ s
