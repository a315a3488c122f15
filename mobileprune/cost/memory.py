"""Activation memory: elements of every priced layer's output, in millions (as in Group Fisher
pruning, where memory is the size of the feature maps a layer writes)."""
from __future__ import annotations

import torch

from ..graph.layers import Layer
from .base import LayerCost


class MemoryCost(LayerCost):
    unit = "M elements"

    def layer_cost(self, layer: Layer, cin: torch.Tensor, cout: torch.Tensor) -> torch.Tensor:
        h, w = layer.out_hw()
        return cout * h * w / 1e6
