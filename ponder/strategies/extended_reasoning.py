"""``extended_reasoning``: a thinking phase under its own token budget, then the answer under
the output schema conditioned on it; the thinking is traced apart from the answer.

A reasoning model (an engine with a vLLM reasoning parser) does both in one request the
engine's way: vLLM ends each sample's thinking at ``thinking_token_budget``, applies the
schema to the answer after it, and its parser separates the two. A plain model keeps the two
phases (a thinking call, then answers conditioned on it)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ponder.prompts import render
from ponder.strategies.context import StrategyContext
from ponder.strategies.selection import StrategyOutcome, outcome_from
from ponder.strategies.thinking import split_thinking
from ponder.strategies.verification import ScoredCandidate
from ponder.verify import SCHEMA_VERIFIER

NAME = "extended_reasoning"
DESCRIPTION = (
    "Think first (own token budget, traced apart), then n answers under the schema; "
    "answers once more without the thinking if no answer parses."
)
N_HELP = "answers sampled after the thinking, in one request"
THINK_TEMPLATE = "prompts/strategies/think.j2"
ANSWER_TEMPLATE = "prompts/strategies/final_answer.j2"
MIN_THINKING_TOKENS = 64
"""Below this, thinking cannot say much; the strategy answers directly instead."""


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    thinking_tokens: int = Field(
        default=1024,
        ge=MIN_THINKING_TOKENS,
        le=32768,
        description="Most tokens the thinking phase may use; fewer when the job's budget "
        "must keep room for the answer.",
    )


def run(ctx: StrategyContext) -> StrategyOutcome:
    params = Params.model_validate(ctx.config.params)
    if ctx.reasoning_parser is not None:
        return _think_and_answer(ctx, params.thinking_tokens)
    if ctx.recorded("answer"):
        # An earlier attempt thought and answered; its thinking is in that attempt's trace.
        answers = ctx.sample(step="answer", n=ctx.config.n)
    else:
        thinking = _think(ctx, params.thinking_tokens)
        if thinking is None:
            return outcome_from(_answer_plain(ctx), ctx, thinking="skipped")
        messages = ctx.follow_up(thinking, render(ANSWER_TEMPLATE))
        answers = ctx.sample(step="answer", n=ctx.config.n, messages=messages)
    if any(c.parsed is not None for c in answers):
        return outcome_from(answers, ctx)
    # The thinking may have pulled the answer off the schema (or used up its tokens).
    ctx.event(
        "recover",
        reason="no answer parsed after thinking; answering once without it",
        findings=[
            f for v in answers[0].verdicts if v.verifier == SCHEMA_VERIFIER for f in v.findings
        ]
        if answers
        else [],
    )
    return outcome_from([*answers, *_answer_plain(ctx)], ctx, recovered=True)


def _think_and_answer(ctx: StrategyContext, thinking_tokens: int) -> StrategyOutcome:
    """n samples that each think (at most the affordable budget; the engine enforces it) and
    then answer under the schema; the thinking is traced and charged per sample."""
    messages = ctx.task.messages(ctx.document)
    budget = _affordable_model_thinking(ctx, messages, thinking_tokens)
    if budget < MIN_THINKING_TOKENS:
        ctx.event("thinking", skipped=True, reason="the budget leaves no room to think and answer")
        return outcome_from(_answer_unthinking(ctx), ctx, thinking="skipped")
    answers = ctx.sample(step="answer", n=ctx.config.n, thinking_token_budget=budget)
    if any(c.parsed is not None for c in answers):
        return outcome_from(answers, ctx, thinking_token_budget=budget)
    ctx.event(
        "recover",
        reason="no answer parsed after thinking; answering once without thinking",
        thinking_token_budget=budget,
    )
    return outcome_from([*answers, *_answer_unthinking(ctx)], ctx, recovered=True)


def _affordable_model_thinking(
    ctx: StrategyContext, messages: tuple[dict[str, str], ...], thinking_tokens: int
) -> int:
    """Thinking tokens T per sample such that n samples of T thinking and a full answer each
    fit the budget after the prompt."""
    remaining = ctx.budget.remaining()
    if remaining is None:
        return thinking_tokens
    spare = remaining - ctx.budget.estimate_prompt_tokens(messages)
    return min(thinking_tokens, spare // ctx.config.n - ctx.config.max_tokens)


def _answer_unthinking(ctx: StrategyContext) -> list[ScoredCandidate]:
    # A thinking budget of 0: vLLM ends the thinking at once and the schema applies.
    return ctx.sample(step="answer-plain", n=ctx.config.n, thinking_token_budget=0)


def _think(ctx: StrategyContext, thinking_tokens: int) -> str | None:
    """Free reasoning about the document, no schema; None when there is no room for it."""
    system, user = ctx.task.messages(ctx.document)
    messages = (
        system,
        {"role": "user", "content": render(THINK_TEMPLATE, task_prompt=user["content"])},
    )
    max_tokens = _affordable_thinking(ctx, messages, thinking_tokens)
    if max_tokens < MIN_THINKING_TOKENS:
        ctx.event("thinking", skipped=True, reason="the budget leaves no room to think and answer")
        return None
    result = ctx.generate(step="think", messages=messages, max_tokens=max_tokens, thinking=True)
    sample = result.samples[0]
    # A reasoning model wraps its thinking in <think>; whatever follows is reasoning too.
    hidden, visible = split_thinking(sample.text)
    text = "\n\n".join(part for part in (hidden, visible.strip()) if part)
    ctx.event(
        "thinking",
        step="think",
        text=text,
        tokens=sample.completion_tokens,
        max_tokens=max_tokens,
        finish_reason=sample.finish_reason,
        think_section=hidden is not None,
    )
    return text or None


def _affordable_thinking(
    ctx: StrategyContext, messages: tuple[dict[str, str], ...], thinking_tokens: int
) -> int:
    """Thinking tokens T such that thinking (prompt + T) and then n full answers (prompt + T
    + n * max_tokens) both fit the budget: the answer must never be starved by the thinking."""
    remaining = ctx.budget.remaining()
    if remaining is None:
        return thinking_tokens
    answer_prompt = ctx.budget.estimate_prompt_tokens(ctx.follow_up("", render(ANSWER_TEMPLATE)))
    spare = (
        remaining
        - ctx.budget.estimate_prompt_tokens(messages)
        - answer_prompt
        - ctx.config.n * ctx.config.max_tokens
    )
    return min(thinking_tokens, spare // 2)


def _answer_plain(ctx: StrategyContext) -> list[ScoredCandidate]:
    # A <think> section inside an answer is traced and charged as thinking by ctx.sample.
    return ctx.sample(step="answer-plain", n=ctx.config.n)
