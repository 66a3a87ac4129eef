"""The review workspace: server-rendered pages under ``/review`` (docs/review.md)."""

from api.review_web.routes import router

__all__ = ["router"]
