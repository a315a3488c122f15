"""Random DAG CNNs for the property test: every op kind the analysis must follow, wired at random.

A net is a list of steps; each step reads earlier tensors by index and appends one tensor.
The spec is plain data, so hypothesis can shrink a failing net to a small one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from torch import nn

_ACTS = {"relu": nn.ReLU, "hardswish": nn.Hardswish, "sigmoid": nn.Sigmoid, "silu": nn.SiLU,
         "gelu": nn.GELU, "none": nn.Identity}


def conv_geometry(step, c: int) -> tuple[int, int]:
    """(groups, out_channels) of a conv step reading c channels."""
    _, _, out, _, _, grouping, _, _ = step
    if grouping == "dw":
        return c, c
    if grouping == "g2" and c % 2 == 0:
        return 2, out + out % 2
    return 1, out


def step_shape(step, shapes: list) -> tuple[int, int]:
    """(channels, spatial size) of the tensor a step appends."""
    kind = step[0]
    c, s = shapes[step[1]]
    if kind == "conv":
        k, stride = step[3], step[4]
        return conv_geometry(step, c)[1], (s + 2 * (k // 2) - k) // stride + 1
    if kind == "cat":
        return c + shapes[step[2]][0], s
    if kind == "split":
        return c // 2, s
    if kind == "up":
        return c, s * 2
    if kind in ("maxpool", "avgpool"):
        return c, s // 2
    return c, s  # add, se, prelu


class RandomNet(nn.Module):
    def __init__(self, steps: list, in_channels: int, size: int, classes: int = 5):
        super().__init__()
        self.steps = steps
        self.layers = nn.ModuleDict()
        shapes = [(in_channels, size)]
        for i, step in enumerate(steps):
            c, _ = shapes[step[1]]
            if step[0] == "conv":
                _, _, _, k, stride, _, bn, act = step
                groups, out = conv_geometry(step, c)
                mods = [nn.Conv2d(c, out, k, stride, k // 2, groups=groups, bias=not bn)]
                if bn:
                    mods.append(nn.BatchNorm2d(out))
                mods.append(_ACTS[act]())
                self.layers[str(i)] = nn.Sequential(*mods)
            elif step[0] == "se":
                mid = max(1, c // 4)
                self.layers[str(i)] = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, mid, 1), nn.ReLU(),
                                                    nn.Conv2d(mid, c, 1), nn.Sigmoid())
            elif step[0] == "prelu":
                self.layers[str(i)] = nn.PReLU(c)
            shapes.append(step_shape(step, shapes))
        c, s = shapes[-1]
        self.flatten_head = s <= 4
        self.head = nn.Linear(c * s * s if self.flatten_head else c, classes)

    def forward(self, x):
        ts = [x]
        for i, step in enumerate(self.steps):
            kind, src = step[0], ts[step[1]]
            if kind in ("conv", "prelu"):
                y = self.layers[str(i)](src)
            elif kind == "se":
                y = src * self.layers[str(i)](src)
            elif kind == "add":
                y = src + ts[step[2]]
            elif kind == "cat":
                y = torch.cat([src, ts[step[2]]], dim=1)
            elif kind == "split":
                y = src.chunk(2, dim=1)[step[2]]
            elif kind == "up":
                y = F.interpolate(src, scale_factor=2, mode="nearest")
            elif kind == "maxpool":
                y = F.max_pool2d(src, 2)
            else:
                y = F.avg_pool2d(src, 2)
            ts.append(y)
        y = ts[-1]
        y = torch.flatten(y, 1) if self.flatten_head else y.mean((2, 3), keepdim=False)
        return self.head(y)


@st.composite
def net_specs(draw, max_steps: int = 10):
    """(steps, in_channels, size): a valid random net description."""
    in_channels = draw(st.sampled_from([1, 3]))
    size = draw(st.sampled_from([8, 16]))
    shapes = [(in_channels, size)]
    steps = []
    for _ in range(draw(st.integers(1, max_steps))):
        i = len(shapes) - 1 if draw(st.booleans()) else draw(st.integers(0, len(shapes) - 1))
        c, s = shapes[i]
        same = [j for j, (_, s2) in enumerate(shapes) if s2 == s and j != i]
        same_c = [j for j in same if shapes[j][0] == c]
        options = ["conv", "conv", "conv", "se", "prelu"]
        options += ["add"] * bool(same_c) + ["cat"] * bool(same) + ["split"] * (c % 2 == 0)
        options += ["up"] * (s <= 8) + ["maxpool", "avgpool"] * (s >= 4)
        kind = draw(st.sampled_from(options))
        if kind == "conv":
            steps.append(("conv", i, draw(st.integers(1, 24)), draw(st.sampled_from([1, 3])),
                          draw(st.sampled_from([1, 1, 2])) if s >= 4 else 1,
                          draw(st.sampled_from(["regular", "regular", "dw", "g2"])),
                          draw(st.booleans()), draw(st.sampled_from(sorted(_ACTS)))))
        elif kind in ("add", "cat"):
            steps.append((kind, i, draw(st.sampled_from(same_c if kind == "add" else same))))
        elif kind == "split":
            steps.append(("split", i, draw(st.integers(0, 1))))
        else:
            steps.append((kind, i))
        shapes.append(step_shape(steps[-1], shapes))
    return steps, in_channels, size
