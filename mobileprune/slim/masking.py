"""``masked(model, analysis, plan)``: the reference a slimmed model must equal.

Where the zeroing happens: at the consumers. For every pruned channel position, the input
columns of every consumer (conv/linear weight along its input-channel dim; for a linear after a
flatten, every feature of that channel) are set to zero. Nothing else changes: producers still
compute the pruned channels, but no kept output can see them, because every op the analysis
lets a pruned channel pass through works per channel (BN, activations, pooling, joins,
concat, reshapes) and ops that mix channels other than consumers (LayerNorm over channels,
softmax/mean over channels, matmul) freeze the channels they touch.
Zeroing at the consumer, not the producer, is what makes this exact: sigmoid(0) != 0, so a
zeroed producer would still leak into a squeeze-excite gate or a hard-sigmoid branch.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..graph import Analysis
from ..plan import PrunePlan


def masked(model: nn.Module, analysis: Analysis, plan: PrunePlan) -> nn.Module:
    removed = plan.removed(analysis)
    out = copy.deepcopy(model)
    state = dict(out.named_parameters())
    state.update(dict(out.named_buffers()))
    with torch.no_grad():
        for c in analysis.cuts:
            if c.role != "consumer":
                continue
            drop = np.nonzero(removed(c.ids))[0]
            if len(drop):
                state[c.fqn].index_fill_(c.dim, torch.as_tensor(drop), 0.0)
    return out
