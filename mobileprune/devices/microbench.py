"""Micro-benchmarks: one priced layer at one width, as a small program for the runtime.

``plan(layers, block, fractions)`` lists the table rows a model needs: every layer at widths on
a grid of multiples of ``block`` (the smallest prunable width, fractions of the full width, the
full width), so any width a pruner picks lies between measured neighbours. ``module(row)``
builds the nn.Module that measures one row.
"""
from __future__ import annotations

from itertools import product

import torch
import torch.nn.functional as F
from torch import nn

from ..graph.layers import Layer, Width, signature

TWO_D = {"conv", "gconv", "linear"}  # priced on a (cin, cout) grid; the rest on one width
DEFAULT_FRACTIONS = (0.25, 0.5, 0.75)


def row_key(op: str, attrs: dict, cin: int, cout: int) -> str:
    s = signature(op, attrs)
    return (f"{op}|k{s['k']}|s{s['stride']}|p{s['padding']}|d{s['dilation']}|{s['h']}x{s['w']}"
            f"|{s['act'] or '-'}|g{s['group_width']}|{s['pattern'] or '-'}|{cin}x{cout}")


def grid(w: Width, block: int, fractions=DEFAULT_FRACTIONS) -> list[int]:
    full = w.full
    if not w.per_group:
        return [full]
    lo = max(block, w.fixed)
    pts = {lo, full}
    for f in fractions:
        v = int(round(full * f / block)) * block
        if lo < v < full:
            pts.add(v)
    return sorted(p for p in pts if p <= full)


def plan(layer_list: list[Layer], block: int, fractions=DEFAULT_FRACTIONS) -> list[dict]:
    """Rows (dicts with key, op, attributes, cin, cout) to measure, deduplicated, in order."""
    rows: dict[str, dict] = {}
    for layer in layer_list:
        gw = layer.attrs.get("group_width", 0)
        if layer.op in TWO_D:
            pairs = product(grid(layer.cin, block, fractions), grid(layer.cout, block, fractions))
        else:
            pairs = ((c, c) for c in grid(layer.cout, block, fractions))
        for cin, cout in pairs:
            if gw and (cin % gw or cout % gw):
                continue  # a grouped conv keeps whole conv groups
            key = row_key(layer.op, layer.attrs, cin, cout)
            rows.setdefault(key, row_from(layer.op, layer.attrs, cin, cout))
    return list(rows.values())


def row_from(op: str, attrs: dict, cin: int, cout: int) -> dict:
    return {"key": row_key(op, attrs, cin, cout), **signature(op, attrs), "cin": cin, "cout": cout}


_ACTS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "hardswish": nn.Hardswish, "hardsigmoid": nn.Hardsigmoid,
         "sigmoid": nn.Sigmoid, "silu": nn.SiLU, "gelu": nn.GELU, "tanh": nn.Tanh, "hardtanh": nn.ReLU6}


class _Join(nn.Module):
    def __init__(self, op):
        super().__init__()
        self.op = op

    def forward(self, a, b):
        return {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div}[self.op](a, b)


class _Cat(nn.Module):
    def forward(self, a, b):
        return torch.cat([a, b], 1)


class _GlobalAvg(nn.Module):
    def forward(self, x):
        return x.mean((2, 3), keepdim=True)  # keepdim: the form XNNPACK delegates


def module(row: dict) -> tuple[nn.Module, tuple]:
    """The program that measures one row, with its example inputs."""
    op, cin, cout, h, w = row["op"], int(row["cin"]), int(row["cout"]), int(row["h"]), int(row["w"])
    if op in ("conv", "dwconv", "gconv"):
        groups = cin if op == "dwconv" else (cin // int(row["group_width"]) if op == "gconv" else 1)
        mods = [nn.Conv2d(cin, cout, int(row["k"]), int(row["stride"]), int(row["padding"]),
                          int(row["dilation"]), groups=groups, bias=False), nn.BatchNorm2d(cout)]
        if row["act"]:
            mods.append(_ACTS[row["act"]]())
        return nn.Sequential(*mods), (torch.randn(1, cin, h, w),)
    if op == "linear":
        mods = [nn.Linear(cin, cout)] + ([_ACTS[row["act"]]()] if row["act"] else [])
        return nn.Sequential(*mods), (torch.randn(1, cin),)
    x = torch.randn(1, cin, h, w)
    if op in ("add", "sub", "mul", "div"):
        other = torch.randn(1, cin, 1, 1) if row.get("pattern") == "bcast" else torch.randn(1, cin, h, w)
        return _Join(op), (x, other)
    if op in _ACTS:
        return _ACTS[op](), (x,)
    if op == "maxpool":
        return nn.MaxPool2d(int(row["k"]), int(row["stride"]), int(row["padding"])), (x,)
    if op == "avgpool":
        return nn.AvgPool2d(int(row["k"]), int(row["stride"]), int(row["padding"])), (x,)
    if op == "gap":
        return _GlobalAvg(), (x,)
    if op == "cat":
        half = cin // 2
        return _Cat(), (torch.randn(1, half, h, w), torch.randn(1, cin - half, h, w))
    raise ValueError(f"no micro-benchmark for op {op!r}")


def op_and_boundary_ms(events) -> tuple[float, float]:
    """(op ms, boundary ms) of a micro-benchmark: layout transposes at the program's edges are
    the boundary (absent inside a delegated model), everything else is the op."""
    op = sum(e.median_ms for e in events if not e.name.startswith("Transpose"))
    boundary = sum(e.median_ms for e in events if e.name.startswith("Transpose"))
    return op, boundary
