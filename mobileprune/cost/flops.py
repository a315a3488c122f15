"""FLOPs of convolutions and linear layers (2 x multiply-accumulates), in kFPP: thousands of
FLOPs per input pixel, so that models at different resolutions compare on one scale. Each layer
kind's multiply-accumulates are defined with the kind (graph/kinds.py)."""
from __future__ import annotations

import torch

from ..graph.kinds import kind
from ..graph.layers import Layer
from .base import LayerCost


class FlopsCost(LayerCost):
    unit = "kFPP"

    def __init__(self, analysis, layer_list=None) -> None:
        super().__init__(analysis, layer_list)
        shape = analysis.example_inputs[0].shape
        self.pixels = int(shape[-1] * shape[-2]) if len(shape) >= 2 else 1

    def layer_cost(self, layer: Layer, cin: torch.Tensor, cout: torch.Tensor) -> torch.Tensor:
        macs = kind(layer.op).macs
        if macs is None:
            return torch.zeros((), dtype=torch.float64)
        return 2 * macs(layer, cin, cout) / self.pixels / 1e3
