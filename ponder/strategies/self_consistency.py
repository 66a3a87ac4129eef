"""``self_consistency``: n samples in one request, then a vote: per extracted item for
extraction tasks (giving a consensus output that is itself verified), else on the answer."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Hashable
from typing import Any

from annotated_types import MaxLen
from pydantic import BaseModel, ConfigDict, Field

from ponder.strategies.context import StrategyContext
from ponder.strategies.early_stop import EarlyStopParams
from ponder.strategies.selection import StrategyOutcome, outcome_from, selection_key
from ponder.strategies.verification import ScoredCandidate

NAME = "self_consistency"
DESCRIPTION = (
    "n samples in one request; a consensus of the items most samples agree on (verified), "
    "or the majority answer."
)
N_HELP = "samples that vote, drawn in one request"


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_support: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="Share of the parsed samples that must contain an item for the consensus "
        "to keep it: 0.5 keeps items at least half agree on, 0 keeps every item seen once.",
    )
    early_stop: EarlyStopParams | None = Field(
        default=None,
        description="Stop samples whose token confidence falls below the first finished "
        "ones' ({window, warmup, percentile, top_k}); stopped ones do not vote. Off by default.",
    )


def run(ctx: StrategyContext) -> StrategyOutcome:
    params = Params.model_validate(ctx.config.params)
    samples = ctx.sample(step="sample", n=ctx.config.n, early_stop=params.early_stop)
    # Best first, so an item's representative comes from the best-verified sample holding it.
    # A sample stopped early is unfinished: it never votes.
    voters = sorted(
        (c for c in samples if c.parsed is not None and not c.stopped),
        key=selection_key,
        reverse=True,
    )
    if not voters:
        ctx.event("vote", voters=0, items=[], note="no sample parsed; nothing to vote on")
        return outcome_from(samples, ctx)
    if ctx.task.items_field is None:
        return _vote_on_answers(ctx, samples, voters)
    return _vote_on_items(ctx, samples, voters, params.min_support)


def _vote_on_items(
    ctx: StrategyContext,
    samples: list[ScoredCandidate],
    voters: list[ScoredCandidate],
    min_support: float,
) -> StrategyOutcome:
    task = ctx.task
    assert task.items_field is not None and task.item_key is not None  # run() checked
    support: Counter[Hashable] = Counter()
    representative: dict[Hashable, BaseModel] = {}
    for candidate in voters:
        keys_seen: set[Hashable] = set()
        for item in getattr(candidate.parsed, task.items_field):
            key = task.item_key(item)
            if key not in keys_seen:  # a sample listing an item twice still votes once
                keys_seen.add(key)
                support[key] += 1
                representative.setdefault(key, item)
    needed = max(1, math.ceil(min_support * len(voters) - 1e-9))
    # Stable sort: among equal support, the best sample's order is kept.
    ranked = sorted(representative, key=lambda k: support[k], reverse=True)
    limit = _max_items(task.output_model, task.items_field)
    kept = [k for k in ranked if support[k] >= needed][:limit]
    table = [
        {
            "key": _label(k),
            "support": support[k],
            "kept": k in kept,
            **({} if k in kept else {"why": "support" if support[k] < needed else "limit"}),
        }
        for k in ranked
    ]
    ctx.event("vote", voters=len(voters), min_support=min_support, needed=needed, items=table)
    if ranked and not kept:
        # No agreement is not an agreed empty answer: leave the choice to the verifiers.
        return outcome_from(samples, ctx, vote="no item reached the support needed")
    best = voters[0].parsed
    assert best is not None  # voters all parsed
    # Fields besides the items (none in today's tasks) come from the best sample.
    data: dict[str, Any] = best.model_dump(mode="json")
    data[task.items_field] = [representative[k].model_dump(mode="json") for k in kept]
    consensus = ctx.record_synthetic("consensus", json.dumps(data))
    # A synthetic candidate has no logprobs, so a verifier tie would go to a sample: prefer
    # the consensus whenever it passes, since agreement is the point of this strategy.
    pool = [consensus] if consensus.passed_required else [consensus, *samples]
    return outcome_from(pool, ctx, support={_label(k): support[k] for k in kept})


def _vote_on_answers(
    ctx: StrategyContext, samples: list[ScoredCandidate], voters: list[ScoredCandidate]
) -> StrategyOutcome:
    normalise = ctx.task.normalise or (lambda parsed: parsed.model_dump_json())
    keys = [normalise(c.parsed) for c in voters]
    support = Counter(keys)
    # Ties between answers go to the one held by the best-ranked sample (voters are sorted).
    majority = max(support, key=lambda k: (support[k], -keys.index(k)))
    ctx.event(
        "vote",
        voters=len(voters),
        answers=[
            {"key": _label(k)[:200], "support": n, "kept": k == majority}
            for k, n in support.most_common()
        ],
    )
    chosen = [c for c, k in zip(voters, keys, strict=True) if k == majority]
    return outcome_from(chosen, ctx, support=support[majority], voters=len(voters))


def _max_items(model: type[BaseModel], field: str) -> int | None:
    return next(
        (m.max_length for m in model.model_fields[field].metadata if isinstance(m, MaxLen)), None
    )


def _label(key: Any) -> str:
    """A readable, order-independent string of a voting key, for the trace."""
    if isinstance(key, frozenset):
        return "; ".join(sorted(_label(k) for k in key))
    if isinstance(key, tuple):
        return " | ".join(_label(k) for k in key)
    return str(key)
