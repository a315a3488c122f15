"""What every cost model shares: a width configuration is a kept fraction per channel group.

Hard configurations come from a PrunePlan (kept / size); soft ones from keep-probabilities
(expected kept channels / size), so the cost is differentiable in the expected channel counts.
"""
from __future__ import annotations

from typing import Protocol

import torch

from ..graph import Analysis
from ..graph.layers import Layer, layers
from ..plan import PrunePlan


class CostModel(Protocol):
    unit: str

    def __call__(self, fractions: dict | None = None) -> torch.Tensor:
        """fractions: group id -> kept fraction (float or 0-d tensor); missing groups keep all."""
        ...


def fractions_from_plan(analysis: Analysis, plan: PrunePlan) -> dict:
    sizes = {g.id: g.size for g in analysis.groups}
    return {gid: torch.tensor(len(kept) / sizes[gid], dtype=torch.float64) for gid, kept in plan.keep.items()}


def fractions_from_probs(probs: dict) -> dict:
    """probs: group id -> tensor of keep-probabilities, one per position."""
    return {gid: p.double().mean() for gid, p in probs.items()}


class WidthMatrix:
    """Every layer's input and output width as one matrix product with the kept fractions:
    width = fixed + counts @ fractions (counts: channels of each group in that tensor)."""

    def __init__(self, layer_list: list[Layer]) -> None:
        self.groups = sorted({g for lay in layer_list for w in (lay.cin, lay.cout) for g in w.per_group})
        column = {g: j for j, g in enumerate(self.groups)}

        def matrix(side):
            fixed = torch.tensor([float(getattr(lay, side).fixed) for lay in layer_list], dtype=torch.float64)
            counts = torch.zeros(len(layer_list), len(self.groups), dtype=torch.float64)
            for i, lay in enumerate(layer_list):
                for g, n in getattr(lay, side).per_group.items():
                    counts[i, column[g]] = n
            return fixed, counts

        self.fixed_in, self.counts_in = matrix("cin")
        self.fixed_out, self.counts_out = matrix("cout")

    def __call__(self, fractions: dict | None) -> tuple[torch.Tensor, torch.Tensor]:
        fractions = fractions or {}
        if not self.groups:
            return self.fixed_in, self.fixed_out
        f = torch.stack([torch.as_tensor(fractions.get(g, 1.0), dtype=torch.float64) for g in self.groups])
        return self.fixed_in + self.counts_in @ f, self.fixed_out + self.counts_out @ f


class LayerCost:
    """Base for costs that sum a function of each priced layer."""

    unit = ""

    def __init__(self, analysis: Analysis, layer_list: list[Layer] | None = None) -> None:
        self.analysis = analysis
        self.layers = layer_list if layer_list is not None else layers(analysis)
        self.widths = WidthMatrix(self.layers)

    def __call__(self, fractions: dict | None = None) -> torch.Tensor:
        cin, cout = self.widths(fractions)
        total = torch.zeros((), dtype=torch.float64)
        for layer, ci, co in zip(self.layers, cin.unbind(), cout.unbind()):
            total = total + self.layer_cost(layer, ci, co)
        return total

    def layer_cost(self, layer: Layer, cin: torch.Tensor, cout: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError
