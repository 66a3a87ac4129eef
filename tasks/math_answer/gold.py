"""Gold answers for ``math_answer`` built from GSM8K worked solutions, and their mutations
(a wrong step, a wrong final sum the working arrives at), for ``ponder.evaluation.mutation``."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path

from pydantic import ValidationError

from ponder.evaluation.loaders import gsm8k_records
from ponder.evaluation.mutation import GoldCase, Mutant, MutationSuite, Skipped
from tasks.math_answer.arithmetic import find_steps
from tasks.math_answer.checks import NUMBERS_IN_TEXT
from tasks.math_answer.schema import NUMBER_PATTERN, MathAnswer, canonical_number

_ANNOTATION = re.compile(r"<<[^<>]*>>")
"""GSM8K's calculator annotations, "<<16-3-4=9>>": machine hints, not part of the working."""
_PLAIN_NUMBER = re.compile(NUMBER_PATTERN)
_OFFSETS = (-3, -2, -1, 1, 2, 3)
"""A wrong result stays plausible: a small slip, not a different order of magnitude."""


def reasoning_limit() -> int:
    """The schema's bound on the working; a longer gold working is skipped, never cut."""
    limit = MathAnswer.model_json_schema()["properties"]["reasoning"]["maxLength"]
    return int(limit)


def gold_cases(path: Path) -> Iterator[GoldCase | Skipped]:
    """One gold answer per GSM8K line: the worked solution without its annotations, and its
    final number."""
    limit = reasoning_limit()
    for number, question, solution in gsm8k_records(path):
        case_id = f"gsm8k-{number}"
        working, final = solution.rsplit("####", 1)
        reasoning = " ".join(_ANNOTATION.sub("", working).split())
        answer = canonical_number(final.strip())
        if len(reasoning) > limit:
            yield Skipped(case_id, f"worked solution longer than the schema's {limit} characters")
            continue
        if answer is None or not _PLAIN_NUMBER.match(answer):
            yield Skipped(case_id, "final answer is not a number the schema's pattern accepts")
            continue
        gold = MathAnswer.model_validate({"reasoning": reasoning, "answer": answer})
        yield GoldCase(id=case_id, document=question, answer=gold)


def mutants(case: GoldCase, rng: random.Random) -> list[Mutant]:
    """At most one ``wrong_step`` and one ``wrong_final``; deterministic given ``rng``."""
    gold = MathAnswer.model_validate(case.answer.model_dump())
    found = [_wrong_step(gold, rng), _wrong_final(gold, rng)]
    return [mutant for mutant in found if mutant is not None]


def _wrong_step(gold: MathAnswer, rng: random.Random) -> Mutant | None:
    """One right step's stated result changed; only that occurrence of the text."""
    steps = [
        step
        for step in find_steps(gold.reasoning)
        if step.checked
        and step.correct
        and canonical_number(gold.reasoning[step.stated_start : step.stated_end]) is not None
    ]  # a stated "3 1/2" or "1/2" has no plausible decimal neighbour to swap in
    if not steps:
        return None
    step = rng.choice(steps)
    original = gold.reasoning[step.stated_start : step.stated_end]
    wrong = _wrong_number(original, rng)
    if wrong is None:
        return None
    reasoning = gold.reasoning[: step.stated_start] + wrong + gold.reasoning[step.stated_end :]
    answer = _validated(reasoning, gold.answer)
    if answer is None:
        return None
    return Mutant("wrong_step", answer, f"step '{step.text}' → {wrong}")


def _wrong_final(gold: MathAnswer, rng: random.Random) -> Mutant | None:
    """A different final answer that the working arrives at: its last number, which is the
    gold answer, becomes the same wrong number. Only where the working ends at the answer,
    since otherwise the gold itself fails and the mutant shows nothing."""
    numbers = list(NUMBERS_IN_TEXT.finditer(gold.reasoning))
    if not numbers or canonical_number(numbers[-1].group()) != canonical_number(gold.answer):
        return None
    last = numbers[-1]
    original = last.group().rstrip(",")
    wrong = _wrong_number(original, rng)
    wrong_answer = canonical_number(wrong) if wrong is not None else None
    if wrong is None or wrong_answer is None:
        return None
    end = last.start() + len(original)
    reasoning = gold.reasoning[: last.start()] + wrong + gold.reasoning[end:]
    answer = _validated(reasoning, wrong_answer)
    if answer is None:
        return None
    return Mutant("wrong_final", answer, f"final {gold.answer} → {wrong_answer}, working too")


def _wrong_number(text: str, rng: random.Random) -> str | None:
    """A different, plausible number written like ``text``: off by a small whole amount
    (staying non-negative when ``text`` is) or two adjacent digits swapped."""
    try:
        value = Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None
    candidates = [value + offset for offset in _OFFSETS if value < 0 or value + offset >= 0]
    digits = text.replace(",", "")
    for i in range(len(digits) - 1):
        a, b = digits[i], digits[i + 1]
        if a.isdigit() and b.isdigit() and a != b and not (i == 0 and b == "0"):
            candidates.append(Decimal(digits[:i] + b + a + digits[i + 2 :]))
    candidates = [c for c in candidates if c != value]
    if not candidates:
        return None
    chosen = rng.choice(candidates)
    return format(chosen, ",") if "," in text else format(chosen, "f")


def _validated(reasoning: str, answer: str) -> MathAnswer | None:
    """The mutant as a schema instance; None when the change made it invalid (a working
    pushed past the length bound)."""
    try:
        return MathAnswer.model_validate({"reasoning": reasoning, "answer": answer})
    except ValidationError:
        return None


SUITE = MutationSuite(
    task="math_answer",
    dataset_format="gsm8k",
    classes=("wrong_step", "wrong_final"),
    gold_cases=gold_cases,
    mutants=mutants,
)
