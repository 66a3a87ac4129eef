"""Datasets for ``ponder eval``: our JSONL format, and the public formats (SIMORD, CUAD master
clauses, GSM8K) read from a path. A file that does not fit its format is a ``DatasetError``
naming the file and line, never a silently shorter dataset."""

from __future__ import annotations

import ast
import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ponder.cli.localrun import ROOT
from ponder.evaluation.scoring import gold_problem

FORMATS = ("jsonl", "simord", "cuad", "gsm8k")
FORMAT_TASKS = {
    "simord": ("medrec_extraction",),
    "cuad": ("contract_review", "contract_review_full"),
    "gsm8k": ("math_answer",),
}
"""The task types each public format has gold for (our JSONL names its task per item)."""

DEFAULT_DATASETS = {
    "medrec_extraction": "../shared/eval-data/simord/train.json",
    "contract_review": "../shared/eval-data/cuad/master_clauses_part1.csv",
    "contract_review_full": "../shared/eval-data/cuad/master_clauses_part1.csv",
    "math_answer": "../shared/eval-data/gsm8k/test_first500.jsonl",
}
"""Relative to the repository root: the public data sits beside the checkout, never in it."""

DEFAULT_CUAD_CHARS = 6_000
"""A CUAD document is built from a contract's clause spans up to this many characters, so
that prompt and answer fit the embedded model's 4096-token context."""


class DatasetError(Exception):
    """A dataset that cannot be read as asked; the message names the file and line."""

    def __init__(self, path: Path, line: int | None, message: str) -> None:
        self.path, self.line = path, line
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")


@dataclass(frozen=True)
class EvalItem:
    id: str
    document: str
    gold: dict[str, Any]
    """Per task: ``{"medications": [...]}``, ``{"categories": [...]}`` or ``{"answer": "18"}``."""
    line: int
    """Where the item starts in its file, for messages."""


def default_dataset(task: str) -> Path:
    relative = DEFAULT_DATASETS.get(task)
    if relative is None:
        raise ValueError(f"no default dataset for task {task!r}; pass --dataset")
    return (ROOT / relative).resolve()


def detect_format(path: Path) -> str:
    """The format a file is in, from its name and (for JSONL) its first record."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "cuad"
    if suffix == ".json":
        return "simord"
    if suffix == ".jsonl":
        for _, record in _jsonl_records(path):
            return "gsm8k" if {"question", "answer"} <= set(record) else "jsonl"
        raise DatasetError(path, None, "the file holds no records")
    raise DatasetError(path, None, f"cannot tell the format from {suffix!r}; pass --format")


def load_dataset(
    path: Path, *, task: str, fmt: str = "auto", limit: int | None = None,
    cuad_chars: int = DEFAULT_CUAD_CHARS,
) -> list[EvalItem]:  # fmt: skip
    """The first ``limit`` items of the file, in file order, for ``task``."""
    if not path.is_file():
        raise DatasetError(path, None, "no such file")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt not in FORMATS:
        raise DatasetError(path, None, f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    if fmt in FORMAT_TASKS and task not in FORMAT_TASKS[fmt]:
        raise DatasetError(
            path, None, f"a {fmt} file has gold for {', '.join(FORMAT_TASKS[fmt])}, not {task}"
        )
    readers = {"jsonl": _ours, "simord": _simord, "gsm8k": _gsm8k}
    items: list[EvalItem] = []
    source = _cuad(path, cuad_chars) if fmt == "cuad" else readers[fmt](path, task)
    for item in source:
        items.append(item)
        if limit is not None and len(items) >= limit:
            break
    if not items:
        raise DatasetError(path, None, "the dataset holds no items")
    return items


def _jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(path, number, f"not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise DatasetError(path, number, "a record must be a JSON object")
            yield number, record


def _ours(path: Path, task: str) -> Iterator[EvalItem]:
    for number, record in _jsonl_records(path):
        missing = [k for k in ("id", "task", "document", "gold") if k not in record]
        if missing:
            raise DatasetError(path, number, f"record has no {', '.join(map(repr, missing))}")
        if record["task"] != task:
            raise DatasetError(path, number, f"record is for task {record['task']!r}, not {task}")
        if not isinstance(record["document"], str) or not record["document"].strip():
            raise DatasetError(path, number, "'document' must be non-empty text")
        problem = gold_problem(task, record["gold"])
        if problem:
            raise DatasetError(path, number, f"'gold' {problem}")
        yield EvalItem(str(record["id"]), record["document"], record["gold"], number)


def gsm8k_records(path: Path) -> Iterator[tuple[int, str, str]]:
    """(line, question, worked solution) of each GSM8K record; the solution ends with
    ``#### <number>``. Shared with the gold builder of ``tasks/math_answer/gold.py``."""
    if not path.is_file():
        raise DatasetError(path, None, "no such file")
    for number, record in _jsonl_records(path):
        question, answer = record.get("question"), record.get("answer")
        if not isinstance(question, str) or not isinstance(answer, str):
            raise DatasetError(path, number, "a GSM8K record needs 'question' and 'answer' text")
        if "####" not in answer:
            raise DatasetError(path, number, "the answer has no final number after '####'")
        yield number, question, answer


