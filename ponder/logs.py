"""Logging setup. Log ids and counts only: never document text, prompts or extracted content."""

from __future__ import annotations

import logging
import os


def configure_logging(level: str | None = None) -> None:
    logging.basicConfig(
        level=level or os.environ.get("PONDER_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # vLLM logs prompts at DEBUG on some paths; keep it at INFO and above.
    logging.getLogger("vllm").setLevel(logging.WARNING)
