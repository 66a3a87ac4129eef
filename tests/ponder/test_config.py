"""Settings refuse combinations that would break a guarantee."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ponder.config import Settings


def test_a_visibility_timeout_below_the_job_time_limit_is_refused():
    with pytest.raises(ValidationError, match="visibility_timeout_s must exceed"):
        Settings(
            environment="development",
            broker={"visibility_timeout_s": 600},
            worker={"job_time_limit_s": 3600},
        )


def test_the_fault_suite_may_set_a_short_visibility_timeout_under_test_only():
    settings = Settings(environment="test", broker={"visibility_timeout_s": 4})
    assert settings.broker.visibility_timeout_s == 4
    with pytest.raises(ValidationError, match="visibility_timeout_s must exceed"):
        Settings(
            environment="production",
            broker={"visibility_timeout_s": 4},
            notify={"webhook_allow_hosts": []},
        )


def test_webhooks_to_private_hosts_are_refused_in_production():
    with pytest.raises(ValidationError, match="webhook_allow_hosts must be empty"):
        Settings(environment="production", notify={"webhook_allow_hosts": ["127.0.0.1"]})


def test_a_nightly_run_report_goes_to_exactly_one_address():
    import pytest
    from pydantic import ValidationError

    from ponder.config import NightlyRunSettings

    run = {"name": "n", "cron": "0 2 * * *", "tenant": "t", "inbox": "/tmp", "task": "math_answer"}
    with pytest.raises(ValidationError, match="exactly one address"):
        NightlyRunSettings(**run, email="a,b,c@example.org")
    assert NightlyRunSettings(**run, email="ops@example.org").email == "ops@example.org"
