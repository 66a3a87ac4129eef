"""A/B arms: the knobs that declare them (bad ones refused with file and line), the arm chosen
from the job id at submission (stable, at its share, never over a caller's explicit choice,
batch lines too), and the per-arm report and metrics against a recount in PostgreSQL. Jobs are
submitted through the API without a worker; their ends are written as a run's would be."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from ponder import config
from ponder.cli.commands import app
from ponder.config import get_settings
from ponder.db import get_engine, session_scope
from ponder.jobs.arms import CONTROL, Arm, arm_report, choose, position
from ponder.jobs.knobs import KnobsError, KnobsStore, parse_knobs
from ponder.reviews.service import decide
from tests.conftest import queued_messages
from tests.ponder.jobs.test_knobs import knobs_in_force, write
from tests.ponder.reviews.jobs import ended_job

TASK = "medrec_extraction"
DOC = "Aspirin 81 mg daily."
KNOBS = """\
[tasks.medrec_extraction]
strategy = "best_of_n"
n = 2

[[tasks.medrec_extraction.arms]]
name = "sc6"
share = 0.25
strategy = "self_consistency"
n = 6
params = { min_support = 0.6 }
"""


@pytest.fixture
def knobs_file(tmp_path, monkeypatch):
    yield from knobs_in_force(tmp_path, monkeypatch, KNOBS)


def submit(api: Any, tenant: Any, **fields: Any) -> dict[str, Any]:
    response = api.post(
        "/v1/jobs", json={"task": TASK, "document": DOC, **fields}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    return response.json()


def rows(sql: str, **params: Any) -> list[sa.Row]:
    with get_engine().connect() as conn:
        return list(conn.execute(sa.text(sql), params))


def binomial_bounds(n: int, p: float, level: float = 0.999) -> tuple[int, int]:
    """The central ``level`` interval of Binomial(n, p): each tail below (1 - level) / 2."""
    pmf = [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]
    tail = (1 - level) / 2
    low = next(k for k in range(n + 1) if sum(pmf[: k + 1]) > tail)
    high = next(k for k in range(n, -1, -1) if sum(pmf[k:]) > tail)
    return low, high


# Choosing an arm.


def test_the_position_of_a_job_is_the_sha256_of_its_id_in_the_unit_interval():
    job_id = "0b6c4f4e-3f0c-4bde-9a57-4c1e0c3c4a10"
    expected = int(hashlib.sha256(job_id.encode()).hexdigest()[:16], 16) / 2**64
    assert position(job_id) == expected == position(job_id)
    assert all(0.0 <= position(f"job-{i}") < 1.0 for i in range(1000))


def test_arms_take_consecutive_slices_in_file_order_and_the_rest_is_control():
    first = Arm(name="a", share=0.25, n=6)
    second = Arm(name="b", share=0.25, n=8)
    for i in range(400):
        job_id = f"job-{i}"
        at = position(job_id)
        expected = first if at < 0.25 else second if at < 0.5 else None
        assert choose([first, second], job_id) is expected
        assert choose([first, second], job_id) is choose([first, second], job_id)


# The knobs.


def test_a_valid_file_gives_the_task_its_arms(tmp_path):
    path = tmp_path / "knobs.toml"
    write(path, KNOBS)
    (arm,) = parse_knobs(path).for_task(TASK).arms
    assert (arm.name, arm.share, arm.strategy, arm.n) == ("sc6", 0.25, "self_consistency", 6)
    assert arm.params == {"min_support": 0.6}


ARM = '[[tasks.medrec_extraction.arms]]\nname = "{name}"\nshare = {share}\n{rest}\n'


def arm(name: str = "x", share: float = 0.2, rest: str = "n = 6") -> str:
    return ARM.format(name=name, share=share, rest=rest)


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        (arm(rest='strategy = "guess"'), 1, "unknown strategy 'guess'"),
        (arm(rest='strategy = "refine"\nparams = { rounds = 2 }'), 1, "rounds"),
        (arm(rest="params = { max_rounds = 2 }"), 1, "name the strategy they are for"),
        (arm(rest=""), 1, "changes nothing"),
        (arm(name=CONTROL), 1, "is the jobs outside every arm"),
        (arm(share=0), 3, "greater than 0"),
        (arm(rest='model = "gpt-9"'), 1, "unknown model 'gpt-9'"),
        (arm(rest='strategy = "auto"'), 1, "needs the task's band table"),
        (arm("a", 0.6) + arm("b", 0.5), 5, "the shares add up to 1.1, above 1"),
        (arm("a", 0.2) + arm("a", 0.3), 5, "arm 'a' is named twice"),
    ],
    ids=[
        "unknown-strategy", "bad-params", "params-without-strategy", "changes-nothing",
        "named-control", "share-zero", "unknown-model", "auto-without-table",
        "shares-over-one", "duplicate-name",
    ],
)  # fmt: skip
def test_bad_arms_are_refused_with_file_line_and_reason(tmp_path, text, line, reason):
    path = tmp_path / "knobs.toml"
    write(path, text)
    with pytest.raises(KnobsError) as info:
        parse_knobs(path)
    assert str(path) in str(info.value)
    assert f"line {line}:" in str(info.value), str(info.value)
    assert reason in str(info.value)


def test_a_refused_file_keeps_the_arms_in_force(tmp_path):
    path = tmp_path / "knobs.toml"
    write(path, KNOBS)
    store = KnobsStore(path)
    assert [a.name for a in store.current().for_task(TASK).arms] == ["sc6"]
    write(path, KNOBS + arm("more", 0.9))
    assert [a.name for a in store.current().for_task(TASK).arms] == ["sc6"]
    assert store.last_error is not None and "the shares add up to" in store.last_error


# Submission.


def test_over_40_jobs_the_arm_is_the_one_of_the_job_id_at_its_share(
    api, tenant, isolated_broker, knobs_file
):
    (sc6,) = parse_knobs(knobs_file).for_task(TASK).arms
    jobs = [submit(api, tenant) for _ in range(40)]
    in_arm = 0
    for job in jobs:
        expected = "sc6" if choose([sc6], job["id"]) is sc6 else CONTROL
        assert job["arm"] == job["config"]["arm"] == expected
        shown = api.get(f"/v1/jobs/{job['id']}", headers=tenant.headers).json()
        assert shown["arm"] == expected  # stable: read back as frozen
        strategy = job["config"]["strategy"]
        if expected == "sc6":
            in_arm += 1
            assert (strategy["name"], strategy["n"]) == ("self_consistency", 6)
            assert strategy["params"]["min_support"] == 0.6
        else:
            assert (strategy["name"], strategy["n"]) == ("best_of_n", 2)
    low, high = binomial_bounds(40, 0.25)
    assert low <= in_arm <= high, (in_arm, low, high)
    assert queued_messages(isolated_broker) == 40


def test_a_callers_explicit_choice_is_never_overridden(api, tenant, isolated_broker, knobs_file):
    write(knobs_file, KNOBS.replace("share = 0.25", "share = 1.0"))
    assert submit(api, tenant)["arm"] == "sc6"  # every job left to the knobs is in the arm
    explicit = submit(api, tenant, strategy="best_of_n")
    assert explicit["arm"] is None and "arm" not in explicit["config"]
    assert explicit["config"]["strategy"]["name"] == "best_of_n"
    with_n = submit(api, tenant, n=3)
    assert with_n["arm"] is None and with_n["config"]["strategy"]["n"] == 3
    with_params = submit(api, tenant, strategy="refine", params={"max_rounds": 2})
    assert with_params["arm"] is None
    assert with_params["config"]["strategy"]["params"]["max_rounds"] == 2


def test_a_job_that_cannot_run_its_arm_runs_the_default_outside_the_experiment(
    api, tenant, isolated_broker, knobs_file
):
    # The tenant's cap refuses n=6; the job is valid as the caller sent it.
    text = KNOBS.replace("share = 0.25", "share = 1.0") + "\n[tenants.default]\nmax_n = 4\n"
    write(knobs_file, text)
    job = submit(api, tenant)
    assert job["arm"] is None
    assert (job["config"]["strategy"]["name"], job["config"]["strategy"]["n"]) == ("best_of_n", 2)


def test_an_arm_may_run_its_jobs_on_another_model_of_the_registry(
    api, tenant, isolated_broker, knobs_file, monkeypatch
):
    entry = {"kind": "vllm", "model": "", "dtype": "float32", "max_model_len": 2048}
    models = [{"name": "small", **entry}, {"name": "large", **entry}]
    monkeypatch.setenv("PONDER_MODELS", json.dumps(models))
    monkeypatch.setenv("PONDER_DEFAULT_MODEL", "small")
    config.get_settings.cache_clear()
    write(knobs_file, KNOBS.replace("share = 0.25", 'share = 1.0\nmodel = "large"'))
    job = submit(api, tenant)
    assert job["arm"] == "sc6" and job["config"]["model_requested"] == "large"
    assert submit(api, tenant, model="small")["config"]["model_requested"] == "small"


def test_batch_lines_get_the_arm_of_their_job_id(api, tenant, isolated_broker, knobs_file):
    (sc6,) = parse_knobs(knobs_file).for_task(TASK).arms
    lines = [{"custom_id": f"item-{i}", "task": TASK, "document": DOC} for i in range(8)]
    lines.append({"custom_id": "fixed", "task": TASK, "document": DOC, "strategy": "single"})
    response = api.post(
        "/v1/batches",
        content=b"".join(json.dumps(line).encode() + b"\n" for line in lines),
        headers={**tenant.headers, "content-type": "application/jsonl"},
    )
    assert response.status_code in (200, 201, 202), response.text
    found = rows("select id, custom_id, config from jobs where batch_id = :b",
                 b=response.json()["id"])  # fmt: skip
    assert len(found) == 9
    for row in found:
        if row.custom_id == "fixed":
            assert "arm" not in row.config
        else:
            assert row.config["arm"] == ("sc6" if choose([sc6], row.id) is sc6 else CONTROL)


# The report.


def end_jobs(ids: list[str], status: str, *, prompt: int, completion: int, cost: float) -> None:
    """Ended as a run ends them, as far as the counters see: status, tokens, cost."""
    with get_engine().begin() as conn:
        conn.execute(
            sa.text(
                "update jobs set status = :status, prompt_tokens = :prompt, "
                "completion_tokens = :completion, cost = :cost, finished_at = now() "
                "where id = any(:ids)"
            ),
            {"status": status, "prompt": prompt, "completion": completion, "cost": cost,
             "ids": ids},
        )  # fmt: skip


def reviewed_arm_job(tenant_id: str, arm_name: str) -> str:
    """A needs_review job of ``arm_name`` that a reviewer corrected."""
    job_id = ended_job(tenant_id)
    with get_engine().begin() as conn:
        # Into the arm with a counted column moving, as if it had been frozen at submission.
        conn.execute(
            sa.text(
                "update jobs set config = config || jsonb_build_object('arm', "
                "cast(:arm as text)), cost = 0.5 where id = :id"
            ),
            {"arm": arm_name, "id": job_id},
        )
    with session_scope() as session:
        decide(
            session=session,
            tenant_id=tenant_id,
            job_id=job_id,
            reviewer_id=None,
            api_key_id=None,
            decision="rejected",
            reason="wrong",
            settings=get_settings(),
        )
    return job_id


RECOUNT = """
select config->>'arm' as arm, count(*) as jobs,
    count(*) filter (where status in ('succeeded', 'needs_review', 'reviewed', 'failed')) as ended,
    count(*) filter (where status = 'succeeded') as verified,
    sum(prompt_tokens) as prompt, sum(completion_tokens) as completion, sum(cost) as cost
