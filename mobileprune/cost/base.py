"""What every cost model shares: a width configuration is a kept fraction per channel group.

Hard configurations come from a PrunePlan (kept / size); soft ones from keep-probabilities
(expected kept channels / size), so the cost is differentiable in the expected channel counts.
"""
from __future__ import annotations

from typing import Protocol

import torch

from ..graph import Analysis
from ..graph.layers import Layer, Width, layers
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


def width(w: Width, fractions: dict | None) -> torch.Tensor:
    total = torch.tensor(float(w.fixed), dtype=torch.float64)
    for g, n in w.per_group.items():
        f = (fractions or {}).get(g, 1.0)
        total = total + n * (f if isinstance(f, torch.Tensor) else torch.tensor(float(f), dtype=torch.float64))
    return total


class LayerCost:
    """Base for costs that sum a function of each priced layer."""

    unit = ""

    def __init__(self, analysis: Analysis, layer_list: list[Layer] | None = None) -> None:
        self.analysis = analysis
        self.layers = layer_list if layer_list is not None else layers(analysis)

    def __call__(self, fractions: dict | None = None) -> torch.Tensor:
        total = torch.zeros((), dtype=torch.float64)
        for layer in self.layers:
            total = total + self.layer_cost(layer, width(layer.cin, fractions), width(layer.cout, fractions))
        return total

    def layer_cost(self, layer: Layer, cin: torch.Tensor, cout: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError
