from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ponder import config
from ponder.jobs.knobs import knobs_store


@pytest.fixture
def qa_rate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[float], None]]:
    """Set the medrec task's ``qa_sample_rate`` in a knobs file the settings point at."""
    path = tmp_path / "knobs.toml"

    def set_rate(rate: float) -> None:
        path.write_text(f"[tasks.medrec_extraction]\nqa_sample_rate = {rate}\n")
        monkeypatch.setenv("PONDER_KNOBS_FILE", str(path))
        config.get_settings.cache_clear()
        knobs_store.cache_clear()

    yield set_rate
    config.get_settings.cache_clear()
    knobs_store.cache_clear()
