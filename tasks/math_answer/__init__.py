"""Maths word problems (GSM8K style): short working and a final number. The worked example of
docs/task-types.md: one package (schema, checks, task type), one prompt template, one line in
``tasks/registry.py``."""

from tasks.math_answer.task import TASK

__all__ = ["TASK"]
