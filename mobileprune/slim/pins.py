"""The analysis users get: channel groups, then the groups that sizes fixed in the graph pin
down are tried by slimming, and frozen where the model's code does not follow a plan.

Why here and not in graph/: a split size or a view shape is a constant in the captured graph
whether the model's code computes it from the tensor (``x.size(1) // 2``: it follows a plan)
or holds it in a plain attribute (``self.width``: it does not). Only running the model's own
code on a slimmed copy tells them apart, and slimming is this stage. Seen before this check:
a Res2Net-style ``torch.split(x, self.width, 1)`` was analysed with prunable groups inside the
split and only ``slim`` failed ("weight of size [8, 8, 3, 3], expected input[1, 14, 56, 56]"),
so the user could prune nothing; now exactly those groups freeze, with the constant named in
the report, and the rest of the model prunes.
"""
from __future__ import annotations

import numpy as np
from torch import nn

from ..graph import Analysis
from ..graph import find_groups
from ..plan import PrunePlan
from .slimming import check_equal, slim


def analyze(model: nn.Module, example_inputs) -> Analysis:
    """Find the channel groups of ``model`` (graph.find_groups) and freeze the ones a size fixed in
    the model's code pins down (see the module docstring)."""
    analysis = find_groups(model, example_inputs)
    settle_pins(model, analysis)
    return analysis


def settle_pins(model: nn.Module, analysis: Analysis) -> list:
    """Try each free group that a pinned size touches by slimming one position (one unit) out of
    it alone; a group whose slimmed model fails or differs from the masked one is frozen, with
    the pinning op and the failure as its reason. Returns the groups frozen."""
    by_root = {r: g for g in analysis.groups for r in g.roots}
    touching: dict[int, list[str]] = {}
    for ids, why in analysis.pins:
        for r in np.unique(ids[ids >= 0]).tolist():
            g = by_root.get(r)
            if g is not None and not g.frozen and g.size > 1 and why not in touching.setdefault(g.id, []):
                touching[g.id].append(why)
    frozen = []
    for gid, whys in touching.items():
        group = analysis.groups[gid]
        plan = PrunePlan({gid: list(range(group.size - 1))}, 1, analysis.fingerprint())
        failure = _try(model, analysis, plan)
        if failure is not None:
            group.frozen = True
            group.reasons.append(f"sizes fixed in the model code ({'; '.join(whys[:2])}) do not follow "
                                 f"a pruned width: removing one channel here fails ({failure})")
            frozen.append(group)
    return frozen


def _try(model, analysis, plan) -> str | None:
    try:
        slimmed = slim(model, analysis, plan, verify=False)
        check_equal(model, slimmed, analysis, plan)
    except (RuntimeError, ValueError, IndexError) as exc:  # SlimError is a RuntimeError
        return str(exc).splitlines()[0][:200]
    return None
