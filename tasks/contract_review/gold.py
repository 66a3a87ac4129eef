"""Gold contract reviews built from CUAD master clauses, and copies of them with one
deliberate error each, for measuring the contract review verifiers by mutation
(``ponder.evaluation.mutation``)."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ponder.evaluation.loaders import DEFAULT_CUAD_CHARS, ClauseSpan, cuad_document, cuad_rows
from ponder.evaluation.mutation import GoldCase, Mutant, MutationSuite, Skipped
from ponder.tasktypes import list_limit
from tasks.common.locate import fold, locate
from tasks.contract_review.checks import SHORT_CATEGORIES, has_substance
from tasks.contract_review.coverage import CUES, RELIABLE_CUES, cued_categories
from tasks.contract_review.schema import ContractReview, Finding, FullContractReview, Review
from tasks.contract_review.taxonomy import CATEGORIES
from tasks.contract_review.vocabulary import FIT_REQUIRED, fits

MAX_QUOTE_CHARS = 300
"""The schema's bound on a quote; a longer clause is quoted by its first words."""
CLASSES = ("omit_item", "invented_item", "swapped_category", "truncated_quote")
TRUNCATE_MIN_WORDS = 8
TRUNCATE_TO_WORDS = 3
_WORD = re.compile(r"\w+")


INVENTED_CLAUSES: dict[str, str] = {
    "governing_law": "This Agreement shall be governed by the laws of the Province of "
    "Saskatchewan, without regard to its conflict of laws rules.",
    "insurance": "Supplier shall maintain product liability insurance of not less than "
    "seven million dollars per occurrence, naming Buyer as an additional insured.",
    "audit_rights": "Once per calendar year Licensor may audit the books and records of "
    "Licensee relating to the Products, on fifteen days' written notice.",
    "non_compete": "During the Term the Consultant shall not compete with the Company in the "
    "business of marine navigation software anywhere in Scandinavia.",
    "termination_for_convenience": "Either party may terminate this Agreement for "
    "convenience upon one hundred and twenty days' written notice to the other party.",
    "cap_on_liability": "In no event shall either party's aggregate liability under this "
    "Agreement exceed two hundred and fifty thousand euros.",
    "source_code_escrow": "Developer shall deposit the source code of the Software with an "
    "escrow agent, for release to Customer if Developer files for bankruptcy.",
    "liquidated_damages": "For each week of delay the Contractor shall pay liquidated damages "
    "of one half of one percent of the Contract Price.",
    "most_favored_nation": "If Vendor offers any other customer more favorable prices for the "
    "Equipment, Vendor shall offer the same prices to Purchaser without delay.",
    "non_disparagement": "Neither party shall make any statement that disparages the other "
    "party, its directors or its products in any public forum.",
    "rofr_rofo_rofn": "Before selling the Brand to any third party, Owner shall grant "
    "Distributor a right of first refusal on the same terms for thirty days.",
    "change_of_control": "If Licensee undergoes a change of control, Licensor may terminate "
    "this Agreement by written notice within ninety days of learning of it.",
    "third_party_beneficiary": "The Indemnified Persons are intended third party beneficiaries "
    "of Section 14 and may enforce it directly against the Seller.",
    "no_solicit_of_employees": "For eighteen months after the Term neither party shall solicit "
    "or hire any employee of the other party who worked on the Project.",
    "renewal_term": "This Agreement shall automatically renew for successive periods of "
    "three years unless terminated in accordance with Section 11.",
    "warranty_duration": "Manufacturer warrants that each Unit will be free of defects in "
    "materials and workmanship for thirty-six months after delivery.",
    "minimum_commitment": "Retailer shall purchase a minimum of forty thousand Units in each "
    "Contract Year during the Initial Term of this Agreement.",
    "joint_ip_ownership": "All inventions conceived jointly by the parties under the Research "
    "Plan shall be jointly owned by the parties in equal undivided shares.",
}
"""Clause-like sentences written for this suite, each under the category it would
establish: an invented finding reads like a real clause, so only grounding can catch it."""


@dataclass(frozen=True)
class ContractGold(GoldCase):
    """A gold review, with the categories present in the contract that did not fit the
    schema's findings limit (first in taxonomy order kept)."""

    dropped: tuple[str, ...] = ()


