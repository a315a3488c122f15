"""Activation memory: elements of every priced layer's output, in millions (as in Group Fisher
pruning, where memory is the size of the feature maps a layer writes)."""
from __future__ import annotations

import torch

from ..graph.layers import Layer
from .base import LayerCost


class MemoryCost(LayerCost):
    unit = "M elements"

    def layer_cost(self, layer: Layer, cin: torch.Tensor, cout: torch.Tensor) -> torch.Tensor:
        a = layer.attrs
        if layer.op in ("conv", "dwconv", "gconv"):
            h = (a["h"] + 2 * a["padding"] - a["dilation"] * (a["k"] - 1) - 1) // a["stride"] + 1
            w = (a["w"] + 2 * a["padding"] - a["dilation"] * (a["k"] - 1) - 1) // a["stride"] + 1
        elif layer.op == "gap":
            h = w = 1
        elif layer.op in ("maxpool", "avgpool"):
            h = (a["h"] + 2 * a["padding"] - a["k"]) // a["stride"] + 1
            w = (a["w"] + 2 * a["padding"] - a["k"]) // a["stride"] + 1
        else:
            h, w = a.get("h", 1), a.get("w", 1)
        return cout * h * w / 1e6
