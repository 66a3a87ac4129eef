"""A reasoning model's thinking, separated from its answer by vLLM's own reasoning parser
(``vllm.reasoning``, the parser a vLLM server takes with ``--reasoning-parser``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class UnknownReasoningParser(ValueError):
    """The configured reasoning parser is not one vLLM knows, or the model's tokenizer lacks
    the parser's thinking markers."""


def known_parsers() -> list[str]:
    """The reasoning parser names this vLLM registers (empty where vLLM is not installed: a
    worker that talks to a remote server needs none)."""
    try:
        from vllm.reasoning import ReasoningParserManager
    except ImportError:
        return []
    return ReasoningParserManager.list_registered()


def check_parser_name(name: str) -> None:
    """Refuse a parser name vLLM does not know, naming it and the known ones."""
    known = known_parsers()
    if known and name not in known:
        raise UnknownReasoningParser(
            f"unknown reasoning parser {name!r}; vLLM knows: {', '.join(known)}"
        )


@dataclass(frozen=True)
class ThinkingSplit:
    thinking: str | None
    """The thinking, None when the sample has none."""
    answer: str
    """What follows the thinking: the text structured output applies to."""
    thinking_tokens: int
    """Generated tokens inside the thinking, its start and end markers excluded."""


class ReasoningSplitter:
    """Splits a finished sample with vLLM's parser ``name`` over the model's tokenizer."""

    def __init__(self, name: str, tokenizer: Any) -> None:
        check_parser_name(name)
        from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
        from vllm.reasoning import ReasoningParserManager

        self.name = name
        self._cls = ReasoningParserManager.get_reasoning_parser(name)
        self._tokenizer = tokenizer
        try:
            parser = self._cls(tokenizer)
        except (RuntimeError, ValueError) as exc:
            # vLLM's message says which markers it could not find in the vocabulary.
            raise UnknownReasoningParser(
                f"reasoning parser {name!r} does not fit this model's tokenizer: {exc}"
            ) from exc
        vocab = tokenizer.get_vocab()
        self._markers = {
            vocab[marker]
            for marker in (parser.reasoning_start_str, parser.reasoning_end_str)
            if marker and marker in vocab
        }
        # Parsers read the request for template switches (thinking on/off); none are set.
        self._request = ChatCompletionRequest.model_validate({"model": name, "messages": []})

    def split(self, text: str, token_ids: Sequence[int]) -> ThinkingSplit:
        """The sample's thinking and answer as vLLM's server would return them (``reasoning``
        and ``content``), and the tokens it thought with, counted from its token ids."""
        parser = self._cls(self._tokenizer)  # parsers keep state: one per sample
        thinking, answer = parser.extract_reasoning(text, self._request)
        ids = list(token_ids)
        answer_ids = parser.extract_content_ids(ids)
        if answer is None and thinking is not None:
            answer_ids = []  # the whole sample thought (it ran out of tokens or stopped)
        thinking_ids = ids[: len(ids) - len(answer_ids)]
        tokens = sum(1 for token in thinking_ids if token not in self._markers)
        return ThinkingSplit(
            thinking=thinking if thinking else None,
            answer=answer or "",
            thinking_tokens=tokens if thinking else 0,
        )
