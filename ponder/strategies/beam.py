"""``beam``: step-level beam search over a reasoning chain, each partial chain scored by the
model's own yes/no judgement, then the best chain finished into the schema."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from ponder.engines.base import p_yes
from ponder.prompts import render
from ponder.strategies.budget import BudgetExhausted
from ponder.strategies.context import StrategyContext
from ponder.strategies.selection import StrategyOutcome, outcome_from

NAME = "beam"
DESCRIPTION = (
    "Beam search over reasoning steps scored by the model's P(yes) self-judgement; the best "
    "chain is finished into the schema with n samples."
)
N_HELP = "answers sampled from the best chain, in one request"
STEP_TEMPLATE = "prompts/strategies/beam_step.j2"
JUDGE_TEMPLATE = "prompts/strategies/beam_judge.j2"
ANSWER_TEMPLATE = "prompts/strategies/final_answer.j2"


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    width: int = Field(default=2, ge=1, le=8, description="Partial chains kept after each step.")
    expansions: int = Field(
        default=3, ge=1, le=8, description="Next steps sampled per kept chain, in one request."
    )
    depth: int = Field(default=4, ge=1, le=12, description="Most reasoning steps per chain.")
    step_tokens: int = Field(
        default=64, ge=16, le=256, description="Most tokens per step; a step ends at a newline."
    )


@dataclass(frozen=True)
class Chain:
    steps: tuple[str, ...]
    score: float
    parent: int = 0
    """Index in the previous beam of the chain this one extends."""


def run(ctx: StrategyContext) -> StrategyOutcome:
    params = Params.model_validate(ctx.config.params)
    steps: tuple[str, ...] = ()
    # On a retry whose finish is recorded, the search that led to it need not be paid again.
    if not ctx.recorded("finish"):
        # The search must leave room to finish the longest chain with n full answers.
        finish_cost = (
            ctx.budget.estimate_prompt_tokens(ctx.follow_up("", render(ANSWER_TEMPLATE)))
            + params.depth * params.step_tokens
            + ctx.config.n * ctx.config.max_tokens
        )
        with ctx.budget.reserving(finish_cost):
            steps = _search(ctx, params).steps
    messages = ctx.follow_up("\n".join(steps), render(ANSWER_TEMPLATE)) if steps else None
    finished = ctx.sample(step="finish", n=ctx.config.n, messages=messages)
    return outcome_from(finished, ctx, chain=list(steps))


def _search(ctx: StrategyContext, params: Params) -> Chain:
    beam = [Chain((), 1.0)]
    try:
        for depth in range(1, params.depth + 1):
            expanded = _expand(ctx, params, depth, beam)
            if not expanded:
                ctx.event("beam_step", depth=depth, expansions=[], note="no chain extended")
                break
            scored = [
                Chain(c.steps, _judge(ctx, f"judge-{depth}-{i}", c.steps), c.parent)
                for i, c in enumerate(expanded)
            ]
            # Stable sort: equal scores keep the order they were sampled in.
            order = sorted(range(len(scored)), key=lambda i: scored[i].score, reverse=True)
            kept = order[: params.width]
            ctx.event(
                "beam_step",
                depth=depth,
                expansions=[
                    {
                        "parent": c.parent,
                        "text": c.steps[-1][:200],
                        "score": round(c.score, 4),
                        "kept": i in kept,
                    }
                    for i, c in enumerate(scored)
                ],
            )
            beam = [scored[i] for i in kept]
    except BudgetExhausted as exc:
        # The budget held back for the finish is untouched: stop searching and finish the
        # best chain so far.
        ctx.event("search_stopped", reason=str(exc), depth_reached=len(beam[0].steps))
    return beam[0]


def _expand(ctx: StrategyContext, params: Params, depth: int, beam: list[Chain]) -> list[Chain]:
    """Each kept chain extended ``expansions`` ways in one request; empty and repeated steps
    are dropped, since they add nothing to judge."""
    system, user = ctx.task.messages(ctx.document)
    out: list[Chain] = []
    for parent, chain in enumerate(beam):
        prompt = render(STEP_TEMPLATE, task_prompt=user["content"], steps=chain.steps)
        result = ctx.generate(
            step=f"expand-{depth}-{parent}",
            messages=(system, {"role": "user", "content": prompt}),
            n=params.expansions,
            max_tokens=params.step_tokens,
            stop=("\n",),
        )
        seen: set[str] = set()
        for sample in result.samples:
            text = sample.text.strip()
            if text and text not in seen:
                seen.add(text)
                out.append(Chain((*chain.steps, text), 0.0, parent))
    return out


def _judge(ctx: StrategyContext, step: str, steps: tuple[str, ...]) -> float:
    """The model's P(yes) that the partial chain is correct and on track."""
    system, user = ctx.task.messages(ctx.document)
    prompt = render(JUDGE_TEMPLATE, task_prompt=user["content"], steps=steps)
    result = ctx.generate(
        step=step,
        messages=(system, {"role": "user", "content": prompt}),
        choice=("yes", "no"),
        top_logprobs=5,
        max_tokens=2,
        temperature=0.0,
    )
    return p_yes(result.samples[0]) if result.samples else 0.0
