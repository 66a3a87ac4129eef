"""The checks of a chat answer. They read the request from the document, so they judge an
answer the same way in a run and in a person's review."""

from __future__ import annotations

from pydantic import BaseModel

from ponder.validation import is_blank
from ponder.verify import CheckResult
from tasks.chat_completion.schema import answer_validator

MAX_FINDINGS = 5

UNCHECKED_FREE_TEXT = (
    "the request gave no JSON schema (response_format json_schema or json_object), so this "
    "free-text answer was not checked: a person reviews it"
)


def check_response_format(output: BaseModel, document: str) -> CheckResult:
    """The answer is valid for the request's JSON schema. Free text has nothing to check it
    against: it fails, so an unchecked answer never ends ``succeeded``."""
    validator = answer_validator(document)
    if validator is None:
        return CheckResult(False, 0.0, [UNCHECKED_FREE_TEXT])
    errors = sorted(
        validator.iter_errors(output.model_dump(mode="json")),
        key=lambda e: list(map(str, e.absolute_path)),
    )
    if not errors:
        return CheckResult(True, 1.0)
    return CheckResult(
        False,
        0.0,
        [
            f"{'/'.join(map(str, e.absolute_path)) or 'the answer'}: {e.message}"
            for e in errors[:MAX_FINDINGS]
        ],
    )


def check_non_empty(output: BaseModel, document: str) -> CheckResult:
    """A free-text answer says something; an answer under a schema is for the schema to judge.
    It ranks a free-text candidate with text above one without."""
    if answer_validator(document) is not None:
        return CheckResult(True, 1.0)
    content = output.model_dump().get("content")
    if isinstance(content, str) and not is_blank(content):
        return CheckResult(True, 1.0)
    return CheckResult(False, 0.0, ["the answer is empty"])
