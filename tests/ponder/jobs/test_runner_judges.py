"""The runner enables model-judge verifiers from the job's frozen verifier list, not from the
worker's own settings."""

from ponder.config import Settings, get_settings
from ponder.jobs.runner import _judges_frozen
from ponder.jobs.service import JobRequest, frozen_config
from tasks.contract_review import TASK
from tasks.medrec_extraction import TASK as MEDREC


def test_judges_run_when_the_frozen_list_names_them():
    config = {"verifiers": ["schema", *TASK.verifier_names(judges=True)]}
    assert _judges_frozen(TASK, config)


def test_judges_stay_off_when_the_job_was_submitted_without_them():
    assert not _judges_frozen(TASK, {"verifiers": ["schema", *TASK.verifier_names()]})
    assert not _judges_frozen(TASK, {})


def test_a_task_without_judges_never_runs_any():
    assert not _judges_frozen(MEDREC, {"verifiers": ["schema", "judge"]})


def _frozen_verifiers(settings: Settings) -> list[str]:
    request = JobRequest(task=TASK.name, document="The parties agree.", strategy="best_of_n")
    return frozen_config(request, settings, tenant_name="acme")["verifiers"]


def test_a_job_freezes_the_judges_only_when_its_settings_enable_them_for_the_task():
    base = get_settings()
    off = base.model_copy(update={"tasks": base.tasks.model_copy(update={"judge_verifiers": []})})
    on = base.model_copy(
        update={"tasks": base.tasks.model_copy(update={"judge_verifiers": [TASK.name]})}
    )
    judges = set(TASK.verifier_names(judges=True)) - set(TASK.verifier_names())
    assert judges, "the contract task declares model judges"
    assert judges.isdisjoint(_frozen_verifiers(off))
    assert judges <= set(_frozen_verifiers(on))
