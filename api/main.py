"""The FastAPI app: ``uvicorn api.main:app``. OpenAPI at ``/docs``."""

from __future__ import annotations

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.body_limit import BodyLimit
from api.deps import refuse_nul_in_url
from api.errors import error_response
from api.review_web import router as review_web_router
from api.routes import (
    audit,
    batches,
    deliveries,
    events,
    health,
    jobs,
    keys,
    lifecycle,
    metrics,
    openai,
    reviews,
    webhooks,
)
from api.scopes import authorize
from ponder.errors import PonderError
from ponder.logs import configure_logging
from ponder.validation import validation_problems


def create_app() -> FastAPI:
    configure_logging()
    app = FastAPI(
        title="Ponder",
        version="0.1.0",
        description="Batch reasoning with checked answers, their evidence and their cost.",
        dependencies=[Depends(refuse_nul_in_url)],
    )
    app.add_middleware(
        BodyLimit, streamed={("POST", "/v1/batches"), ("POST", f"{openai.PREFIX}/files")}
    )
    app.include_router(health.router)
    app.include_router(metrics.router)
    # Every /v1 route: the key's scope for the route, and the audit record of the access.
    scoped = [Depends(authorize)]
    app.include_router(jobs.router, dependencies=scoped)
    app.include_router(deliveries.router, dependencies=scoped)
    app.include_router(batches.router, dependencies=scoped)
    app.include_router(events.router, dependencies=scoped)
    app.include_router(webhooks.router, dependencies=scoped)
    app.include_router(lifecycle.router, dependencies=scoped)
    app.include_router(keys.router, dependencies=scoped)
    app.include_router(audit.router, dependencies=scoped)
    app.include_router(reviews.router, dependencies=scoped)
    app.include_router(openai.router, dependencies=scoped)  # errors in OpenAI's shape, below
    # The review workspace's pages: reviewer sessions (cookies), not API keys.
    app.include_router(review_web_router)

    @app.exception_handler(PonderError)
    async def _ponder_error(request: Request, exc: PonderError) -> JSONResponse:
        if _is_openai(request):
            return openai.error_response(exc.status_code, exc.message, exc.detail, exc.headers)
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Errors raised by the framework itself (unknown route, wrong method) in the same
        # shape as ours, saying what to fix.
        if _is_openai(request):
            message = _framework_message(exc)
            return openai.error_response(exc.status_code, message, {}, exc.headers)
        return JSONResponse(
            {"error": _framework_message(exc), "detail": {}},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Name the field and the problem; never echo the submitted values (may be PHI).
        problems = validation_problems(exc, skip="body")
        if _is_openai(request):
            param = ".".join(str(p) for p in exc.errors()[0]["loc"][1:]) if exc.errors() else None
            message = "invalid request: " + "; ".join(problems)
            return openai.error_response(422, message, {"param": param or None})
        return JSONResponse(
            {"error": "invalid request: " + "; ".join(problems), "detail": {"problems": problems}},
            status_code=422,
        )

    return app


def _is_openai(request: Request) -> bool:
    return request.url.path.startswith(f"{openai.PREFIX}/")


def _framework_message(exc: StarletteHTTPException) -> str:
    if exc.status_code == 404:
        return "no such route: see /docs for the API's routes"
    if exc.status_code == 405:
        return f"method not allowed on this route; allowed: {(exc.headers or {}).get('Allow', '?')}"
    return exc.detail if isinstance(exc.detail, str) else "request refused"


app = create_app()
