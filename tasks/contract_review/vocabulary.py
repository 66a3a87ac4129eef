"""Words a clause of each CUAD category almost always uses, taken from the category
descriptions: a quote filed under a category that holds none of its words is most likely
filed under the wrong one (``category_fit``)."""

from __future__ import annotations

import re
from functools import cache

_MONTHS = (
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
)  # fmt: skip
_DATE = (*_MONTHS, r"\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}", r"(?:19|20)\d\d\b", "dated", "day of")

# fmt: off
VOCABULARY: dict[str, tuple[str, ...]] = {
    "document_name": (
        "agreement", "contract", "amendment", "addendum", "licen", "memorandum", "terms",
        "certificate", "schedule", "form\\b", "order",
    ),
    "parties": (
        "inc\\b", "corp", "l\\.?l\\.?c\\b", "ltd", "limited", "company", "co\\b", "l\\.?p\\b",
        "plc\\b", "gmbh", "s\\.?a\\b", "n\\.?v\\b", "b\\.?v\\b", "ag\\b", "holding", "group",
        "partner", "trust", "bank", "association", "university", "part(?:y|ies)",
    ),
    "agreement_date": (
        "date", *_DATE,
    ),
    "effective_date": (
        "effective", "commence", "begin", "date", *_DATE,
    ),
    "expiration_date": (
        "expir", "term\\b", "termina", "until", "end", "period", "continu", "years?\\b",
        "months?\\b", *_DATE,
    ),
    "renewal_term": (
        "renew", "extend", "extension", "successive", "automatic", "continu", "additional",
    ),
    "notice_period_to_terminate_renewal": ("notice", "notif", "renew", "termina", "extend"),
    "governing_law": ("laws?\\b", "govern", "jurisdiction", "constru", "interpret"),
    "most_favored_nation": (
        "favou?r", "no less", "not less", "better", "lower", "most", "equal", "comparable", "same",
        "best",
    ),
    "non_compete": (
        "compet", "engage", "business", "similar", "restrict", "directly or indirectly",
        "not .{0,60}(?:sell|market|distribut|develop|manufactur)",
    ),
    "exclusivity": (
        "exclusiv", "sole", "only", "requirements",
        "not .{0,60}(?:sell|licen|purchase|distribut|appoint|grant|enter)",
    ),
    "no_solicit_of_customers": (
        "solicit", "customer", "client", "induc", "interfer", "entic", "divert",
    ),
    "competitive_restriction_exception": (
        "except", "notwithstanding", "provided", "nothing",
        "not (?:prohibit|restrict|prevent|apply|limit)", "permit", "may",
    ),
    "no_solicit_of_employees": (
        "solicit", "hire", "employ", "recruit", "induc", "personnel", "staff",
    ),
    "non_disparagement": (
        "disparag", "derogat", "negative", "defam", "reputation", "critici", "advers",
    ),
    "termination_for_convenience": (
        "termina", "cancel", "without cause", "convenience", "any reason", "withdraw",
    ),
    "rofr_rofo_rofn": ("first", "refusal", "offer", "negotiat", "option", "match"),
    "change_of_control": (
        "control", "merge", "merger", "acqui", "consolidat", "reorgani", "substantially all",
        "ownership", "sale of", "transfer", "assign", "majority", "equity", "voting",
    ),
    "anti_assignment": (
        "assign", "transfer", "delegat", "successor", "sublicen", "subcontract", "third part",
    ),
    "revenue_profit_sharing": (
        "revenue", "profit", "royalt", "percent", "%", "share", "commission", "net sales",
        "proceeds", "income", "fee",
    ),
    "price_restrictions": (
        "price", "pricing", "fee", "rate", "cost", "increase", "discount", "charge",
    ),
    "minimum_commitment": (
        "minimum", "at least", "less than", "no less", "purchase", "order", "quantit", "commit",
        "target", "forecast",
    ),
    "volume_restriction": (
        "volume", "exceed", "limit", "maximum", "in excess", "usage", "threshold", "quantit",
        "units", "cap\\b",
    ),
    "ip_ownership_assignment": (
        "own", "assign", "title", "property", "vest", "work made for hire", "works made for hire",
    ),
    "joint_ip_ownership": ("joint", "co-own", "both parties", "shared", "own", "mutual"),
    "license_grant": ("licen", "sublicen", "grant", "right to use", "authoriz", "permit"),
    "non_transferable_license": (
        "non-?transfer", "transfer", "non-?assign", "assign", "sublicen", "licen", "third part",
    ),
    "affiliate_license_licensor": ("affiliat", "subsidiar", "licen", "sublicen"),
    "affiliate_license_licensee": ("affiliat", "subsidiar", "licen", "sublicen"),
    "unlimited_all_you_can_eat_license": (
        "unlimited", "enterprise", "any number", "without limit", "royalty-free", "fully paid",
        "all\\b",
    ),
    "irrevocable_or_perpetual_license": ("irrevocab", "perpetu", "fully paid", "royalty-free"),
    "source_code_escrow": ("escrow", "source code", "deposit"),
    "post_termination_services": (
        "termina", "expir", "after", "following", "surviv", "wind", "transition", "thereafter",
        "cease", "remaining",
    ),
    "audit_rights": ("audit", "inspect", "records", "books", "examin", "review", "access", "verif"),
    "uncapped_liability": (
        "liab", "unlimited", "not apply", "exclu", "limitation", "damages", "indemnif",
    ),
    "cap_on_liability": (
        "liab", "exceed", "limit", "damages", "in no event", "maximum", "aggregate", "claim",
        "remedy", "action",
    ),
    "liquidated_damages": ("liquidated", "damages", "penalt", "fee", "pay", "compensat"),
    "warranty_duration": ("warrant", "guarantee", "defect", "period"),
    "insurance": ("insur", "assur", "cover", "polic", "underwrit"),
    "covenant_not_to_sue": (
        "sue\\b", "challenge", "contest", "claim", "action", "proceeding", "validity", "attack",
        "assert",
    ),
    "third_party_beneficiary": (
        "third", "beneficiar", "enforce", "no person", "other than the parties",
    ),
}
# fmt: on
"""Per category, the words (regular expressions over the folded quote, each matched from a
word start) at least one of which a clause of the category uses. General words a lawyer
would expect from the category's description, never phrases taken from particular items."""


