"""The runner enables model-judge verifiers from the job's frozen verifier list, not from the
worker's own settings."""

from ponder.jobs.runner import _judges_frozen
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
