"""A cap on every request body, applied before a route sees it: FastAPI reads a JSON body
whole into memory whatever its size. Routes that stream their upload to disk under a limit of
their own (the batch upload) are left to it."""

from __future__ import annotations

from collections.abc import Collection

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response
from ponder.config import get_settings
from ponder.errors import PayloadTooLarge


class BodyLimit:
    def __init__(self, app: ASGIApp, *, streamed: Collection[tuple[str, str]] = ()) -> None:
        self.app = app
        self.streamed = frozenset(streamed)
        """(method, path) of the routes that enforce their own limit while streaming."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) in self.streamed:
            await self.app(scope, receive, send)
            return
        limit = get_settings().limits.max_request_bytes
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            refusal = PayloadTooLarge(f"request body is {declared} bytes; the limit is {limit}")
            await error_response(refusal)(scope, receive, send)
            return
        # Read the body here (at most `limit` bytes are kept), then hand it on unchanged.
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                refusal = PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
                await error_response(refusal)(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body: Message | None = {"type": "http.request", "body": b"".join(chunks)}

        async def replay() -> Message:
            nonlocal body
            if body is None:
                return await receive()  # after the body: the disconnect, when it comes
            message, body = body, None
            return message

        await self.app(scope, replay, send)
