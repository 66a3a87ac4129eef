"""The embedded SmolLM2-135M made to look like a reasoning model, for tests of vLLM's reasoning
parsers on this machine (no reasoning model can be fetched here).

SmolLM2's vocabulary has no ``<think>`` tokens, so vLLM's ``deepseek_r1`` parser refuses its
tokenizer. This copy keeps the weights (linked, not copied) and renames two special tokens the
model never needs, ``<empty_output>`` and ``<jupyter_output>``, to ``<think>`` and ``</think>``
(non-special, as in DeepSeek-R1's tokenizer, so they stay in the text). Its chat template opens
``<think>`` after the assistant turn as DeepSeek-R1's does: the model starts inside its
thinking, and vLLM's ``thinking_token_budget`` forces ``</think>`` when the budget is spent (the
tiny model would not write it by itself); structured output then applies to the answer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ponder import config

RENAMED = {"<empty_output>": "<think>", "<jupyter_output>": "</think>"}
WEIGHTS = ("model.safetensors", "config.json", "generation_config.json")


def build_thinking_model(target: Path) -> Path:
    """The copy in ``target`` (created); returns it. Takes well under a second."""
    source = Path(config.get_settings().model_path)
    target.mkdir(parents=True, exist_ok=True)
    for name in WEIGHTS:
        if not (target / name).exists():
            os.symlink(source / name, target / name)
    tokenizer = json.loads((source / "tokenizer.json").read_text())
    for added in tokenizer["added_tokens"]:
        if added["content"] in RENAMED:
            added["content"] = RENAMED[added["content"]]
            added["special"] = False
    vocab = tokenizer["model"]["vocab"]
    for old, new in RENAMED.items():
        vocab[new] = vocab.pop(old)
    (target / "tokenizer.json").write_text(json.dumps(tokenizer))
    (target / "tokenizer_config.json").write_text((source / "tokenizer_config.json").read_text())
    template = (source / "chat_template.jinja").read_text()
    opened = template.replace("'<|im_start|>assistant\n'", "'<|im_start|>assistant\n<think>\n'")
    assert opened != template, "the embedded model's chat template changed"
    (target / "chat_template.jinja").write_text(opened)
    return target
