"""A reasoning model's thinking, apart from its answer: as the engine's reasoning parser
separated it, or (a plain engine) the ``<think>`` section a sample opens with."""

from __future__ import annotations

import re
from collections.abc import Callable

from ponder.engines.base import Sample

_THINKING = re.compile(r"^\s*(?:<think>)?(.*?)</think>\s*", re.DOTALL)


def split_thinking(text: str) -> tuple[str | None, str]:
    """A reasoning model's ``<think>…</think>`` section, split from the answer after it
    (None when there is none). Some chat templates open the tag in the prompt, so only the
    closing tag is needed."""
    match = _THINKING.match(text)
    if match is None:
        return None, text
    return match.group(1).strip(), text[match.end() :]


def inline_thinking_tokens(text: str, count_tokens: Callable[[str], int]) -> int:
    """Tokens of the ``<think>`` section a sample opens with (0 without one): the part of its
    completion tokens that went on thinking rather than the answer."""
    hidden, _ = split_thinking(text)
    return 0 if hidden is None else count_tokens(hidden)


def sample_thinking(
    sample: Sample, count_tokens: Callable[[str], int], *, engine_parsed: bool
) -> tuple[str | None, int]:
    """The sample's thinking and the tokens it took. ``engine_parsed``: the engine runs a
    reasoning parser, which already separated them (``sample.text`` is the answer alone);
    otherwise the ``<think>`` section the text opens with, its tokens counted."""
    if engine_parsed:
        return sample.thinking, sample.thinking_tokens
    hidden, _ = split_thinking(sample.text)
    return hidden, (0 if hidden is None else count_tokens(hidden))
