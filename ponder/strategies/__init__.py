"""Strategies: one module each, one signature ``run(ctx) -> StrategyOutcome``, and this
explicit registry (no discovery, no global state mutated per job).

A strategy module defines ``NAME``, ``DESCRIPTION``, a pydantic ``Params`` model (bounded
fields, ``extra="forbid"``), ``run(ctx)`` and optionally ``N_HELP`` (what ``n`` means to it);
``ctx.config.params`` holds the validated parameters as a dict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from ponder.strategies import (
    adaptive,
    auto,
    beam,
    best_of_n,
    extended_reasoning,
    refine,
    self_consistency,
    single,
)
from ponder.strategies.context import StrategyContext
from ponder.strategies.selection import StrategyOutcome


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Strategy:
    name: str
    description: str
    run: Callable[[StrategyContext], StrategyOutcome]
    params_model: type[BaseModel] = NoParams
    fixed_n: int | None = None
    """Strategies that always draw a set number of samples per request."""
    n_help: str = "samples per request"
    """What ``n`` means to this strategy, for ``ponder strategies`` and error messages."""

    def parameter_help(self) -> list[str]:
        out = [] if self.fixed_n else [f"n ({self.n_help})"]
        for name, field in self.params_model.model_fields.items():
            out.append(
                f"{name}={field.get_default(call_default_factory=True)!r}"
                + (f" ({field.description})" if field.description else "")
            )
        return out

    def validate_params(self, params: dict[str, Any] | None) -> dict[str, Any]:
        return self.params_model.model_validate(params or {}).model_dump()


def _strategy(module: Any, **kw: Any) -> Strategy:
    return Strategy(
        module.NAME,
        module.DESCRIPTION,
        module.run,
        getattr(module, "Params", NoParams),
        n_help=getattr(module, "N_HELP", "samples per request"),
        **kw,
    )


STRATEGIES: dict[str, Strategy] = {
    single.NAME: _strategy(single, fixed_n=1),
    best_of_n.NAME: _strategy(best_of_n),
    self_consistency.NAME: _strategy(self_consistency),
    extended_reasoning.NAME: _strategy(extended_reasoning),
    refine.NAME: _strategy(refine),
    beam.NAME: _strategy(beam),
    adaptive.NAME: _strategy(adaptive),
    auto.NAME: _strategy(auto),
}
