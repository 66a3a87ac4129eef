"""Hand-written findings and contracts shared by the contract review tests."""

from __future__ import annotations

from ponder.verify import verify_candidate
from tasks.contract_review import TASK
from tasks.contract_review.schema import ContractReview, Finding

DOCUMENT = (
    "This Agreement is governed by the laws of the State of New York.\n"
    "Customer's total liability shall not exceed  the fees paid in the prior 12 months."
)
QUOTE = "governed by the laws of the State of New York"
START = DOCUMENT.index(QUOTE)

GOVERNING_LAW = {
    "category": "governing_law",
    "quote": QUOTE,
    "start": START,
    "end": START + len(QUOTE),
    "risk": "low",
    "rationale": "Neutral choice of a commercial forum.",
}


def finding(**changes: object) -> Finding:
    return Finding.model_validate(GOVERNING_LAW | changes)


def at(quote: str, document: str = DOCUMENT, **changes: object) -> Finding:
    """A finding quoting ``quote`` with its true offsets in ``document``."""
    start = document.index(quote)
    return finding(quote=quote, start=start, end=start + len(quote), **changes)


def review(*findings: Finding) -> ContractReview:
    return ContractReview(findings=list(findings))


def verdicts_for(output, document=DOCUMENT, task=TASK):
    text = output if isinstance(output, str) else output.model_dump_json()
    _, verdicts = verify_candidate(
        text=text, output_model=task.output_model, document=document, verifiers=task.verifiers
    )
    return {v.verifier: v for v in verdicts}
