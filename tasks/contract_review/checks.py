"""The checks of a contract review: each takes the parsed review and the contract, and says
which findings fail and why."""

from __future__ import annotations

import re

from ponder.prompts import render
from ponder.tasktypes import list_limit
from ponder.verify import AskYesNo, CheckResult
from tasks.common.grounding import normalise_text, shorten
from tasks.common.locate import MAX_EDIT_RATIO, FoldedText, Location, fold, locate
from tasks.contract_review.coverage import RELIABLE_CUES, cued_categories
from tasks.contract_review.schema import Finding, FullContractReview, Review
from tasks.contract_review.taxonomy import CATEGORIES
from tasks.contract_review.vocabulary import FIT_REQUIRED, VOCABULARY, describe_terms, fits

JUDGE_TEMPLATE = "prompts/contract_review/judge.j2"
JUDGE_THRESHOLD = 0.5
"""P(yes) at or above which the judge holds that a quote establishes its category."""


def _label(finding: Finding) -> str:
    return f"{finding.category}: quote '{shorten(finding.quote)}'"


def _locations(output: Review, document: str) -> list[Location | None]:
    folded = FoldedText(document)
    return [locate(f.quote, document, folded) for f in output.findings]


def check_quote_grounding(output: Review, document: str) -> CheckResult:
    """Every quote occurs: exactly, after folding case, whitespace and typography, or
    near-exactly (within the edit ratio; recorded, and scored by how near)."""
    if not output.findings:
        return CheckResult(True, 1.0)
    failures: list[str] = []
    notes: list[str] = []
    score = 0.0
    for finding, where in zip(output.findings, _locations(output, document), strict=True):
        if where is None:
            failures.append(f"{_label(finding)} does not occur in the document")
            continue
        score += 1 - where.edit_ratio
        if where.how == "near-exact":
            notes.append(
                f"{_label(finding)} occurs near-exactly at {where.start}-{where.end} "
                f"(edit ratio {where.edit_ratio:.3f}, at most {MAX_EDIT_RATIO})"
            )
    return CheckResult(not failures, score / len(output.findings), failures + notes)


SHORT_CATEGORIES = frozenset(
    {"document_name", "parties", "agreement_date", "effective_date", "expiration_date"}
)
"""Categories stated in a few words (a title, a name, a date); the rest are clauses."""
MIN_WORDS_SHORT = 2
MIN_WORDS_CLAUSE = 5
_TOKEN = re.compile(r"\w+")


def words_needed(category: str) -> int:
    return MIN_WORDS_SHORT if category in SHORT_CATEGORIES else MIN_WORDS_CLAUSE


def has_substance(category: str, quote: str) -> bool:
    """Whether a quote is long enough to establish its category (see ``quote_substance``)."""
    return len(_TOKEN.findall(quote)) >= words_needed(category) and any(
        ch.isalpha() for ch in quote
    )


def check_quote_substance(output: Review, document: str) -> CheckResult:
    """A quote long enough to establish its category: a clause takes a sentence, so at least
    five words; a title, party or date at least two, with a letter among them. Grounding
    alone lets "CANCEL" or ", " through: they occur in most contracts and establish
    nothing. (A date written only in digits, "9/24/2018", fails too: a false alarm measured
    on CUAD and left as it is, since this issue loosens no existing check.)"""
    if not output.findings:
        return CheckResult(True, 1.0)
    findings = []
    for finding in output.findings:
        if not has_substance(finding.category, finding.quote):
            words = len(_TOKEN.findall(finding.quote))
            findings.append(
                f"{_label(finding)} has {words} word(s); a {finding.category} quote needs at "
                f"least {words_needed(finding.category)}"
            )
    return CheckResult(not findings, 1 - len(findings) / len(output.findings), findings)


def check_offsets(output: Review, document: str) -> CheckResult:
    """The given offsets hold the quote. Records where each grounded quote really is, so a
    reader can find it even when the model's offsets are wrong."""
    located = [
        (f, where)
        for f, where in zip(output.findings, _locations(output, document), strict=True)
        if where is not None
    ]
    if not located:
        return CheckResult(True, 1.0)
    failures: list[str] = []
    notes: list[str] = []
    for finding, where in located:
        given = document[finding.start : finding.end]
        if (finding.start, finding.end) == (where.start, where.end) or (
            given.strip() and fold(given) == fold(finding.quote)
        ):
            notes.append(f"{finding.category}: quote at {where.start}-{where.end} ({where.how})")
        else:
            failures.append(
                f"{finding.category}: offsets {finding.start}-{finding.end} do not hold the "
                f"quote; it is at {where.start}-{where.end} ({where.how})"
            )
    return CheckResult(not failures, 1 - len(failures) / len(located), failures + notes)


def check_category_vocabulary(output: Review, document: str) -> CheckResult:
    # The schema enforces this when decoding is constrained; an unconstrained engine may not.
    categories = [f.category for f in output.findings] + list(_absent(output))
    if not categories:
        return CheckResult(True, 1.0)
    unknown = [c for c in categories if c not in CATEGORIES]
    findings = [f"category '{category}' is not in the taxonomy" for category in unknown]
    return CheckResult(not unknown, 1 - len(unknown) / len(categories), findings)


