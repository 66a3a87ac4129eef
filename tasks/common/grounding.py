"""Text matching shared by task verifiers: does a span a model quoted occur in the document."""

from __future__ import annotations

import re
import unicodedata

# Models and PDF extraction disagree on typography, not on words; fold the usual variants.
_TYPOGRAPHY = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "`": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2033": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
    }
)


def normalise_text(text: str) -> str:
    """Casefolded, typographic quotes and dashes made plain, whitespace runs collapsed."""
    text = unicodedata.normalize("NFKC", text).translate(_TYPOGRAPHY)
    return " ".join(text.split()).casefold()


def occurs_in(span: str, normalised_document: str) -> bool:
    """Whether ``span`` occurs anywhere in the document; an empty span grounds nothing."""
    needle = normalise_text(span)
    return bool(needle) and needle in normalised_document


def occurs_as_words(phrase: str, normalised_document: str) -> bool:
    """Whether ``phrase`` occurs as whole words, so "ace" is not found inside "place"."""
    needle = normalise_text(phrase)
    if not needle:
        return False
    pattern = rf"(?<!\w){re.escape(needle)}(?!\w)"
    return re.search(pattern, normalised_document) is not None


def shorten(text: str, limit: int = 80) -> str:
    """Keeps verifier findings readable when they name a long quote."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
