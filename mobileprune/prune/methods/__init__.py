"""Pruning methods behind one interface: ``run(ctx: Context) -> Outcome``.

gates  — learned Gumbel gates with logit predictors under a budget loss (ACPLI)
fisher — Group Fisher importance normalised by the cost a removal saves (Liu et al., ICML 2021)
l1     — group-summed L1 norm of the producers' weights, one shot (baseline)
uniform — one kept share for every prunable group, bisected to the budget (baseline)
"""
from . import fisher, gates, l1, uniform

METHODS = {"gates": gates.run, "fisher": fisher.run, "l1": l1.run, "uniform": uniform.run}
TRAINED = {"gates", "fisher"}  # need data and steps
# The settings each method reads from ``options`` (api.prune refuses others: a misspelt setting
# would otherwise be ignored without a word); "blocks" (which channels form a block) is every method's.
OPTIONS = {"gates": tuple(gates.DEFAULTS), "fisher": fisher.OPTIONS, "l1": l1.OPTIONS, "uniform": ()}
SHARED_OPTIONS = ("blocks",)
