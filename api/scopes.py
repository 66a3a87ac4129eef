"""Which scope each route needs, and the audit record of accesses that name a job or batch.

``authorize`` is a router dependency (api/main.py) on every ``/v1`` route: it looks the route
up in ``POLICY``; a route missing there needs ``admin`` (fail closed), and a test walks the app
so a new route is added here on purpose. Accesses whose path names a job, batch, key, delivery
or endpoint are recorded in the request's own transaction, so a refused access (a 404 for
another tenant's job) leaves no row."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from api.deps import PrincipalDep
from ponder import audit
from ponder.audit import Actor
from ponder.errors import Forbidden
from ponder.models import Scope
from ponder.tenants import Principal


@dataclass(frozen=True)
class Rule:
    scope: Scope
    action: str | None = None
    """Recorded in the audit when set (with the ids in the path); None: not recorded here
    (a list or a create records its ids in the route, once it knows them)."""


READ, SUBMIT, ADMIN = Scope.read, Scope.submit, Scope.admin

POLICY: dict[tuple[str, str], Rule] = {
    ("POST", "/v1/jobs"): Rule(SUBMIT),
    ("GET", "/v1/jobs"): Rule(READ),
    ("GET", "/v1/jobs/{job_id}"): Rule(READ, "job.read"),
    ("GET", "/v1/jobs/{job_id}/trace"): Rule(READ, "job.trace"),
    ("GET", "/v1/jobs/{job_id}/events"): Rule(READ, "job.events"),
    ("GET", "/v1/jobs/{job_id}/deliveries"): Rule(READ, "job.deliveries"),
    ("POST", "/v1/jobs/{job_id}/cancel"): Rule(SUBMIT, "job.cancel"),
    ("DELETE", "/v1/jobs/{job_id}"): Rule(ADMIN, "job.delete"),
    ("POST", "/v1/jobs/{job_id}/legal-hold"): Rule(ADMIN, "job.hold"),
    ("DELETE", "/v1/jobs/{job_id}/legal-hold"): Rule(ADMIN, "job.release"),
    ("POST", "/v1/batches"): Rule(SUBMIT),
    ("GET", "/v1/batches"): Rule(READ),
    ("GET", "/v1/batches/{batch_id}"): Rule(READ, "batch.read"),
    ("GET", "/v1/batches/{batch_id}/results"): Rule(READ, "batch.results"),
    ("GET", "/v1/batches/{batch_id}/events"): Rule(READ, "batch.events"),
    ("GET", "/v1/batches/{batch_id}/deliveries"): Rule(READ, "batch.deliveries"),
    ("POST", "/v1/batches/{batch_id}/cancel"): Rule(SUBMIT, "batch.cancel"),
    ("POST", "/v1/batches/{batch_id}/retry"): Rule(SUBMIT, "batch.retry"),
    ("DELETE", "/v1/batches/{batch_id}"): Rule(ADMIN, "batch.delete"),
    ("POST", "/v1/batches/{batch_id}/legal-hold"): Rule(ADMIN, "batch.hold"),
    ("DELETE", "/v1/batches/{batch_id}/legal-hold"): Rule(ADMIN, "batch.release"),
    ("POST", "/v1/deliveries/{delivery_id}/redeliver"): Rule(SUBMIT, "delivery.redeliver"),
    ("POST", "/v1/webhooks"): Rule(ADMIN),
    ("GET", "/v1/webhooks"): Rule(READ),
    ("GET", "/v1/webhooks/{endpoint_id}"): Rule(READ),
    ("POST", "/v1/webhooks/{endpoint_id}/rotate"): Rule(ADMIN, "webhook.rotate"),
    ("POST", "/v1/webhooks/{endpoint_id}/enable"): Rule(ADMIN, "webhook.enable"),
    ("DELETE", "/v1/webhooks/{endpoint_id}"): Rule(ADMIN, "webhook.delete"),
    ("GET", "/v1/keys"): Rule(ADMIN),
    ("POST", "/v1/keys"): Rule(ADMIN),
    ("DELETE", "/v1/keys/{key_id}"): Rule(ADMIN, "key.revoke"),
    ("GET", "/v1/audit"): Rule(ADMIN, "audit.read"),
    # The review service records its own audit rows (review.view, review.decide).
    ("GET", "/v1/reviews"): Rule(READ),
    ("GET", "/v1/reviews/stats"): Rule(READ),
    ("GET", "/v1/jobs/{job_id}/review"): Rule(READ),
    ("POST", "/v1/jobs/{job_id}/review"): Rule(SUBMIT),
    # The OpenAI-compatible surface (api/routes/openai.py records its file accesses itself).
    ("POST", "/openai/v1/files"): Rule(SUBMIT),
    ("GET", "/openai/v1/files"): Rule(READ),
    ("GET", "/openai/v1/files/{file_id}"): Rule(READ),
    ("GET", "/openai/v1/files/{file_id}/content"): Rule(READ),
    ("DELETE", "/openai/v1/files/{file_id}"): Rule(SUBMIT),
    ("POST", "/openai/v1/batches"): Rule(SUBMIT),
    ("GET", "/openai/v1/batches"): Rule(READ),
    ("GET", "/openai/v1/batches/{batch_id}"): Rule(READ, "batch.read"),
    ("POST", "/openai/v1/batches/{batch_id}/cancel"): Rule(SUBMIT, "batch.cancel"),
}
FAIL_CLOSED = Rule(ADMIN)
"""A route not in POLICY."""


def rule_for(request: Request) -> Rule:
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    return POLICY.get((request.method, path), FAIL_CLOSED)


def require_scope(principal: Principal, scope: Scope) -> None:
    if scope.value not in principal.scopes:
        raise Forbidden(
            f"this API key lacks the '{scope.value}' scope this route needs; its scopes: "
            f"{', '.join(sorted(principal.scopes))}. Use a key created with --scope {scope.value}",
            needed=scope.value,
        )


def actor_of(principal: Principal, request: Request) -> Actor:
    return Actor(
        tenant_id=principal.tenant.id,
        key_id=principal.key_id,
        address=request.client.host if request.client else None,
    )


async def authorize(request: Request, principal: PrincipalDep) -> None:
    """Refuse a key without the route's scope; queue the access's audit row on the request's
    transaction (``api.deps.get_session`` writes it just before the commit)."""
    rule = rule_for(request)
    require_scope(principal, rule.scope)
    if rule.action is None:
        return
    params = request.path_params
    target = params.get("key_id") or params.get("delivery_id") or params.get("endpoint_id")
    actor, action = actor_of(principal, request), rule.action

    def write(session: Session) -> None:
        audit.record(
            session,
            actor,
            action,
            job_id=params.get("job_id"),
            batch_id=params.get("batch_id"),
            target_id=target,
        )

    request.state.before_commit = [*getattr(request.state, "before_commit", ()), write]


def get_actor(request: Request, principal: PrincipalDep) -> Actor:
    return actor_of(principal, request)


ActorDep = Annotated[Actor, Depends(get_actor)]
"""For routes that record their own audit rows (lists, creates): the caller, as an Actor."""
