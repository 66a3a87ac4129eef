"""One typed public contract: every ``/v1`` answer has a typed schema in ``/openapi.json``,
and the JSON submit, the multipart form, a batch line and a nightly run take the fields of
one ``JobBase``, so a field added there is accepted everywhere."""

from __future__ import annotations

from typing import Any

import pytest

from api.schemas import JOB_FORM_JSON_FIELDS, JOB_FORM_SCHEMA, BatchCreate, JobCreate
from ponder.batches.upload import BatchItem
from ponder.config import NightlyRunSettings
from ponder.jobs.contract import JobBase, JobContent, JobNotify, JobOptions
from ponder.jobs.service import JobRequest
from tests.api.test_jobs_bad_input import assert_nothing_changed, job_rows

DOC = "Metoprolol 50 mg twice daily."
REF = "#/components/schemas/"


def fields(model: Any) -> set[str]:
    return set(model.model_fields)


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    from api.main import app

    return app.openapi()


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        assert schema["$ref"].startswith(REF), schema
        schema = spec["components"]["schemas"][schema["$ref"].removeprefix(REF)]
    return schema


def success_schemas(spec: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(method, path, media type) -> schema of each 2xx answer with a body, on /v1."""
    found = {}
    for path, operations in spec["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                if not code.startswith("2") or code == "204":
                    continue
                assert response.get("content"), f"{method} {path} {code} declares no body"
                for media, body in response["content"].items():
                    found[(method.upper(), path, media)] = body.get("schema", {})
    return found


def test_every_v1_success_answer_declares_a_typed_schema(spec):
    schemas = success_schemas(spec)
    assert len(schemas) > 30  # the walk saw the routes
    free_form = set()
    for where, schema in schemas.items():
        assert schema, f"{where}: empty response schema"
        # A list names its items' model; a map per key (per task) names its values' model.
        target = resolve(spec, schema.get("items", schema.get("additionalProperties", schema)))
        if not target.get("properties") and target.get("type") in (None, "object"):
            free_form.add(where)
    assert free_form == set(), "responses without named fields"


def ref_of(schema: dict[str, Any]) -> str:
    """The model a property names, through ``X | None`` and ``list[X]``."""
    for option in schema.get("anyOf", [schema]):
        option = option.get("items", option)
        if "$ref" in option:
            return str(option["$ref"].removeprefix(REF))
    raise AssertionError(f"no model named in {schema}")


@pytest.mark.parametrize(
    ("method", "path", "media", "model"),
    [
        ("POST", "/v1/jobs", "application/json", "JobPublic"),
        ("GET", "/v1/jobs/{job_id}", "application/json", "JobPublic"),
        ("GET", "/v1/jobs/{job_id}/trace", "application/json", "TracePublic"),
        ("GET", "/v1/batches/{batch_id}", "application/json", "BatchPublic"),
        ("GET", "/v1/batches/{batch_id}/results", "application/jsonl", "BatchResultLine"),
    ],
)
def test_job_trace_batch_and_results_routes_name_their_models(spec, method, path, media, model):
    assert ref_of(success_schemas(spec)[(method, path, media)]) == model


def test_result_trace_and_result_line_are_typed_down_to_their_parts(spec):
    components = spec["components"]["schemas"]
    job, trace = components["JobPublic"]["properties"], components["TracePublic"]["properties"]
    line = components["BatchResultLine"]["properties"]
    assert ref_of(job["result"]) == "JobResult"
    result = components["JobResult"]["properties"]
    assert ref_of(result["selected"]) == "CandidateSummary"
    assert ref_of(result["failing_checks"]) == "FailingCheck"
    assert ref_of(result["review"]) == "ReviewRecord"
    assert ref_of(trace["candidates"]) == "TraceCandidate"
    assert ref_of(components["TraceCandidate"]["properties"]["verdicts"]) == "TraceVerdict"
    assert ref_of(trace["selection"]) == "Selection"
    assert ref_of(trace["steps"]) == "TraceStep"
    assert ref_of(line["result"]) == "JobResult"
    assert ref_of(line["error"]) == "BatchItemError"


def test_a_field_of_jobbase_reaches_json_multipart_batch_line_and_nightly():
    base = fields(JobBase)
    # JobBase is its groups plus what a batch sets once for all its items: a field added
    # elsewhere would skip a way in.
    once = {"priority", "complete_by"}
    assert base == fields(JobOptions) | fields(JobContent) | fields(JobNotify) | once
    assert fields(JobCreate) == base
    assert fields(JobRequest) == base
    assert set(JOB_FORM_SCHEMA["properties"]) == base - {"document"} | {"file"}
    # A batch sets priority and notification targets once, for every line.
    assert fields(BatchItem) == base - fields(JobNotify) - once | {"custom_id"}
    # ... and may set the result cache for the lines that do not say theirs.
    assert fields(BatchCreate) & base == fields(JobNotify) | once | {"metadata", "cache"}
    # A nightly run reads each file as the document and sets the report's targets.
    nightly_job_fields = fields(NightlyRunSettings) & base
    assert nightly_job_fields == fields(JobOptions) | fields(JobNotify)


def test_the_form_reads_every_json_object_field_as_json_text():
    assert JOB_FORM_JSON_FIELDS == {"metadata", "params"}
    for name in JOB_FORM_JSON_FIELDS:
        assert JOB_FORM_SCHEMA["properties"][name]["type"] == "string"


def upload(api: Any, tenant: Any, **form: str) -> Any:
    return api.post(
        "/v1/jobs",
        data={"task": "medrec_extraction", **form},
        files={"file": ("note.txt", DOC.encode(), "text/plain")},
        headers=tenant.headers,
    )


def test_multipart_submit_accepts_params_seed_and_budget_tokens(api, tenant, isolated_broker):
    response = upload(
        api, tenant, strategy="refine", params='{"max_rounds": 2}', seed="7", budget_tokens="9000"
    )
    assert response.status_code == 201, response.text
    strategy = response.json()["config"]["strategy"]
    assert strategy["params"]["max_rounds"] == 2
    assert (strategy["seed"], strategy["budget_tokens"]) == (7, 9000)
    assert job_rows() == 1


@pytest.mark.parametrize(
    ("form", "phrase"),
    [
        ({"params": "max_rounds=2"}, "params must be a JSON object"),
        ({"params": "[2]"}, "params: Input should be a valid dictionary"),
        ({"strategy": "refine", "params": '{"max_rounds": 0}'}, "max_rounds"),
        ({"seed": "seven"}, "seed: Input should be a valid integer"),
        ({"seed": "-1"}, "seed: Input should be greater than or equal to 0"),
        ({"budget_tokens": "0"}, "budget_tokens: Input should be greater than or equal to 1"),
    ],
)
def test_multipart_bad_params_seed_or_budget_is_422_naming_the_field(
    api, tenant, isolated_broker, form, phrase
):
    assert_nothing_changed(upload(api, tenant, **form), 422, phrase, isolated_broker)
