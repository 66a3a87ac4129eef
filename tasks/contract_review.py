"""Contract review: find CUAD clause types in a contract, each quoted verbatim with a risk level."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from ponder.tasktypes import TaskType
from ponder.verify import CheckResult, VerifierSpec
from tasks.grounding import normalise_text, occurs_in, shorten

CATEGORIES: dict[str, str] = {
    "document_name": "The title of the contract.",
    "parties": "The parties who signed the contract.",
    "agreement_date": "The date the contract was signed.",
    "effective_date": "The date the contract takes effect.",
    "expiration_date": "The date the initial term ends.",
    "renewal_term": "How the term renews after it expires, e.g. automatic one-year renewals.",
    "notice_period_to_terminate_renewal": "Notice needed to stop the term from renewing.",
    "governing_law": "Which jurisdiction's law governs the contract.",
    "most_favored_nation": "A party gets terms at least as good as any given to a third party.",
    "non_compete": "A party may not compete with the other, in some field, place or time.",
    "exclusivity": "A party must deal exclusively with the other, or grants exclusive rights.",
    "no_solicit_of_customers": "A party may not solicit the other party's customers.",
    "competitive_restriction_exception": "Carve-outs from non-compete, exclusivity or no-solicit.",
    "no_solicit_of_employees": "A party may not solicit or hire the other party's employees.",
    "non_disparagement": "A party may not disparage the other.",
    "termination_for_convenience": "A party may terminate without cause, by giving notice.",
    "rofr_rofo_rofn": "Right of first refusal, first offer or first negotiation.",
    "change_of_control": "Rights that arise when a party merges or changes ownership.",
    "anti_assignment": "Assigning the contract needs consent or notice.",
    "revenue_profit_sharing": "A party shares revenue or profit with the other.",
    "price_restrictions": "Limits on raising or lowering prices.",
    "minimum_commitment": "A minimum amount or volume a party must buy or sell.",
    "volume_restriction": "A cap on use or volume, or a fee when it is exceeded.",
    "ip_ownership_assignment": "IP created under the contract passes to one party.",
    "joint_ip_ownership": "Intellectual property is owned jointly.",
    "license_grant": "A party licenses intellectual property to the other.",
    "non_transferable_license": "A licence that may not be transferred or sublicensed.",
    "affiliate_license_licensor": "A licence that covers IP of the licensor's affiliates.",
    "affiliate_license_licensee": "A licence that extends to the licensee's affiliates.",
    "unlimited_all_you_can_eat_license": "A licence without limits on users, copies or use.",
    "irrevocable_or_perpetual_license": "A licence that cannot be revoked or never expires.",
    "source_code_escrow": "Source code is held in escrow for release on set events.",
    "post_termination_services": "Obligations that continue after the contract ends.",
    "audit_rights": "A party may audit the other's books, records or premises.",
    "uncapped_liability": "Liability that is not capped, e.g. carve-outs from the cap.",
    "cap_on_liability": "A limit on the damages a party can recover.",
    "liquidated_damages": "Damages fixed in advance for a breach or early termination.",
    "warranty_duration": "How long a warranty lasts.",
    "insurance": "Insurance a party must carry.",
    "covenant_not_to_sue": "A party agrees not to sue or challenge the other's rights.",
    "third_party_beneficiary": "A non-party may enforce the contract.",
}

# Built from CATEGORIES so the schema's enum and the taxonomy cannot drift apart; type
# checkers cannot follow a computed Literal, so they see a plain str.
if TYPE_CHECKING:
    CategoryId = str
else:
    CategoryId = Literal[tuple(CATEGORIES)]


class Finding(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: CategoryId
    quote: str = Field(min_length=1, max_length=300)
    """Copied from the contract; checked against it by ``quote_grounding``."""
    risk: Literal["low", "medium", "high"]
    rationale: str = Field(max_length=200)
    """Not required non-empty here, so ``nonempty_rationale`` can score it instead."""


class ContractReview(BaseModel):
    model_config = ConfigDict(extra="forbid")

    findings: list[Finding] = Field(max_length=8)


def _label(finding: Finding) -> str:
    return f"{finding.category}: quote '{shorten(finding.quote)}'"


def check_quote_grounding(output: ContractReview, document: str) -> CheckResult:
    if not output.findings:
        return CheckResult(True, 1.0)
    normalised_document = normalise_text(document)
    ungrounded = [f for f in output.findings if not occurs_in(f.quote, normalised_document)]
    findings = [f"{_label(f)} does not occur in the document" for f in ungrounded]
    score = 1 - len(ungrounded) / len(output.findings)
    return CheckResult(not ungrounded, score, findings)


def check_category_vocabulary(output: ContractReview, document: str) -> CheckResult:
    # The schema enforces this when decoding is constrained; an unconstrained engine may not.
    if not output.findings:
        return CheckResult(True, 1.0)
    unknown = [f.category for f in output.findings if f.category not in CATEGORIES]
    findings = [f"category '{category}' is not in the taxonomy" for category in unknown]
    return CheckResult(not unknown, 1 - len(unknown) / len(output.findings), findings)


def check_no_duplicates(output: ContractReview, document: str) -> CheckResult:
    if not output.findings:
        return CheckResult(True, 1.0)
    counts = Counter((f.category, normalise_text(f.quote)) for f in output.findings)
    repeated = {key: n for key, n in counts.items() if n > 1}
    findings = [
        f"{category}: quote '{shorten(quote)}' is listed {n} times"
        for (category, quote), n in repeated.items()
    ]
    return CheckResult(not repeated, len(counts) / len(output.findings), findings)


def check_nonempty_rationale(output: ContractReview, document: str) -> CheckResult:
    if not output.findings:
        return CheckResult(True, 1.0)
    findings = []
    for finding in output.findings:
        rationale = normalise_text(finding.rationale)
        if not rationale:
            findings.append(f"{_label(finding)} has an empty rationale")
        elif rationale == normalise_text(finding.quote):
            findings.append(f"{_label(finding)} has a rationale that only repeats the quote")
    return CheckResult(not findings, 1 - len(findings) / len(output.findings), findings)


def item_key(finding: Finding) -> tuple[str, str]:
    """One finding's voting key: its category and quote, ignoring case and whitespace."""
    return (finding.category, normalise_text(finding.quote))


def normalise(output: ContractReview) -> frozenset[tuple[str, str]]:
    """Voting key: which clauses were found, ignoring order, risk and wording of rationales."""
    return frozenset(item_key(f) for f in output.findings)


TASK = TaskType(
    name="contract_review",
    description="Find CUAD clause types in a contract, each quoted verbatim with a risk level.",
    output_model=ContractReview,
    template="prompts/contract_review/review.j2",
    system_prompt=(
        "You are a careful contract analyst. You quote contracts exactly, never paraphrase "
        "a quote, and answer only with JSON."
    ),
    verifiers=(
        VerifierSpec(
            "quote_grounding",
            check_quote_grounding,
            "Every quote occurs in the contract, ignoring case, whitespace and quote style.",
        ),
        VerifierSpec(
            "category_vocabulary",
            check_category_vocabulary,
            "Every category is one of the 41 CUAD clause types.",
        ),
        VerifierSpec(
            "no_duplicates",
            check_no_duplicates,
            "No clause is listed twice with the same category and quote.",
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
    ),
    # 8 findings of up to 300 + 200 characters do not fit in the default 512 tokens.
    max_output_tokens=1536,
    normalise=normalise,
    items_field="findings",
    item_key=item_key,
)
