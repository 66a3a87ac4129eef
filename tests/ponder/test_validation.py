"""The one formatter of validation errors: ``loc: msg`` per error, never the input."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from ponder.validation import validation_problems


class Inner(BaseModel):
    dose: int


class Item(BaseModel):
    task: str
    inner: Inner


def errors_of(value: object) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        Item.model_validate(value)
    return caught.value


def test_each_problem_names_its_field_path_and_the_problem() -> None:
    problems = validation_problems(errors_of({"task": "x", "inner": {"dose": "PATIENT SECRET"}}))
    assert problems == [
        "inner.dose: Input should be a valid integer, unable to parse string as an integer"
    ]


def test_the_submitted_value_is_never_repeated() -> None:
    problems = validation_problems(
        errors_of({"task": 1234567, "inner": {"dose": "PATIENT SECRET"}})
    )
    assert len(problems) == 2
    assert not any("PATIENT SECRET" in p or "1234567" in p for p in problems)


def test_an_error_about_the_whole_object_is_named_as_the_caller_says() -> None:
    assert validation_problems(errors_of("not an object"), whole="line") == [
        "line: Input should be a valid dictionary or instance of Item"
    ]
    assert validation_problems(errors_of("not an object"))[0].startswith(": ")


def test_a_skipped_location_part_is_left_out() -> None:
    class Body(BaseModel):
        body: Item

    with pytest.raises(ValidationError) as caught:
        Body.model_validate({"body": {"task": "x", "inner": {}}})
    assert validation_problems(caught.value, skip="body") == ["inner.dose: Field required"]
