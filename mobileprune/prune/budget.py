"""The budget: what the pruned model may cost, in the unit of the chosen cost model.

Given as a share of the original model's cost (``"50%"``) or as an absolute value in the cost
model's unit (ms for LatencyCost, kFPP for FlopsCost, M elements for MemoryCost). Checked
before anything is trained or written: a budget the model already meets, or one below what the
frozen groups and one block per group allow, is refused with the figures that decide it.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import MobilepruneError


class BudgetError(MobilepruneError, ValueError):
    """A budget that cannot or need not be met."""


@dataclass
class Budget:
    value: float  # in the cost model's unit
    unit: str
    original: float  # the unpruned model's cost
    asked: str  # as the user gave it

    @property
    def share(self) -> float:
        return self.value / self.original

    def to_dict(self) -> dict:
        return {"value": self.value, "unit": self.unit, "original": self.original, "share": self.share,
                "asked": self.asked}


def resolve(budget, unit: str, original: float, smallest: float) -> Budget:
    """``budget``: "50%" (of ``original``) or a number in ``unit``. ``smallest``: the cost with
    every prunable group at one block (what pruning can reach at most)."""
    asked = str(budget).strip()
    try:
        if asked.endswith("%"):
            share = float(asked[:-1]) / 100
            if not 0 < share:
                raise ValueError
            value = share * original
        else:
            value = float(asked)
    except ValueError:
        raise BudgetError(f"bad budget {asked!r}: give a share of the original cost like '50%' or a "
                          f"positive number in {unit}") from None
    if value <= 0:
        raise BudgetError(f"bad budget {asked!r}: it must be positive")
    if value >= original:
        raise BudgetError(f"the budget {value:.4g} {unit} is at or above the original model's cost "
                          f"{original:.4g} {unit}: it already fits, nothing to prune (the model is kept as it is)")
    if value < smallest:
        raise BudgetError(f"the budget {value:.4g} {unit} is below the smallest cost pruning can reach, "
                          f"{smallest:.4g} {unit} ({100 * smallest / original:.1f}% of the original "
                          f"{original:.4g} {unit}) with every prunable group at one block and the frozen "
                          f"groups whole: raise the budget or use a smaller block")
    return Budget(value, unit, original, asked)
