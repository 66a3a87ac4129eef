"""What a contract review answers with: one finding per clause found, quoted with its
offsets, and in a full review the categories judged absent. The checks and the task types
both read these models, so they live apart from either."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from tasks.contract_review.taxonomy import CATEGORIES

MAX_OFFSET = 100_000
"""Above the longest document any task accepts (``limits.max_document_chars``)."""

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
    start: int = Field(ge=0, le=MAX_OFFSET)
    """Character offset of the quote's first character in the contract."""
    end: int = Field(ge=0, le=MAX_OFFSET)
    """Character offset just past the quote's last character."""
    risk: Literal["low", "medium", "high"]
    rationale: str = Field(max_length=200)
    """Not required non-empty here, so ``nonempty_rationale`` can score it instead."""


class ContractReview(BaseModel):
    model_config = ConfigDict(extra="forbid")

    findings: list[Finding] = Field(max_length=8)


class FullContractReview(BaseModel):
    model_config = ConfigDict(extra="forbid")

    findings: list[Finding] = Field(max_length=12)
    absent: list[CategoryId] = Field(max_length=len(CATEGORIES))
    """Every category looked for and judged not to be in the contract."""


Review = ContractReview | FullContractReview
"""Either review; every check reads both."""
