"""``make review``: the API with the review workspace on the demo's database, and a reviewer
of the demo tenant to sign in with. For a development machine only.

The demo reviewer's password is fixed and printed: it guards demo data on 127.0.0.1, nothing
else, and the command refuses to run in production."""

from __future__ import annotations

import os
import sys

from ponder.config import get_settings
from ponder.db import session_scope
from ponder.errors import Conflict, NotFound
from ponder.reviews.accounts import create_reviewer

DEMO_TENANT = "demo"
DEMO_EMAIL = "reviewer@example.org"
DEMO_PASSWORD = "ponder-demo-reviewer"


def ensure_demo_reviewer() -> str:
    """Creates the demo tenant's reviewer when missing; returns what to tell the user."""
    try:
        with session_scope() as session:
            create_reviewer(
                session=session,
                tenant_name=DEMO_TENANT,
                email=DEMO_EMAIL,
                password=DEMO_PASSWORD,
            )
        return "created"
    except Conflict:
        return "exists"


def main() -> int:
    settings = get_settings()
    if settings.environment == "production":
        print("make review is for a development machine; refusing in production", file=sys.stderr)
        return 2
    try:
        state = ensure_demo_reviewer()
    except NotFound:
        print("no demo tenant yet: run `make demo` first, then `make review`", file=sys.stderr)
        return 1
    host = os.environ.get("PONDER_REVIEW_HOST", "127.0.0.1")
    port = int(os.environ.get("PONDER_REVIEW_PORT", "8000"))
    note = "" if state == "created" else " (the reviewer already existed)"
    print(f"review workspace: http://{host}:{port}/review")
    print(f"sign in as {DEMO_EMAIL} with password {DEMO_PASSWORD}{note}")
    print("Ctrl-C stops it.", flush=True)
    import uvicorn

    uvicorn.run("api.main:app", host=host, port=port, log_level="info")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