def contract_gold_cases(
    dataset: Path, *, task: str = "contract_review", max_chars: int = DEFAULT_CUAD_CHARS
) -> Iterator[GoldCase | Skipped]:
    """One gold review per contract: the document the eval loader builds, and for each
    category present the first of its spans, with its offsets in that document."""
    # A contract with more categories than the schema allows keeps the first in taxonomy
    # order, and its gold answer is at the limit (see ``check_completeness``).
    limit = _limit_of(FullContractReview if task == "contract_review_full" else ContractReview)
    for line, row, spans in cuad_rows(dataset):
        name = row.get("Filename") or f"line-{line}"
        document, clauses = cuad_document(dataset, line, row, spans, max_chars)
        if not document.strip():
            yield Skipped(name, "the contract has no clause spans to build a document from")
            continue
        ordered = gold_findings(document, clauses)
        kept, dropped = ordered[:limit], tuple(f.category for f in ordered[limit:])
        answer: Review
        if task == "contract_review_full":
            found = {f.category for f in kept}
            absent = [c for c in CATEGORIES if c not in found]
            answer = FullContractReview(findings=kept, absent=absent)
        else:
            answer = ContractReview(findings=kept)
        yield ContractGold(name, document, answer, dropped)


def gold_findings(document: str, clauses: list[ClauseSpan]) -> list[Finding]:
    """A finding for every category with a span in the document, in taxonomy order."""
    first: dict[str, Finding] = {}
    for clause in sorted(clauses, key=lambda c: not _substantial(c, document)):
        if clause.category not in first:
            span = document[clause.start : clause.end]
            first[clause.category] = _finding(clause.category, span, clause.start)
    return [first[c] for c in CATEGORIES if c in first]


def _substantial(clause: ClauseSpan, document: str) -> bool:
    # CUAD marks one-word defined terms ("Producer") as parties: a gold review quotes the
    # category's first span that can stand alone (``quote_substance``), its first span only
    # when none can.
    return has_substance(clause.category, document[clause.start : clause.end])


def _finding(category: str, span: str, start: int) -> Finding:
    quote = _prefix(span, MAX_QUOTE_CHARS)
    return Finding(
        category=category,
        quote=quote,
        start=start,
        end=start + len(quote),
        risk="medium",
        rationale=CATEGORIES[category],
    )


def _prefix(text: str, max_chars: int) -> str:
    """``text`` whole if it fits, else its longest prefix ending at a word boundary."""
    if len(text) <= max_chars:
        return text
    cut = text.rfind(" ", 0, max_chars + 1)
    return text[: cut if cut > 0 else max_chars].rstrip()


def contract_mutants(case: GoldCase, rng: random.Random) -> list[Mutant]:
    """At most one mutant per class, in ``CLASSES`` order. A full review's ``absent`` list is
    kept consistent with its findings, so that ``full_coverage`` cannot catch a mutant by
    bookkeeping alone: the error is the one the mutation names."""
    answer = case.answer
    assert isinstance(answer, ContractReview | FullContractReview)
    findings = list(answer.findings)
    mutants: list[Mutant] = []
    if findings:
        i = rng.randrange(len(findings))
        rest = findings[:i] + findings[i + 1 :]
        what = f"dropped the {findings[i].category} finding"
        # Within reach of a check only where a reliable cue of the category is in the
        # contract and the review is below its limit (a full review had no room to list it).
        seen = (
            findings[i].category in RELIABLE_CUES
            and findings[i].category in cued_categories(case.document)
            and len(rest) < _limit(answer)
        )
        mutants.append(Mutant("omit_item", _with(answer, rest), what, checkable=seen))
    invented = _invented(case, findings, rng)
    if invented is not None:
        mutants.append(invented)
    found = {f.category for f in findings}
    if findings and len(found) < len(CATEGORIES):
        i = rng.randrange(len(findings))
        new = rng.choice([c for c in CATEGORIES if c not in found])
        swapped = findings[i].model_copy(update={"category": new})
        what = f"filed the {findings[i].category} quote under {new}"
        swapped_answer = _with(answer, _replace(findings, i, swapped))
        # Only a category whose vocabulary was measured reliable can say a quote is not its.
        mutants.append(
            Mutant("swapped_category", swapped_answer, what, checkable=new in FIT_REQUIRED)
        )
    long_clauses = [
        i
        for i, f in enumerate(findings)
        if f.category not in SHORT_CATEGORIES and len(_WORD.findall(f.quote)) >= TRUNCATE_MIN_WORDS
    ]
    if long_clauses:
        i = rng.choice(long_clauses)
        cut = findings[i].quote[
            : list(_WORD.finditer(findings[i].quote))[TRUNCATE_TO_WORDS - 1].end()
        ]
        short = findings[i].model_copy(update={"quote": cut, "end": findings[i].start + len(cut)})
        what = f"cut the {findings[i].category} quote to '{cut}'"
        mutants.append(Mutant("truncated_quote", _with(answer, _replace(findings, i, short)), what))
    return mutants


