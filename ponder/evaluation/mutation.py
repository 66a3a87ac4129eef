"""Verifier evaluation by mutation: run a task's verifiers on gold answers built from a
labelled dataset (they should pass) and on copies of them with one deliberate error each
(they should fail), and report the share caught per kind of error.

No model is involved, so the figures are exact and reproducible: the same dataset and seed
give the same mutations and the same verdicts."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ponder.tasktypes import TaskType
from ponder.verify import Verdict, verify_candidate

MISSED_EXAMPLES = 5
"""Examples kept per mutation class of a mutation that no required check caught."""


@dataclass(frozen=True)
class GoldCase:
    """One labelled item turned into the answer a perfect model would give."""

    id: str
    document: str
    answer: BaseModel
    """The gold answer in the task's output schema."""


@dataclass(frozen=True)
class Skipped:
    """A labelled item that cannot be expressed in the task's schema, and why."""

    id: str
    reason: str


@dataclass(frozen=True)
class Mutant:
    """A gold answer with exactly one deliberate error."""

    kind: str
    """The mutation class: ``omit_item``, ``wrong_dose``, ``wrong_step``, ..."""
    answer: BaseModel
    what: str
    """The error, in a few words ("dropped 'lisinopril'"); shown for misses."""
    checkable: bool = True
    """Whether a deterministic check is meant to see this error: False where the error
    touches something no check can judge (a category without a reliable cue), so the report
    can say how much of a class is within reach and how much of that is caught."""


@dataclass(frozen=True)
class MutationSuite:
    """How one task type's gold answers are built from a dataset and mutated."""

    task: str
    dataset_format: str
    """The public format the builder reads (``simord``, ``cuad``, ``gsm8k``)."""
    classes: tuple[str, ...]
    """Every mutation class the suite can produce, in report order."""
    gold_cases: Callable[[Path], Iterator[GoldCase | Skipped]]
    """Reads the dataset; raises ``DatasetError`` when the file does not fit the format."""
    mutants: Callable[[GoldCase, random.Random], list[Mutant]]
    """At most one mutant per class for a case (none where the class does not apply)."""


@dataclass
class ClassTally:
    count: int = 0
    caught: int = 0
    checkable: int = 0
    checkable_caught: int = 0
    missed_examples: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "caught": _share(self.caught, self.count),
            "caught_count": self.caught,
            "count": self.count,
            "checkable": {
                "count": self.checkable,
                "caught": _share(self.checkable_caught, self.checkable),
            },
            "missed_examples": self.missed_examples,
        }


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@dataclass
class GoldTally:
    count: int = 0
    passed: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    """Required verifier name to the number of gold answers it failed."""
    failed_only: dict[str, int] = field(default_factory=dict)
    """Required verifier name to the number of gold answers it alone failed: how many more
    would pass without it."""
    failed_examples: list[dict[str, Any]] = field(default_factory=list)


def required_failures(verdicts: list[Verdict]) -> list[Verdict]:
    return [v for v in verdicts if v.required and not v.passed]


def evaluate_verifiers(
    *,
    task: TaskType,
    suite: MutationSuite,
    dataset: Path,
    seed: int = 0,
    limit: int | None = None,
    examples: int = MISSED_EXAMPLES,
) -> dict[str, Any]:
    """Runs every deterministic verifier of ``task`` on each gold answer and each mutant.
    A mutant is caught when a required check fails it with a finding it did not have for the
    gold answer (for a gold answer that passes, simply: a required check fails it)."""
    verifiers = tuple(v for v in task.verifiers if not v.judge)
    gold = GoldTally()
    tallies = {kind: ClassTally() for kind in suite.classes}
    skipped: dict[str, int] = {}
    cases = 0
    for case in suite.gold_cases(dataset):
        if isinstance(case, Skipped):
            skipped[case.reason] = skipped.get(case.reason, 0) + 1
            continue
        if limit is not None and cases >= limit:
            break
        cases += 1
        verdicts = _verify(task, verifiers, case.document, case.answer)
        failing = required_failures(verdicts)
        known = _failure_lines(failing)
        gold.count += 1
        if not failing:
            gold.passed += 1
        else:
            for v in failing:
                gold.failures[v.verifier] = gold.failures.get(v.verifier, 0) + 1
            if len(failing) == 1:
                only = failing[0].verifier
                gold.failed_only[only] = gold.failed_only.get(only, 0) + 1
            if len(gold.failed_examples) < examples:
                gold.failed_examples.append(
                    {"id": case.id, "failed": {v.verifier: v.findings[:3] for v in failing}}
                )
        # One generator per case, seeded from the case id: a case's mutants do not depend
        # on which cases came before it (a --limit or a reordered file changes nothing).
        rng = random.Random(f"{seed}:{case.id}")
        for mutant in suite.mutants(case, rng):
            tally = tallies.setdefault(mutant.kind, ClassTally())
            tally.count += 1
            verdicts = _verify(task, verifiers, case.document, mutant.answer)
            # Caught means a required check says something it did not say of the gold
            # answer: a gold answer that already fails must not make its mutants look caught.
            caught = bool(_failure_lines(required_failures(verdicts)) - known)
            tally.caught += caught
            tally.checkable += mutant.checkable
            tally.checkable_caught += caught and mutant.checkable
            if not caught and len(tally.missed_examples) < examples:
                tally.missed_examples.append(
                    {"id": case.id, "mutation": mutant.what, "checkable": mutant.checkable}
                )
    return {
        "task": task.name,
        "dataset": str(dataset),
        "seed": seed,
        "verifiers": [{"name": v.name, "required": v.required} for v in verifiers],
        "gold": {
            "passed": round(gold.passed / gold.count, 4) if gold.count else None,
            "passed_count": gold.passed,
            "count": gold.count,
            "failed_by_verifier": dict(sorted(gold.failures.items(), key=lambda kv: -kv[1])),
            "passed_without": {
                name: round((gold.passed + n) / gold.count, 4)
                for name, n in sorted(gold.failed_only.items(), key=lambda kv: -kv[1])
            },
            "failed_examples": gold.failed_examples,
        },
        "skipped": skipped,
        "mutations": {kind: tally.as_dict() for kind, tally in tallies.items()},
    }


