"""Strategies: one module each, one signature ``run(ctx) -> StrategyOutcome``, and this
explicit registry (no discovery, no global state mutated per job).

A strategy module defines ``NAME``, ``DESCRIPTION``, a pydantic ``Params`` model (bounded
fields, ``extra="forbid"``) and ``run(ctx)``; ``ctx.config.params`` holds the validated
parameters as a dict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from ponder.strategies import best_of_n, single
from ponder.strategies.base import StrategyContext, StrategyOutcome


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

    def parameter_help(self) -> list[str]:
        out = [] if self.fixed_n else ["n (samples per request)"]
        for name, field in self.params_model.model_fields.items():
            out.append(
                f"{name}={field.default!r}"
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
        **kw,
    )


STRATEGIES: dict[str, Strategy] = {
    single.NAME: _strategy(single, fixed_n=1),
    best_of_n.NAME: _strategy(best_of_n),
}
