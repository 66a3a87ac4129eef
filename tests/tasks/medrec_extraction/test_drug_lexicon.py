"""The drug-name lexicon: generics, brands, phrases, near spellings, and non-drugs."""

import pytest

from tasks.medrec_extraction.drug_lexicon import find_drug, load_lexicon, same_drug


def test_the_lexicon_holds_a_few_hundred_names():
    lexicon = load_lexicon()
    assert len(set(lexicon.generic_of.values()) | set(lexicon.phrases.values())) >= 300


@pytest.mark.parametrize(
    ("name", "generic"),
    [("metoprolol", "metoprolol"), ("Lasix", "furosemide"), ("Tylenol Extra", "acetaminophen"),
     ("insulin glargine", "insulin glargine"), ("insulin nph", "insulin"), ("fish oil", "fish oil"),
     ("piperacillin-tazobactam", "piperacillin-tazobactam"), ("atrovent inhalers", "ipratropium")],
)  # fmt: skip
def test_known_names_are_found_with_their_generic(name, generic):
    match = find_drug(name)
    assert match is not None and match.generic == generic and match.near is None


@pytest.mark.parametrize("name", ["58 feline medication", "blood pressure", "exercise", "a"])
def test_words_that_are_not_drugs_are_not_found(name):
    assert find_drug(name) is None


def test_a_near_spelling_is_found_and_marked_near():
    match = find_drug("atorvastatn")
    assert match is not None and match.generic == "atorvastatin"
    assert match.near == "atorvastatin"


def test_a_brand_and_its_generic_are_the_same_drug():
    assert same_drug("Lasix", "furosemide 40 mg daily")
    assert not same_drug("lasix", "lisinopril")


def test_unknown_names_match_on_a_shared_word():
    assert same_drug("zorblax cream", "zorblax twice daily")
    assert not same_drug("zorblax", "quintop")