def check_no_duplicates(output: Review, document: str) -> CheckResult:
    """No clause is listed twice: the same category with the same quote, or with a quote
    that contains the other."""
    if not output.findings:
        return CheckResult(True, 1.0)
    keys = [(f.category, normalise_text(f.quote)) for f in output.findings]
    findings = []
    repeated = set()
    for i, (category, quote) in enumerate(keys):
        for j in range(i):
            other_category, other = keys[j]
            if j in repeated or category != other_category:
                continue
            if quote == other or quote in other or other in quote:
                repeated.add(i)
                how = "twice" if quote == other else "twice, one quote inside the other"
                findings.append(f"{category}: quote '{shorten(quote)}' is listed {how}")
                break
    return CheckResult(not repeated, 1 - len(repeated) / len(keys), findings)


def check_nonempty_rationale(output: Review, document: str) -> CheckResult:
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


def _absent(output: Review) -> tuple[str, ...]:
    """The categories a full review judged absent; a plain review judges none."""
    return tuple(output.absent) if isinstance(output, FullContractReview) else ()


def check_completeness(output: Review, document: str) -> CheckResult:
    """A category whose cue phrase occurs in the contract, but which the review neither
    found nor (in a full review) judged absent after looking, is a likely miss; one judged
    absent despite its cue is flagged the same way. Only a category whose cue was measured
    reliable (``RELIABLE_CUES``) fails the review; the others are recorded as possible
    misses. All of them lower the score. A review already at its findings limit had no room
    for more: its misses are recorded and scored, but do not fail it."""
    cues = cued_categories(document)
    if not cues:
        return CheckResult(True, 1.0)
    found = {f.category for f in output.findings}
    absent = set(_absent(output))
    failures: list[str] = []
    notes: list[str] = []
    for category, cue in cues.items():
        if category in found:
            continue
        verdict = "judged absent" if category in absent else "not reported"
        where = f"'{shorten(cue.phrase, 60)}' at {cue.start}-{cue.end}"
        if category in RELIABLE_CUES:
            failures.append(f"likely miss: {category} {verdict}, but {where} suggests it")
        else:
            notes.append(
                f"possible miss (advisory, the cue is not reliable enough to fail): "
                f"{category} {verdict}, but {where} suggests it"
            )
    score = 1 - (len(failures) + len(notes)) / len(cues)
    limit = _max_findings(output)
    if failures and limit is not None and len(output.findings) >= limit:
        note = f"the review is at its limit of {limit} findings; likely misses not failed"
        return CheckResult(True, score, [note, *failures, *notes])
    return CheckResult(not failures, score, failures + notes)


def check_category_fit(output: Review, document: str) -> CheckResult:
    """Each quote uses a word of its category's vocabulary: an audit clause says audit,
    books or records. A quote filed under the wrong category seldom uses that category's
    words. Fails only for categories whose gold quotes were measured to use them
    (``FIT_REQUIRED``); for the others a miss is a note."""
    checked = [f for f in output.findings if f.category in VOCABULARY]
    if not checked:
        return CheckResult(True, 1.0)
    failures: list[str] = []
    notes: list[str] = []
    for finding in checked:
        if fits(finding.category, fold(finding.quote)):
            continue
        line = (
            f"{_label(finding)} uses none of the words of a {finding.category} clause "
            f"(expected one of {describe_terms(finding.category)}, ...)"
        )
        if finding.category in FIT_REQUIRED:
            failures.append(line)
        else:
            notes.append(f"advisory: {line}")
    score = 1 - (len(failures) + len(notes)) / len(checked)
    return CheckResult(not failures, score, failures + notes)


def _max_findings(output: Review) -> int | None:
    return list_limit(type(output), "findings")


def check_full_coverage(output: Review, document: str) -> CheckResult:
    """A full review accounts for every category once: found, or listed as absent."""
    found = {f.category for f in output.findings}
    absent = _absent(output)
    both = sorted(found & set(absent))
    missing = sorted(set(CATEGORIES) - found - set(absent))
    twice = sorted({c for c in absent if absent.count(c) > 1})
    findings = [f"{c} is both found and listed as absent" for c in both]
    findings += [f"{c} is listed as absent {absent.count(c)} times" for c in twice]
    if missing:
        findings.append(f"{len(missing)} categories are neither found nor absent: {missing}")
    problems = len(both) + len(missing) + len(twice)
    return CheckResult(not findings, max(0.0, 1 - problems / len(CATEGORIES)), findings)


def check_judge(output: Review, document: str, ask_yes_no: AskYesNo) -> CheckResult:
    """The engine, constrained to yes or no, judges whether each quote establishes its
    category; scored by P(yes) from the logprobs."""
    if not output.findings:
        return CheckResult(True, 1.0)
    failures: list[str] = []
    notes: list[str] = []
    total = 0.0
    for finding in output.findings:
        prompt = render(
            JUDGE_TEMPLATE,
            category=finding.category,
            description=CATEGORIES.get(finding.category, ""),
            quote=finding.quote,
        )
        p = ask_yes_no(prompt)
        total += p
        line = f"{_label(finding)}: judge P(yes) = {p:.2f}"
        (notes if p >= JUDGE_THRESHOLD else failures).append(line)
    return CheckResult(not failures, total / len(output.findings), failures + notes)
