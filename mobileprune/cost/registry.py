"""The cost models by name, one registry: what a budget can price ("latency", "flops", "memory",
and any model registered here). A new cost model is a class with a ``unit`` and a
``__call__(fractions)`` (base.CostModel) and one ``register`` call; ``mobileprune.prune``'s
``Target(cost=...)``, ``predict(cost=...)`` and the CLI's ``--cost`` take it from then on."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import MobilepruneError
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


class CostError(MobilepruneError, ValueError):
    """A cost asked for by a name not registered, or without the profile it prices with."""


def make(kind: str, analysis, inputs: CostInputs):
    """The cost model ``kind`` of ``analysis`` (refused, saying what to give, when unknown or
    when it needs a profile and ``inputs`` has none)."""
    entry = COSTS.get(kind)
    if entry is None:
        raise CostError(f"unknown cost {kind!r}: one of {', '.join(COSTS)}")
    if entry.needs_profile and inputs.profile is None:
        raise CostError(f"a {kind} cost needs a device profile (--profile device_profiles/NAME.csv); or price "
                        "in FLOPs (--cost flops, cost='flops') or memory (--cost memory)")
    return entry.make(analysis, inputs)


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
