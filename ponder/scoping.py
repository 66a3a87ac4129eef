"""Tenant scoping in one place: for each entity, the base query of the rows a tenant may read.
Every service starts from one of these and narrows it, so a lookup by id finds only the
caller's row and another tenant's reads as missing (a 404); no other module compares a
``tenant_id`` by hand (``tests/ponder/test_scoping.py`` checks)."""

from __future__ import annotations

from typing import TypeVar

from sqlmodel import col, select
from sqlmodel.sql.expression import SelectOfScalar

from ponder.models import (
    ApiKey,
    AuditEvent,
    Batch,
    Job,
    Notification,
    OpenAIBatch,
    OpenAIFile,
    Review,
    Reviewer,
    WebhookEndpoint,
)

Owned = TypeVar(
    "Owned",
    ApiKey,
    AuditEvent,
    Batch,
    Job,
    Notification,
    OpenAIBatch,
    OpenAIFile,
    Review,
    Reviewer,
    WebhookEndpoint,
)


def _of_tenant(model: type[Owned], tenant_id: str) -> SelectOfScalar[Owned]:
    return select(model).where(col(model.tenant_id) == tenant_id)


def readable_jobs(tenant_id: str) -> SelectOfScalar[Job]:
    """The tenant's jobs, deleted ones included (their rows say when and by whom)."""
    return _of_tenant(Job, tenant_id)


def readable_batches(tenant_id: str) -> SelectOfScalar[Batch]:
    return _of_tenant(Batch, tenant_id)


def readable_notifications(tenant_id: str) -> SelectOfScalar[Notification]:
    return _of_tenant(Notification, tenant_id)


def readable_endpoints(tenant_id: str) -> SelectOfScalar[WebhookEndpoint]:
    """The tenant's webhook endpoints that were not deleted (a deleted one is gone to it)."""
    return _of_tenant(WebhookEndpoint, tenant_id).where(col(WebhookEndpoint.deleted_at).is_(None))


def readable_reviewers(tenant_id: str) -> SelectOfScalar[Reviewer]:
    return _of_tenant(Reviewer, tenant_id)


def readable_reviews(tenant_id: str) -> SelectOfScalar[Review]:
    return _of_tenant(Review, tenant_id)


def readable_audit_events(tenant_id: str) -> SelectOfScalar[AuditEvent]:
    return _of_tenant(AuditEvent, tenant_id)


def readable_keys(tenant_id: str) -> SelectOfScalar[ApiKey]:
    return _of_tenant(ApiKey, tenant_id)


def readable_openai_files(tenant_id: str) -> SelectOfScalar[OpenAIFile]:
    return _of_tenant(OpenAIFile, tenant_id)


def readable_openai_batches(tenant_id: str) -> SelectOfScalar[OpenAIBatch]:
    return _of_tenant(OpenAIBatch, tenant_id)
