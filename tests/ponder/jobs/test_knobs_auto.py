"""The knobs file's band tables for strategy ``auto``: a good table is read, a bad one is
refused with its file, line and reason, and the previous knobs stay in force."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from ponder.jobs.knobs import Knobs, KnobsError, KnobsStore, parse_knobs
from tests.ponder.jobs.test_knobs import write

GOOD = """\
[tasks.medrec_extraction]
strategy = "auto"

[tasks.medrec_extraction.auto]
bands = [
  { max_score = 0.3, strategy = "single" },
  { max_score = 0.7, strategy = "best_of_n", n = 4 },
  { max_score = 1.0, strategy = "adaptive" },
]
weights = { medications = 2 }
"""
BANDS_LINE = 5
"""The line of ``bands = [``; the bands follow one a line."""


def test_a_band_table_is_read_with_its_task():
    table = parse_knobs_text(GOOD).for_task("medrec_extraction").auto
    assert table is not None
    assert [(b.max_score, b.strategy, b.n) for b in table.bands] == [
        (0.3, "single", None),
        (0.7, "best_of_n", 4),
        (1.0, "adaptive", None),
    ]
    assert table.weights == {"medications": 2}


def test_a_task_without_a_table_has_none():
    assert parse_knobs_text(GOOD).for_task("contract_review").auto is None


@pytest.mark.parametrize(
    ("old", "new", "line", "reason"),
    [
        ("max_score = 0.7,", "max_score = 0.2,", BANDS_LINE, "bands[1] overlaps the band before"),
        ("max_score = 0.7,", "max_score = 0.3,", BANDS_LINE, "bands[1] overlaps the band before"),
        (
            '{ max_score = 0.7, strategy = "best_of_n"',
            '{ min_score = 0.4, max_score = 0.7, strategy = "best_of_n"',
            BANDS_LINE,
            "bands[1] leaves a gap: it starts at 0.4 but the band before ends at 0.3",
        ),
        ("max_score = 1.0,", "max_score = 0.9,", BANDS_LINE, "the last band ends at 0.9"),
        ('strategy = "adaptive"', 'strategy = "guess"', BANDS_LINE + 3, "unknown strategy"),
        ('strategy = "adaptive"', 'strategy = "auto"', BANDS_LINE + 3, "route to auto itself"),
        ("n = 4", "n = 0", BANDS_LINE + 2, "greater than or equal to 1"),
        (
            'strategy = "single" }',
            'strategy = "single", n = 2 }',
            BANDS_LINE + 1,
            "draws exactly 1 sample",
        ),
        (
            'strategy = "adaptive" }',
            'strategy = "adaptive", params = { threshold = 2 } }',
            BANDS_LINE + 3,
            "invalid params for strategy adaptive",
        ),
        ("weights = { medications = 2 }", "weights = { medicines = 2 }", 10, "unknown signal"),
        ("weights = { medications = 2 }", "weights = { medications = -1 }", 10, "medications"),
    ],
    ids=[
        "overlap",
        "zero-width",
        "gap",
        "not-ending-at-1",
        "unknown-strategy",
        "routes-to-itself",
        "n-zero",
        "n-on-single",
        "bad-params",
        "unknown-signal",
        "negative-weight",
    ],
)
def test_a_bad_band_table_is_refused_with_file_line_and_reason(tmp_path, old, new, line, reason):
    assert GOOD.count(old) == 1
    path = tmp_path / "knobs.toml"
    write(path, GOOD.replace(old, new))
    with pytest.raises(KnobsError) as info:
        parse_knobs(path)
    message = str(info.value)
    assert message.startswith(f"{path}: line {line}: "), message
    assert reason in message


def test_strategy_auto_without_a_table_is_refused(tmp_path):
    path = tmp_path / "knobs.toml"
    write(path, '[tasks.contract_review]\nstrategy = "auto"\n')
    with pytest.raises(KnobsError, match=r"line 1: .*needs this task's band table"):
        parse_knobs(path)


def test_a_table_without_bands_is_refused(tmp_path):
    path = tmp_path / "knobs.toml"
    write(path, "[tasks.math_answer.auto]\nweights = { numbers = 2 }\n")
    with pytest.raises(KnobsError, match=r"line 1: .*the auto table needs its bands"):
        parse_knobs(path)


def test_params_beside_strategy_auto_are_refused(tmp_path):
    path = tmp_path / "knobs.toml"
    write(path, GOOD.replace('strategy = "auto"\n', 'strategy = "auto"\nparams = { n = 2 }\n'))
    with pytest.raises(KnobsError, match=r"line 1: .*params do not apply to strategy 'auto'"):
        parse_knobs(path)


def test_a_bad_table_keeps_the_previous_knobs_in_force(tmp_path):
    path = tmp_path / "knobs.toml"
    write(path, GOOD)
    store = KnobsStore(path)
    before = store.current().for_task("medrec_extraction").auto
    assert before is not None and len(before.bands) == 3
    write(path, GOOD.replace("max_score = 1.0,", "max_score = 0.9,"))
    after = store.current().for_task("medrec_extraction").auto
    assert after == before
    assert store.last_error is not None and "the last band ends at 0.9" in store.last_error


def parse_knobs_text(text: str) -> Knobs:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "knobs.toml"
        write(path, text)
        return parse_knobs(path)


def test_the_shipped_example_knobs_file_is_valid():
    example = Path(__file__).resolve().parents[3] / "docker" / "knobs.toml"
    table = parse_knobs(example).for_task("medrec_extraction").auto
    assert table is not None and table.bands[-1].max_score == 1.0
