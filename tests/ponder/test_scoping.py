"""Tenant scoping in one place: every query of a tenant's rows starts from ``ponder.scoping``,
so no other module compares a ``tenant_id`` by hand."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ponder.db import session_scope
from ponder.models import Batch
from ponder.scoping import readable_batches
from tests.conftest import TenantKey

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ponder", "api", "worker", "tasks")
SCOPING = ROOT / "ponder" / "scoping.py"
HAND_CHECK = re.compile(r"tenant_id\)?\s*(?:==|!=)(?!\s*col\(\w+\.id\))")
"""A ``tenant_id`` compared with a value; a join on a key column (``== col(Tenant.id)``) is not a
tenant check."""


@pytest.mark.parametrize(
    "line",
    [
        "select(Job).where(Job.tenant_id == tenant.id)",
        "if job is None or job.tenant_id != tenant.id:",
        "col(Job.tenant_id) == tenant_id,",
        "query.where(Reviewer.tenant_id==tenant_id)",
    ],
)
def test_the_check_finds_a_hand_written_tenant_comparison(line: str) -> None:
    assert HAND_CHECK.search(line)


def test_the_check_leaves_a_join_on_the_tenant_key_alone() -> None:
    assert not HAND_CHECK.search(".join(Tenant, col(ApiKey.tenant_id) == col(Tenant.id))")


def test_no_module_but_scoping_compares_a_tenant_id_by_hand() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != SCOPING
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if HAND_CHECK.search(line)
    ]
    assert found == [], "use a readable_* query of ponder.scoping instead:\n" + "\n".join(found)


def test_a_tenants_readable_batches_hold_only_its_own(
    tenant: TenantKey, other_tenant: TenantKey
) -> None:
    with session_scope() as session:
        mine = Batch(tenant_id=tenant.tenant_id)
        session.add_all([mine, Batch(tenant_id=other_tenant.tenant_id)])
        session.flush()
        found = session.exec(readable_batches(tenant.tenant_id)).all()
        assert [b.id for b in found] == [mine.id]
