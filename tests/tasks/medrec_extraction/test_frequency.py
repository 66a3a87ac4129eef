import pytest

from tasks.medrec_extraction.frequency import normalise_frequency


@pytest.mark.parametrize(
    ("written", "term"),
    [
        ("twice daily", "BID"),
        ("twice a day", "BID"),
        ("bid", "BID"),
        ("b.i.d.", "BID"),
        ("2x/day", "BID"),
        ("once a day", "daily"),
        ("every 24 hours", "daily"),
        ("three times daily with meals", "TID"),
        ("q.i.d.", "QID"),
        ("every 8 hours", "q8h"),
        ("every twelve hours", "q12h"),
        ("at bedtime", "qHS"),
        ("daily at bedtime", "qHS"),
        ("every morning", "qAM"),
        ("in the evening", "qPM"),
        ("as needed", "PRN"),
        ("p.r.n.", "PRN"),
        ("every 6 hours as needed for pain", "q6h PRN"),
        ("once a week", "weekly"),
        ("monthly", "monthly"),
        ("single dose", "once"),
    ],
)
def test_common_spellings_normalise_to_the_vocabulary(written, term):
    assert normalise_frequency(written) == term


@pytest.mark.parametrize("written", ["sometimes", "every other day", "twice a week", "q5h"])
def test_frequencies_outside_the_vocabulary_normalise_to_none(written):
    assert normalise_frequency(written) is None
