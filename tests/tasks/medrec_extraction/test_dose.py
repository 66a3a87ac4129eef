"""Reading doses out of text, parsing a medication line, and dose plausibility per unit."""

import pytest

from tasks.medrec_extraction.dose import (
    dose_problem,
    doses_in,
    implausible_for_unit,
    parse_sig,
    spoken_number,
)


def test_metoprolol_50_mg_bid_parses():
    sig = parse_sig("metoprolol 50 mg BID")
    assert sig is not None
    assert (sig.name, sig.dose.low, sig.dose.unit, sig.frequency) == ("metoprolol", 50, "mg", "BID")


def test_a_long_line_parses_with_its_frequency_in_words():
    sig = parse_sig("Metoprolol tartrate 25 milligrams by mouth twice a day with food")
    assert sig is not None
    assert (sig.name, sig.dose.low, sig.dose.unit, sig.frequency) == (
        "metoprolol tartrate",
        25,
        "mg",
        "BID",
    )


def test_a_line_without_a_frequency_parses_with_none():
    sig = parse_sig("lisinopril 10 mg")
    assert sig is not None and sig.frequency is None


@pytest.mark.parametrize("line", ["58 feline medication", "continue metoprolol", "50 mg"])
def test_lines_without_a_name_and_a_dose_do_not_parse(line):
    assert parse_sig(line) is None


@pytest.mark.parametrize(
    ("words", "value"),
    [("forty", 40), ("two hundred fifty", 250), ("one and a half", 1.5), ("1,000", 1000),
     ("0.5", 0.5), ("twelve", 12), ("banana", None)],
)  # fmt: skip
def test_spoken_numbers(words, value):
    assert spoken_number(words) == value


def test_doses_in_text_with_units_in_words_and_ranges():
    found = doses_in("Take 1-2 tablets, then prednisone forty milligrams; insulin 10 units")
    assert [(d.low, d.high, d.unit) for d in found] == [
        (1, 2, "tablets"),
        (40, 40, "mg"),
        (10, 10, "units"),
    ]


def test_lab_values_are_not_doses():
    assert doses_in("Creatinine 1.6 mg/dL, dosed at 5 mg/kg") == []


def test_dose_problem_accepts_numbers_and_rejects_words():
    assert dose_problem("1,000") is None
    assert dose_problem("fifty") is not None


def test_plausibility_is_per_unit():
    assert implausible_for_unit("5000", "mg") is None
    assert implausible_for_unit("6000", "mg") is not None
    assert implausible_for_unit("3", "puffs") is None
    assert implausible_for_unit("50", "other") is None
