"""Baseline: the L1 norm of each block's weights, summed over every coupled producer (the
convs, linears and norms whose output channels the block is), one shot, no data.

Norms of different layers are on different scales, so each block's mean norm per position is
divided by its group's mean: blocks compete across groups by how they compare with their own
group (the usual "global" L1 ranking, e.g. Torch-Pruning's normalised group importance)."""
from __future__ import annotations

import numpy as np

from ..context import Context, Outcome
from ..select import floor_of_share

OPTIONS = ("floor",)  # each group keeps at least this share of its blocks where the budget allows (select.py)


def run(ctx: Context) -> Outcome:
    return Outcome(magnitude(ctx.blocks, ctx.model), info={"normalised": "per group mean"},
                   floor=floor_of_share(ctx.blocks, float(ctx.options.get("floor", 0.0))))


def magnitude(blocks, model) -> np.ndarray:
    """Each block's L1 norm over its coupled producers, per position, over its group's mean."""
    of_root = blocks.block_of_roots()
    params = dict(model.named_parameters())
    score = np.zeros(blocks.total)
    for cut in blocks.analysis.cuts:
        if cut.role != "producer" or cut.fqn not in params:
            continue
        w = params[cut.fqn].detach()
        per_index = w.abs().sum(dim=[d for d in range(w.dim()) if d != cut.dim]) if w.dim() > 1 else w.abs()
        ids = np.asarray(cut.ids).reshape(-1)
        for r, v in zip(ids.tolist(), per_index.double().tolist()):
            b = of_root.get(r)
            if b is not None:
                score[b] += v
    importance = np.zeros(blocks.total)
    for gb in blocks.groups:
        o = blocks.offsets[gb.group.id]
        per_position = score[o:o + gb.n] / gb.sizes()
        importance[o:o + gb.n] = per_position / max(per_position.mean(), 1e-12)
    return importance
