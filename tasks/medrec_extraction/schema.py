"""What a medication list answers with: one item per medication the note names, with its
dose, route, frequency, status and the note's own words. The checks and the task type both
read these models, so they live apart from either."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

Unit = Literal[
    "mg", "mcg", "g", "mL", "units", "mEq", "puffs", "drops", "sprays", "tablets", "capsules",
    "patch", "other",
]  # fmt: skip
Status = Literal["active", "new", "changed", "discontinued", "held", "allergy", "not_taking"]
"""``allergy`` and ``not_taking`` let a complete list account for a drug the note names that
the patient must not or does not take."""
Route = Literal[
    "oral", "IV", "IM", "subcutaneous", "topical", "inhaled", "sublingual", "rectal",
    "transdermal", "ophthalmic", "otic", "nasal", "other",
]  # fmt: skip
ROUTES: frozenset[str] = frozenset(get_args(Route))
"""The route vocabulary, for the check that a route is in it (an unconstrained engine can
answer outside the schema's enum)."""


class Medication(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=60)
    dose: str | None = Field(min_length=1, max_length=20)
    """A number or range ("50", "1-2"); the unit goes in ``unit``. None when the note states
    no dose for it: a guessed dose is worse than none."""
    unit: Unit | None
    """None exactly when ``dose`` is None."""
    route: Route
    frequency: str | None = Field(min_length=1, max_length=30)
    """None when the note states no frequency for it."""
    status: Status
    evidence: str = Field(min_length=1, max_length=300)
    """The note's own words about this medication."""


class MedicationList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    medications: list[Medication] = Field(max_length=10)
