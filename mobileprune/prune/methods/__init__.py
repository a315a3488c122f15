"""Pruning methods behind one interface: ``run(ctx: Context) -> Outcome``, each one entry of
METHODS that carries everything the API needs to know of it (a new method is a module with a
``run`` and one ``register`` call).

gates  — learned Gumbel gates with logit predictors under a budget loss (ACPLI)
fisher — Group Fisher importance normalised by the cost a removal saves (Liu et al., ICML 2021)
l1     — group-summed L1 norm of the producers' weights, one shot (baseline)
uniform — one kept share for every prunable group, bisected to the budget (baseline)
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import fisher, gates, l1, uniform


@dataclass(frozen=True)
class MethodEntry:
    """A method as the API sees it. ``trains``: it trains the net while it prunes (it needs data
    and steps, checkpoints, and a tighter measured aim trains it again: api.TrainedRuns);
    ``freeze_bn``: its training keeps BatchNorm statistics still (the gates', gates.py);
    ``options``: the settings it reads from
    Method.options (api.prune refuses others: a misspelt setting would otherwise be ignored
    without a word)."""
    run: Callable
    trains: bool = False
    freeze_bn: bool = False
    options: tuple = ()


METHODS: dict[str, MethodEntry] = {}
SHARED_OPTIONS = ("blocks",)  # which channels form a block: every method's


def register(name: str, entry: MethodEntry) -> None:
    """Make ``name`` a method of mobileprune.prune (and of the CLI's --method)."""
    METHODS[name] = entry


register("gates", MethodEntry(gates.run, trains=True, freeze_bn=True, options=tuple(gates.DEFAULTS)))
register("fisher", MethodEntry(fisher.run, trains=True, options=fisher.OPTIONS))
register("l1", MethodEntry(l1.run, options=l1.OPTIONS))
register("uniform", MethodEntry(uniform.run))
