"""Coverage heuristics for contract review: cue phrases that suggest a clause category is
present, so a review that leaves a cued category out is flagged as a likely miss.

Cues are deliberately specific ("governed by", "for convenience"): a cue that fires on most
contracts would flag every review and teach nothing. A miss fails ``completeness`` only for
the categories whose cue was measured reliable (``RELIABLE_CUES``); the rest are notes."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tasks.common.locate import FoldedText

_S = r"[^.;]{0,100}"
"""Up to 100 characters within one sentence, between the words of a cue."""

CUES: dict[str, tuple[str, ...]] = {
    "parties": (r"by and between",),
    "agreement_date": (r"entered into (?:as of|on)", r"dated as of"),
    "effective_date": (r"effective (?:as of|date)",),
    "renewal_term": (
        r"automatically (?:be )?renew",
        r"renew(?:ed|s|al)? for (?:an? )?(?:additional|successive)",
    ),
    "notice_period_to_terminate_renewal": (
        r"notice of (?:its )?(?:intent(?:ion)? )?(?:not to renew|non-?renewal)",
    ),
    "governing_law": (r"governed by(?: and construed in accordance with)? the laws? of",),
    "most_favored_nation": (r"most favou?red", r"no less favou?rable (?:terms|prices?|pricing)"),
    "non_compete": (r"non-?compet", r"not" + _S + r"\bcompete\b"),
    "exclusivity": (r"(?<!non-)(?<!non )\bexclusive (?:right|licen[cs]e|distributor|supplier)",),
    "no_solicit_of_customers": (r"solicit" + _S + r"\b(?:customers?|clients?)\b",),
    "no_solicit_of_employees": (r"solicit" + _S + r"\bemploy", r"\bhire" + _S + r"\bemployees?"),
    "non_disparagement": (r"disparag",),
    "termination_for_convenience": (
        r"for convenience",
        r"terminat" + _S + r"without cause",
        r"for any reason or no reason",
    ),
    "rofr_rofo_rofn": (r"right of first (?:refusal|offer|negotiation)",),
    "change_of_control": (r"change (?:of|in) control",),
    "anti_assignment": (
        r"(?:may|shall|will) not" + _S + r"\bassign",
        r"\bassign" + _S + r"without" + _S + r"consent",
    ),
    "revenue_profit_sharing": (r"(?:revenue|profit)s? shar",),
    "price_restrictions": (
        r"(?:may|shall|will) not (?:increase|raise) (?:the |its )?(?:prices?|fees)",
    ),
    "minimum_commitment": (r"minimum (?:purchase|order|quantity|commitment|annual)",),
    "ip_ownership_assignment": (r"hereby (?:irrevocably )?assigns?", r"works? made for hire"),
    "joint_ip_ownership": (r"jointly own",),
    "license_grant": (r"hereby grants?" + _S + r"licen[cs]e",),
    "non_transferable_license": (r"non-?transferable", r"non-?sublicen[cs]able"),
    "irrevocable_or_perpetual_license": (r"(?:irrevocable|perpetual)" + _S + r"licen[cs]e",),
    "source_code_escrow": (r"source code escrow", r"escrow agent"),
    "audit_rights": (r"\baudit\b", r"inspect" + _S + r"\b(?:books|records)\b"),
    "cap_on_liability": (
        r"liability" + _S + r"(?:shall|will) not exceed",
        r"limitation of liability",
        r"(?:aggregate|total|maximum|entire) liability" + _S + r"\b(?:exceed|limited to)",
        r"in no event" + _S + r"\bliab" + _S + r"\b(?:exceed|limited to)",
    ),
    "liquidated_damages": (r"liquidated damages",),
    "insurance": (r"\binsurance\b",),
    "covenant_not_to_sue": (r"covenants? not to sue", r"agrees? not to sue"),
    "third_party_beneficiary": (r"third[- ]party beneficiar",),
}
"""Cue phrases (regular expressions over the folded document) per category."""

RELIABLE_MIN_PRECISION = 0.95
RELIABLE_MIN_SUPPORT = 10
RELIABLE_CUES = frozenset(
    {
        "anti_assignment",
        "audit_rights",
        "cap_on_liability",
        "governing_law",
        "ip_ownership_assignment",
        "license_grant",
        "no_solicit_of_employees",
        "non_compete",
        "non_transferable_license",
        "renewal_term",
        "rofr_rofo_rofn",
        "termination_for_convenience",
    }
)
"""Categories whose cue, where it fires, means the category really is in the contract: cue
precision >= ``RELIABLE_MIN_PRECISION`` over >= ``RELIABLE_MIN_SUPPORT`` documents where it
fired. Measured by ``python -m tasks.contract_review.gold
../shared/eval-data/cuad/master_clauses_part1.csv`` (255 CUAD contracts, documents of 6000
characters as the eval builds them), as documents the cue fired in / of those with the
category in the gold / precision:

    reliable:  governing_law 84/84, renewal_term 45/45, audit_rights 43/43,
               termination_for_convenience 27/27, ip_ownership_assignment 23/23,
               cap_on_liability 19/19, rofr_rofo_rofn 13/13, non_compete 11/11,
               anti_assignment 153/152 (0.993), non_transferable_license 48/46 (0.958),
               license_grant 64/61 (0.953), no_solicit_of_employees 21/20 (0.952)
    too imprecise: effective_date 154/146 (0.948), exclusivity 36/34 (0.944),
               irrevocable_or_perpetual_license 16/15 (0.938), insurance 45/40 (0.889),
               non_disparagement 15/13 (0.867), change_of_control 40/34 (0.850),
               no_solicit_of_customers 11/6 (0.545)
    too rare (precision 1.0 unless noted): notice_period_to_terminate_renewal 7,
               agreement_date 6, joint_ip_ownership 8, liquidated_damages 6,
               minimum_commitment 8, revenue_profit_sharing 5, third_party_beneficiary 8,
               source_code_escrow 2, parties 1, covenant_not_to_sue 1 (0.0),
               most_favored_nation 0, price_restrictions 0
"""

_COMPILED = {category: tuple(re.compile(cue) for cue in cues) for category, cues in CUES.items()}


@dataclass(frozen=True)
class Cue:
    category: str
    phrase: str
    """The words that matched, as they read in the document."""
    start: int
    end: int
    """Offsets of the match in the original document."""


def cued_categories(document: str, folded: FoldedText | None = None) -> dict[str, Cue]:
    """The first cue found in the document for each category that has one."""
    folded = folded or FoldedText(document)
    found: dict[str, Cue] = {}
    for category, patterns in _COMPILED.items():
        for pattern in patterns:
            match = pattern.search(folded.text)
            if match is not None and match.end() > match.start():
                start, end = folded.original_span(match.start(), match.end())
                found[category] = Cue(category, document[start:end], start, end)
                break
    return found