from jobs where task = :task and config ? 'arm' group by 1
"""


def test_the_per_arm_report_and_metrics_match_postgresql(api, tenant, isolated_broker, knobs_file):
    ids = [submit(api, tenant)["id"] for _ in range(40)]
    by_arm: dict[str, list[str]] = {}
    for job_id in ids:
        by_arm.setdefault(json_arm(job_id), []).append(job_id)
    assert set(by_arm) == {"sc6", CONTROL}  # an arm left empty: below 1e-5 over 40 jobs
    end_jobs(by_arm["sc6"][:3], "succeeded", prompt=100, completion=60, cost=0.02)
    end_jobs(by_arm[CONTROL][:5], "succeeded", prompt=100, completion=20, cost=0.01)
    end_jobs(by_arm[CONTROL][5:7], "needs_review", prompt=100, completion=20, cost=0.01)
    end_jobs(by_arm[CONTROL][7:8], "failed", prompt=10, completion=0, cost=0.001)
    reviewed_arm_job(tenant.tenant_id, "sc6")

    with get_engine().connect() as conn:
        report = {figures.arm: figures for figures in arm_report(conn, task=TASK)}
    recount = {row.arm: row for row in rows(RECOUNT, task=TASK)}
    assert set(report) == set(recount) == {"sc6", CONTROL}
    for name, row in recount.items():
        figures = report[name]
        assert (figures.jobs, figures.ended, figures.verified) == (
            row.jobs,
            row.ended,
            row.verified,
        )
        assert (figures.prompt_tokens, figures.completion_tokens) == (row.prompt, row.completion)
        assert figures.cost == pytest.approx(row.cost)
    assert report["sc6"].jobs == len(by_arm["sc6"]) + 1
    assert report["sc6"].verified_rate == pytest.approx(3 / 4)  # 3 succeeded, 1 reviewed
    assert report[CONTROL].verified_rate == pytest.approx(5 / 8)
    assert report["sc6"].reviews == {"rejected": 1} and report[CONTROL].reviews == {}

    samples = metric_samples(api, tenant)
    by_status = rows(
        "select config->>'arm' as arm, status, count(*) as n from jobs "
        "where task = :task and config ? 'arm' group by 1, 2",
        task=TASK,
    )
    for row in by_status:
        key = ("ponder_arm_jobs", (("arm", row.arm), ("status", row.status), ("task", TASK)))
        assert samples[key] == row.n
    assert sum(v for (name, _), v in samples.items() if name == "ponder_arm_jobs") == 41
    for name, row in recount.items():
        labels = (("arm", name), ("kind", "completion"), ("task", TASK))
        assert samples[("ponder_arm_tokens_total", labels)] == row.completion
        assert samples[("ponder_arm_cost_total", (("arm", name), ("task", TASK)))] == (
            pytest.approx(row.cost)
        )
    review_key = (("arm", "sc6"), ("decision", "rejected"), ("task", TASK))
    assert samples[("ponder_arm_reviews_total", review_key)] == 1

    output = CliRunner().invoke(app, ["arms", TASK])
    assert output.exit_code == 0, output.output
    lines = {line.split()[0]: line.split() for line in output.output.splitlines()[1:]}
    assert lines["sc6"][1:3] == ["25%", str(report["sc6"].jobs)]
    assert lines[CONTROL][1:3] == ["75%", str(report[CONTROL].jobs)]
    assert lines[CONTROL][6] == "62.5%"  # the verified rate


def json_arm(job_id: str) -> str:
    (row,) = rows("select config->>'arm' as arm from jobs where id = :id", id=job_id)
    return str(row.arm)


def metric_samples(api: Any, tenant: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = api.get("/metrics", headers=tenant.headers).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
