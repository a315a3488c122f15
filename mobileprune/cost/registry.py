"""The cost models by name, one registry: what a budget can price ("latency", "flops", "memory",
and any model registered here). A new cost model is a class with a ``unit`` and a
``__call__(fractions)`` (base.CostModel) and one ``register`` call; ``mobileprune.prune``'s
``Target(cost=...)`` and the CLI's ``--cost`` take it from then on."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .flops import FlopsCost
from .latency import LatencyCost
from .memory import MemoryCost


@dataclass(frozen=True)
class CostInputs:
    """What a cost model may be built from besides the analysis: a device ``profile`` and the
    name it calibrated the model under (``model_key``); ``measure``, a callback measuring the
    latency rows the profile lacks (devices/measuring.on_demand); ``block``, the pruning block
    (rows measured on demand at its multiples)."""
    profile: object = None
    model_key: str | None = None
    measure: Callable | None = None
    block: int = 1


@dataclass(frozen=True)
class CostEntry:
    """``make(analysis, inputs: CostInputs) -> CostModel``; ``needs_profile``: it prices with a
    device profile, and pruning refuses it without one."""
    make: Callable
    needs_profile: bool = False


COSTS: dict[str, CostEntry] = {}


def register(name: str, entry: CostEntry) -> None:
    """Make ``name`` a cost a budget can be given in (refused if taken)."""
    if name in COSTS:
        raise ValueError(f"a cost model named {name!r} is registered already")
    COSTS[name] = entry


def unregister(name: str) -> None:
    COSTS.pop(name, None)


register("latency", CostEntry(lambda analysis, i: LatencyCost(analysis, i.profile, model_key=i.model_key,
                                                               measure=i.measure, measure_step=i.block),
                              needs_profile=True))
register("flops", CostEntry(lambda analysis, i: FlopsCost(analysis)))
register("memory", CostEntry(lambda analysis, i: MemoryCost(analysis)))
