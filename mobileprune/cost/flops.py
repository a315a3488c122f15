"""FLOPs of convolutions and linear layers (2 x multiply-accumulates), in kFPP: thousands of
FLOPs per input pixel, so that models at different resolutions compare on one scale."""
from __future__ import annotations

import torch

from ..graph.layers import Layer
from .base import LayerCost


class FlopsCost(LayerCost):
    unit = "kFPP"

    def __init__(self, analysis, layer_list=None) -> None:
        super().__init__(analysis, layer_list)
        shape = analysis.example_inputs[0].shape
        self.pixels = int(shape[-1] * shape[-2]) if len(shape) >= 2 else 1

    def layer_cost(self, layer: Layer, cin: torch.Tensor, cout: torch.Tensor) -> torch.Tensor:
        a = layer.attrs
        if layer.op in ("conv", "dwconv", "gconv"):
            oh, ow = layer.out_hw()
            per_out = a["k"] * a["k"] * (1 if layer.op == "dwconv" else (a["group_width"] or cin))
            macs = per_out * cout * oh * ow
        elif layer.op == "linear":
            macs = cin * cout
        else:
            return torch.zeros((), dtype=torch.float64)
        return 2 * macs / self.pixels / 1e3