def _invented(case: GoldCase, findings: list[Finding], rng: random.Random) -> Mutant | None:
    """A finding under a category not found, quoting a clause the contract does not hold.
    A review at its findings limit has no room for another: the invented finding takes the
    last slot, as a model that fills its limit with an invention would."""
    found = {f.category for f in findings}
    candidates = [
        c
        for c in INVENTED_CLAUSES
        if c not in found and locate(INVENTED_CLAUSES[c], case.document) is None
    ]
    if not candidates:
        return None
    category = rng.choice(candidates)
    quote = INVENTED_CLAUSES[category]
    start = rng.randrange(max(1, len(case.document)))
    invented = Finding(
        category=category,
        quote=quote,
        start=start,
        end=start + len(quote),
        risk="medium",
        rationale=CATEGORIES[category],
    )
    answer = case.answer
    assert isinstance(answer, ContractReview | FullContractReview)
    full = len(findings) >= _limit(answer)
    kept = findings[:-1] if full else findings
    what = f"added an invented {category} finding" + (
        f" in place of the {findings[-1].category} one (the review was at its limit)"
        if full
        else ""
    )
    return Mutant("invented_item", _with(answer, [*kept, invented]), what)


def _limit(answer: Review) -> int:
    return _limit_of(type(answer))


def _limit_of(model: type[Review]) -> int:
    limit = list_limit(model, "findings")
    assert limit is not None  # the schema bounds its findings
    return limit


def _replace(findings: list[Finding], i: int, finding: Finding) -> list[Finding]:
    return [*findings[:i], finding, *findings[i + 1 :]]


def _with(answer: Review, findings: list[Finding]) -> Review:
    if isinstance(answer, FullContractReview):
        found = {f.category for f in findings}
        absent = [c for c in CATEGORIES if c not in found]
        return FullContractReview(findings=findings, absent=absent)
    return ContractReview(findings=findings)


SUITE = MutationSuite(
    task="contract_review",
    dataset_format="cuad",
    classes=CLASSES,
    gold_cases=contract_gold_cases,
    mutants=contract_mutants,
)

FULL_SUITE = MutationSuite(
    task="contract_review_full",
    dataset_format="cuad",
    classes=CLASSES,
    gold_cases=lambda dataset: contract_gold_cases(dataset, task="contract_review_full"),
    mutants=contract_mutants,
)


@dataclass(frozen=True)
class Agreement:
    """How often a rule held on the dataset: ``agreed`` of ``support`` items."""

    support: int
    agreed: int

    @property
    def rate(self) -> float:
        return self.agreed / self.support if self.support else 0.0


def measure_cues(dataset: Path, max_chars: int = DEFAULT_CUAD_CHARS) -> dict[str, Agreement]:
    """Per cue category: in how many documents a cue fires (support), and in how many of
    those the category is really there (agreed): the cue's precision."""
    tally: dict[str, list[int]] = {c: [0, 0] for c in CUES}
    for line, row, spans in cuad_rows(dataset):
        document, clauses = cuad_document(dataset, line, row, spans, max_chars)
        present = {c.category for c in clauses}
        for category in cued_categories(document):
            tally[category][0] += 1
            tally[category][1] += category in present
    return {c: Agreement(*counts) for c, counts in tally.items()}


def measure_fit(dataset: Path, max_chars: int = DEFAULT_CUAD_CHARS) -> dict[str, Agreement]:
    """Per category: how many gold quotes there are (support), and how many use a word of
    the category's vocabulary (agreed)."""
    tally: dict[str, list[int]] = {c: [0, 0] for c in CATEGORIES}
    for line, row, spans in cuad_rows(dataset):
        document, clauses = cuad_document(dataset, line, row, spans, max_chars)
        for finding in gold_findings(document, clauses):
            tally[finding.category][0] += 1
            tally[finding.category][1] += fits(finding.category, fold(finding.quote))
    return {c: Agreement(*counts) for c, counts in tally.items()}


def _print_measurements(dataset: Path) -> None:
    for title, measured in (
        ("cue precision", measure_cues(dataset)),
        ("vocabulary fit", measure_fit(dataset)),
    ):
        print(f"{title}: category, support, agreed, rate")
        for category, a in sorted(measured.items(), key=lambda kv: (-kv[1].rate, kv[0])):
            print(f"  {category:36} {a.support:4} {a.agreed:4} {a.rate:.3f}")


if __name__ == "__main__":
    import sys

    _print_measurements(Path(sys.argv[1]))
