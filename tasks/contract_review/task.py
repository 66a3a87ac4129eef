"""The contract review task types, ``contract_review`` and ``contract_review_full``: their
prompt, their verifiers in order, and the keys candidates vote with."""

from __future__ import annotations

from ponder.tasktypes import TaskType
from ponder.verify import VerifierSpec
from tasks.common.grounding import normalise_text
from tasks.common.locate import MAX_EDIT_RATIO
from tasks.contract_review.checks import (
    MIN_WORDS_CLAUSE,
    MIN_WORDS_SHORT,
    check_category_fit,
    check_category_vocabulary,
    check_completeness,
    check_full_coverage,
    check_judge,
    check_no_duplicates,
    check_nonempty_rationale,
    check_offsets,
    check_quote_grounding,
    check_quote_substance,
)
from tasks.contract_review.difficulty import difficulty_signals
from tasks.contract_review.schema import ContractReview, Finding, FullContractReview, Review


def item_key(finding: Finding) -> tuple[str, str]:
    """One finding's voting key: its category and quote, ignoring case and whitespace."""
    return (finding.category, normalise_text(finding.quote))


def normalise(output: Review) -> frozenset[tuple[str, str]]:
    """Voting key: which clauses were found, ignoring order, offsets, risk and rationale."""
    return frozenset(item_key(f) for f in output.findings)


_SYSTEM_PROMPT = (
    "You are a careful contract analyst. You quote contracts exactly, never paraphrase "
    "a quote, and answer only with JSON."
)

_VERIFIERS = (
    VerifierSpec(
        "quote_grounding",
        check_quote_grounding,
        "Every quote occurs in the contract, ignoring case, whitespace and quote style, or "
        f"near-exactly (at most {MAX_EDIT_RATIO:.0%} of its characters edited; recorded).",
    ),
    VerifierSpec(
        "category_vocabulary",
        check_category_vocabulary,
        "Every category is one of the 41 CUAD clause types.",
    ),
    VerifierSpec(
        "category_fit",
        check_category_fit,
        "Every quote uses a word of its category's vocabulary (governing_law: law, governed, "
        "jurisdiction, ...); fails for the categories where gold quotes were measured to, "
        "notes a miss for the others.",
    ),
    VerifierSpec(
        "completeness",
        check_completeness,
        "No likely miss: a category whose cue phrase ('governed by the laws of', 'for "
        "convenience', ...) occurs in the contract is reported. Fails for the categories "
        "whose cue was measured reliable, unless the review is at its findings limit; "
        "notes the others.",
        weight=0.5,
    ),
    VerifierSpec(
        "quote_substance",
        check_quote_substance,
        f"Every quote can establish its category: at least {MIN_WORDS_CLAUSE} words for a "
        f"clause, {MIN_WORDS_SHORT} for a title, party or date.",
    ),
    VerifierSpec(
        "offsets",
        check_offsets,
        "Each finding's start and end offsets hold its quote; where each quote really is, "
        "is recorded.",
        weight=0.5,
        required=False,
    ),
    VerifierSpec(
        "no_duplicates",
        check_no_duplicates,
        "No clause is listed twice under one category, with the same quote or one inside "
        "the other.",
        weight=0.5,
        required=False,
    ),
    VerifierSpec(
        "nonempty_rationale",
        check_nonempty_rationale,
        "Every finding explains its risk rather than leaving it blank or repeating the quote.",
        weight=0.5,
        required=False,
    ),
    VerifierSpec(
        "judge",
        check_judge,
        "The model, asked yes or no, holds that each quote establishes its category "
        "(P(yes) from the logprobs). Runs only where enabled: it calls the engine.",
        required=False,
        judge=True,
    ),
)

TASK = TaskType(
    name="contract_review",
    description="Find CUAD clause types in a contract, each quoted verbatim with its offsets "
    "and a risk level.",
    output_model=ContractReview,
    template="prompts/contract_review/review.j2",
    system_prompt=_SYSTEM_PROMPT,
    verifiers=_VERIFIERS,
    # 8 findings of up to 300 + 200 characters do not fit in the default 512 tokens.
    max_output_tokens=1536,
    normalise=normalise,
    items_field="findings",
    item_key=item_key,
    difficulty_signals=difficulty_signals,
)

FULL_TASK = TaskType(
    name="contract_review_full",
    description="A full contract review: the clauses found, as contract_review, and every "
    "other CUAD category listed as judged absent.",
    output_model=FullContractReview,
    template="prompts/contract_review/full_review.j2",
    system_prompt=_SYSTEM_PROMPT,
    verifiers=(
        *_VERIFIERS[:5],
        VerifierSpec(
            "full_coverage",
            check_full_coverage,
            "Every one of the 41 categories is either found or listed as absent, once.",
        ),
        *_VERIFIERS[5:],
    ),
    max_output_tokens=2048,
    normalise=normalise,
    items_field="findings",
    item_key=item_key,
    difficulty_signals=difficulty_signals,
)
