"""A field-level diff of two answers: one ``{path, before, after}`` per leaf that changed, the
path in dotted form (``medications.0.dose``), so a reviewer's correction reads field by field."""

from __future__ import annotations

from typing import Any

MISSING = None
"""A field absent on one side reads as None on that side."""


def field_diff(before: Any, after: Any, path: str = "") -> list[dict[str, Any]]:
    if isinstance(before, dict) and isinstance(after, dict):
        changes: list[dict[str, Any]] = []
        for key in list(before) + [k for k in after if k not in before]:
            changes += field_diff(before.get(key), after.get(key), _join(path, str(key)))
        return changes
    if isinstance(before, list) and isinstance(after, list):
        changes = []
        for i in range(max(len(before), len(after))):
            changes += field_diff(
                before[i] if i < len(before) else MISSING,
                after[i] if i < len(after) else MISSING,
                _join(path, str(i)),
            )
        return changes
    if before == after:
        return []
    return [{"path": path, "before": before, "after": after}]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
