"""Generic chat completions (the OpenAI-compatible ``/v1/chat/completions`` line kind): the
request's messages as the prompt, its JSON schema as the answer's check."""

from tasks.chat_completion.task import TASK

__all__ = ["TASK"]