def _failure_lines(failing: list[Verdict]) -> set[tuple[str, str]]:
    return {(v.verifier, finding) for v in failing for finding in v.findings} | {
        (v.verifier, "") for v in failing if not v.findings
    }


def _verify(
    task: TaskType, verifiers: tuple[Any, ...], document: str, answer: BaseModel
) -> list[Verdict]:
    _, verdicts = verify_candidate(
        text=answer.model_dump_json(),
        output_model=task.output_model,
        document=document,
        verifiers=verifiers,
    )
    return verdicts


def format_verifier_table(payload: dict[str, Any]) -> str:
    """The figures as a plain-text table: gold first, then one row per mutation class."""
    gold = payload["gold"]
    lines = [
        f"task {payload['task']}: verifiers on gold answers from {payload['dataset']} "
        f"(seed {payload['seed']})",
        f"{'answer':22} {'count':>6} {'rate':>7} {'checkable':>9} {'rate':>7}  meaning",
        "-" * 78,
        f"{'gold':22} {gold['count']:>6} {_rate(gold['passed']):>7} {'':>9} {'':>7}  "
        "passed every required check",
    ]
    for kind, tally in payload["mutations"].items():
        within = tally["checkable"]
        lines.append(
            f"{kind:22} {tally['count']:>6} {_rate(tally['caught']):>7} {within['count']:>9} "
            f"{_rate(within['caught']):>7}  caught: a required check failed it anew"
        )
    if gold["failed_by_verifier"]:
        reasons = ", ".join(f"{name} {n}" for name, n in gold["failed_by_verifier"].items())
        lines.append(f"gold answers failed by: {reasons}")
        without = ", ".join(f"{name} {rate:.3f}" for name, rate in gold["passed_without"].items())
        if without:
            lines.append(f"gold pass rate with one check set aside: {without}")
    for reason, n in payload["skipped"].items():
        lines.append(f"skipped {n}: {reason}")
    return "\n".join(lines)


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


class MutationUsageError(Exception):
    """An unknown task, a missing dataset or one that does not fit its format."""


def run_verifier_evaluation(
    *, task: str, dataset: Path | None, seed: int = 0, limit: int | None = None,
    out: Path | None = None,
) -> dict[str, Any]:  # fmt: skip
    """What ``ponder eval verifiers`` does: checks its arguments before anything runs,
    evaluates, and writes the JSON when asked."""
    from ponder.evaluation.loaders import DatasetError, default_dataset
    from tasks.registry import MUTATION_SUITES, TASKS

    suite = MUTATION_SUITES.get(task)
    if suite is None:
        known = ", ".join(sorted(MUTATION_SUITES))
        raise MutationUsageError(f"no gold builder for task {task!r}; known: {known}")
    path = dataset or default_dataset(task)
    if not path.is_file():
        raise MutationUsageError(f"{path}: no such file")
    try:
        payload = evaluate_verifiers(task=TASKS[task], suite=suite, dataset=path, seed=seed,
                                     limit=limit)  # fmt: skip
    except DatasetError as exc:
        raise MutationUsageError(str(exc)) from None
    payload["dataset"] = os.path.relpath(path)
    if payload["gold"]["count"] == 0:
        raise MutationUsageError(f"{path}: no item could be turned into a gold answer")
    if out is not None:
        out.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return payload