FIT_MIN_AGREEMENT = 0.95
FIT_MIN_SUPPORT = 10
FIT_REQUIRED = frozenset(
    {
        "affiliate_license_licensee",
        "agreement_date",
        "anti_assignment",
        "audit_rights",
        "cap_on_liability",
        "document_name",
        "effective_date",
        "expiration_date",
        "governing_law",
        "insurance",
        "license_grant",
        "non_transferable_license",
        "notice_period_to_terminate_renewal",
        "post_termination_services",
        "renewal_term",
        "termination_for_convenience",
        "uncapped_liability",
    }
)
"""Categories whose gold quotes use a word of the vocabulary in >= ``FIT_MIN_AGREEMENT`` of
>= ``FIT_MIN_SUPPORT`` quotes: a quote without one fails ``category_fit``; for the others a
miss is a note. Measured by ``python -m tasks.contract_review.gold
../shared/eval-data/cuad/master_clauses_part1.csv`` (each category's gold quote in the 255
CUAD contracts), as quotes / with a term (agreement):

    required: expiration_date 225/225, insurance 41/41, non_transferable_license 66/66,
              notice_period_to_terminate_renewal 57/57, uncapped_liability 35/35,
              document_name 255/254, governing_law 222/221, agreement_date 233/231,
              effective_date 209/207, anti_assignment 185/183, audit_rights 78/77,
              post_termination_services 57/56, cap_on_liability 84/82,
              license_grant 126/123, termination_for_convenience 101/98,
              renewal_term 95/91 (0.958), affiliate_license_licensee 23/22 (0.957)
    advisory: non_disparagement 0.913, revenue_profit_sharing 0.910, change_of_control
              0.891, minimum_commitment 0.879, ip_ownership_assignment 0.875,
              no_solicit_of_employees 0.875, price_restrictions 0.875 (8), exclusivity
              0.839, liquidated_damages 0.824, warranty_duration 0.824,
              irrevocable_or_perpetual_license 0.818, third_party_beneficiary 0.818,
              no_solicit_of_customers 0.812, parties 0.812 (names seldom say what they
              are), joint_ip_ownership 0.800, non_compete 0.766, covenant_not_to_sue 0.733,
              rofr_rofo_rofn 0.692, competitive_restriction_exception 0.684,
              volume_restriction 0.452, most_favored_nation 0.333; too rare, whatever
              their agreement: affiliate_license_licensor 4, source_code_escrow 3,
              unlimited_all_you_can_eat_license 9
"""


@cache
def _pattern(category: str) -> re.Pattern[str]:
    terms = VOCABULARY[category]
    return re.compile("|".join(rf"(?<!\w)(?:{term})" for term in terms))


def fits(category: str, folded_quote: str) -> bool:
    """Whether a quote (folded: lower case, plain quotes, single spaces) uses at least one
    word of its category's vocabulary."""
    return _pattern(category).search(folded_quote) is not None


def describe_terms(category: str, limit: int = 6) -> str:
    """The first few terms of a category, readable: regular-expression syntax left out."""
    plain = [re.sub(r"\\b|\\|\?|\(.*|\{.*|\.\*", "", t) for t in VOCABULARY[category][:limit]]
    return ", ".join(f"'{t}'" for t in plain if t)