def _gsm8k(path: Path, task: str) -> Iterator[EvalItem]:
    for number, question, answer in gsm8k_records(path):
        final = answer.rsplit("####", 1)[1].strip().replace(",", "")
        yield EvalItem(f"gsm8k-{number}", question, {"answer": final}, number)


def _simord(path: Path, task: str) -> Iterator[EvalItem]:
    text = path.read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    position = _skip(text, 0)
    if not text.startswith("[", position):
        raise DatasetError(path, _line(text, position), "not a SIMORD file: expected a JSON array")
    position = _skip(text, position + 1)
    while not text.startswith("]", position):
        line = _line(text, position)
        try:
            record, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise DatasetError(path, exc.lineno, f"not valid JSON ({exc.msg})") from None
        yield _encounter(path, line, record)
        position = _skip(text, position)
        if text.startswith(",", position):
            position = _skip(text, position + 1)
        elif not text.startswith("]", position):
            raise DatasetError(path, _line(text, position), "expected ',' or ']'")


def _encounter(path: Path, line: int, record: Any) -> EvalItem:
    if not isinstance(record, dict) or "transcript" not in record:
        raise DatasetError(path, line, "a SIMORD encounter needs a 'transcript'")
    if "expected_orders" not in record:
        raise DatasetError(path, line, f"encounter {record.get('id')!r} has no 'expected_orders'")
    try:
        turns = [f"{t['speaker']}: {t['transcript']}" for t in record["transcript"]]
        gold = [
            str(o["description"])
            for o in record["expected_orders"]
            if o["order_type"] == "medication"
        ]
    except (KeyError, TypeError) as exc:
        raise DatasetError(path, line, f"encounter {record.get('id')!r}: no {exc}") from None
    item_id = str(record.get("id", f"line-{line}"))
    return EvalItem(item_id, "\n".join(turns), {"medications": gold}, line)


def _cuad(path: Path, max_chars: int) -> Iterator[EvalItem]:
    for line, row, spans in cuad_rows(path):
        yield _contract(path, line, row, spans, max_chars)


def cuad_rows(path: Path) -> Iterator[tuple[int, dict[str, str], dict[str, str]]]:
    """Each contract of a CUAD master clauses file: its line, its row, and the span columns
    (column name to category id, in column order). Shared with the gold builder of
    ``tasks/contract_review/gold.py`` so that its documents are the ones the eval scores."""
    from tasks.contract_review.taxonomy import CATEGORIES

    csv.field_size_limit(1 << 30)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = {c: _category_id(c) for c in reader.fieldnames or () if "answer" not in c.lower()}
        spans = {c: cat for c, cat in columns.items() if cat in CATEGORIES}
        if "Filename" not in columns or len(spans) != len(CATEGORIES):
            raise DatasetError(
                path, 1, "not a CUAD master clauses file: expected 'Filename' and a column for "
                "each of the 41 categories"
            )  # fmt: skip
        for row in reader:
            yield reader.line_num, row, spans


@dataclass(frozen=True)
class ClauseSpan:
    """Where one of a category's clause spans lies in a document built by ``cuad_document``."""

    category: str
    start: int
    end: int


def cuad_document(
    path: Path, line: int, row: dict[str, str], spans: dict[str, str], max_chars: int
) -> tuple[str, list[ClauseSpan]]:
    """Clause spans in column order, each whole, while they fit in ``max_chars``; with every
    span that made it in, under each category that has it (a span already in the document
    points at its first copy)."""
    pieces: list[str] = []
    placed: dict[str, int] = {}  # span text to its offset in the document
    size, clauses = 0, []
    for column, category in spans.items():
        try:
            quoted = ast.literal_eval(row[column] or "[]")
        except (ValueError, SyntaxError):
            raise DatasetError(path, line, f"column {column!r} is not a list of spans") from None
        for span in (s.strip() for s in quoted):
            if span in placed:
                clauses.append(ClauseSpan(category, placed[span], placed[span] + len(span)))
            elif span and size + len(span) + 2 <= max_chars:
                placed[span] = size
                pieces.append(span)
                size += len(span) + 2
                clauses.append(ClauseSpan(category, placed[span], placed[span] + len(span)))
    return "\n\n".join(pieces), clauses


def _contract(
    path: Path, line: int, row: dict[str, str], spans: dict[str, str], max_chars: int
) -> EvalItem:
    """The gold is every category with a span in the document built."""
    document, clauses = cuad_document(path, line, row, spans, max_chars)
    name = row.get("Filename") or f"line-{line}"
    gold = sorted({c.category for c in clauses})
    return EvalItem(name, document, {"categories": gold}, line)


def _category_id(column: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", column.lower()).strip("_")


def _skip(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def _line(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1
