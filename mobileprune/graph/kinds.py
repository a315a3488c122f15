"""Priced layer kinds, each defined once: how it is found in the graph, its attributes, the
micro-program that measures it, its FLOPs, whether it has one width or two, and which probed
staircase (if any) its output width is computed in.

A latency table prices what the runtime executes: a conv with its folded BatchNorm and fused
clamp activation is one kernel; hardswish, sigmoid, joins and pooling run as ops of their own.
Adding a kind = one ``LayerKind`` in ``KINDS`` and, if a new ATen op produces it, one matcher in
``MATCHERS``. Device facts (the tile each kind is computed in) are not here: they are measured
by the block probe and stored in the profile (devices/blockprobe.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .tracer import op_name

# Activations modules for micro-programs (also what an unfused activation row runs).
ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "hardswish": nn.Hardswish, "hardsigmoid": nn.Hardsigmoid,
               "sigmoid": nn.Sigmoid, "silu": nn.SiLU, "gelu": nn.GELU, "tanh": nn.Tanh, "hardtanh": nn.ReLU6}
JOINS = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div}


class _Join(nn.Module):
    def __init__(self, op):
        super().__init__()
        self.op = op

    def forward(self, a, b):
        return JOINS[self.op](a, b)


class _Cat(nn.Module):
    def forward(self, a, b):
        return torch.cat([a, b], 1)


class _GlobalAvg(nn.Module):
    def forward(self, x):
        return x.mean((2, 3), keepdim=True)  # keepdim: the form XNNPACK delegates


def _conv_program(row):
    op, cin, cout = row["op"], int(row["cin"]), int(row["cout"])
    groups = cin if op == "dwconv" else (cin // int(row["group_width"]) if op == "gconv" else 1)
    mods = [nn.Conv2d(cin, cout, int(row["k"]), int(row["stride"]), int(row["padding"]), int(row["dilation"]),
                      groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if row["act"]:
        mods.append(ACTIVATIONS[row["act"]]())
    return nn.Sequential(*mods), (torch.randn(1, cin, int(row["h"]), int(row["w"])),)


def _linear_program(row):
    cin, cout = int(row["cin"]), int(row["cout"])
    mods = [nn.Linear(cin, cout)] + ([ACTIVATIONS[row["act"]]()] if row["act"] else [])
    return nn.Sequential(*mods), (torch.randn(1, cin),)


def _x(row):
    return torch.randn(1, int(row["cin"]), int(row["h"]), int(row["w"]))


def _join_program(row):
    x = _x(row)
    other = torch.randn(1, x.shape[1], 1, 1) if row.get("pattern") == "bcast" else torch.randn_like(x)
    return _Join(row["op"]), (x, other)


def _pool_program(row):
    cls = nn.MaxPool2d if row["op"] == "maxpool" else nn.AvgPool2d
    return cls(int(row["k"]), int(row["stride"]), int(row["padding"])), (_x(row),)


def _cat_program(row):
    cin, h, w = int(row["cin"]), int(row["h"]), int(row["w"])
    return _Cat(), (torch.randn(1, cin // 2, h, w), torch.randn(1, cin - cin // 2, h, w))


def _windowed_hw(a: dict) -> tuple[int, int]:
    """Output size of a sliding window (convs, pools)."""
    span = a.get("dilation", 1) * (a["k"] - 1) + 1
    return tuple((a[d] + 2 * a["padding"] - span) // a["stride"] + 1 for d in ("h", "w"))


def _same_hw(a: dict) -> tuple[int, int]:
    return a.get("h", 1), a.get("w", 1)


def _conv_macs(layer, cin, cout):
    a = layer.attrs
    oh, ow = layer.out_hw()
    per_out = a["k"] * a["k"] * (1 if layer.op == "dwconv" else (a["group_width"] or cin))
    return per_out * cout * oh * ow


@dataclass(frozen=True)
class LayerKind:
    name: str
    two_widths: bool  # priced on a (cin, cout) grid (conv, linear); else on one width (cin == cout)
    program: Callable  # row dict -> (nn.Module, example inputs): the micro-program of one table row
    macs: Callable | None = None  # (layer, cin, cout) -> multiply-accumulates; None: not counted
    tiles: str | None = None  # the probed staircase its output width follows (a key of the profile's tiles)
    out_hw: Callable = _same_hw  # attrs -> spatial size of the output


KINDS = {k.name: k for k in (
    LayerKind("conv", True, _conv_program, _conv_macs, tiles="conv", out_hw=_windowed_hw),
    LayerKind("dwconv", False, _conv_program, _conv_macs, tiles="dwconv", out_hw=_windowed_hw),
    LayerKind("gconv", True, _conv_program, _conv_macs, out_hw=_windowed_hw),
    LayerKind("linear", True, _linear_program, lambda layer, cin, cout: cin * cout, tiles="conv"),  # the same GEMMs
    *(LayerKind(j, False, _join_program) for j in JOINS),
    *(LayerKind(a, False, lambda row: (ACTIVATIONS[row["op"]](), (_x(row),))) for a in ACTIVATIONS),
    LayerKind("maxpool", False, _pool_program, out_hw=_windowed_hw),
    LayerKind("avgpool", False, _pool_program, out_hw=_windowed_hw),
    LayerKind("gap", False, lambda row: (_GlobalAvg(), (_x(row),)), out_hw=lambda a: (1, 1)),
    LayerKind("cat", False, _cat_program),
)}


def kind(name: str) -> LayerKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"no layer kind {name!r}: one of {', '.join(KINDS)}") from None


# ---- matching: ATen op -> priced layer ------------------------------------------------------
# Each matcher takes (node, ctx) and returns (kind, attrs, cin Width, cout Width) or None.
# ctx.width(node, dim) gives a tensor dimension's Width; ctx.fused_act(node) claims the BatchNorm
# and clamp activation the runtime fuses into a conv/linear and names the activation.

def _first(v, default):
    if v is None:
        return default
    if isinstance(v, (list, tuple)):
        return int(v[0]) if v else default
    return int(v)


def _match_conv(node, ctx):
    x, w = node.args[0], node.args[1]
    wshape = tuple(w.meta["val"].shape)
    args = list(node.args) + [None] * 7
    groups = int(args[6] or 1) if op_name(node.target) == "conv2d" else int(args[8] or 1)
    xs = tuple(x.meta["val"].shape)
    name = "conv" if groups == 1 else ("dwconv" if groups == xs[1] == wshape[0] else "gconv")
    attrs = {"k": wshape[2], "stride": _first(args[3], 1), "padding": _first(args[4], 0),
             "dilation": _first(args[5], 1), "h": xs[2], "w": xs[3], "act": ctx.fused_act(node),
             "group_width": xs[1] // groups if name == "gconv" else 0}
    return name, attrs, ctx.width(x, 1), ctx.width(node, 1)


def _match_linear(node, ctx):
    x, val = node.args[0], node.meta["val"]
    return "linear", {"act": ctx.fused_act(node)}, ctx.width(x, x.meta["val"].dim() - 1), ctx.width(node, val.dim() - 1)


def _match_join(node, ctx):
    val = node.meta.get("val")
    shapes = [tuple(a.meta["val"].shape) for a in node.args[:2] if hasattr(a, "meta") and "val" in a.meta]
    if not hasattr(val, "dim") or val.dim() != 4 or len(shapes) < 2:
        return None  # tensor-scalar arithmetic: folded or negligible
    c = ctx.width(node, 1)
    return op_name(node.target), {"h": val.shape[2], "w": val.shape[3],
                                  "pattern": "same" if shapes[0] == shapes[1] else "bcast"}, c, c


def _match_activation(node, ctx):
    val = node.meta.get("val")
    if not hasattr(val, "dim") or val.dim() != 4:
        return None
    c = ctx.width(node, 1)
    return op_name(node.target), {"h": val.shape[2], "w": val.shape[3]}, c, c


def _match_pool(node, ctx):
    x = node.args[0]
    xs = tuple(x.meta["val"].shape)
    args = list(node.args) + [None] * 4
    k = _first(args[1], 1)
    c = ctx.width(x, 1)
    return op_name(node.target).replace("_pool2d", "pool"), {
        "k": k, "stride": _first(args[2], k) if args[2] else k, "padding": _first(args[3], 0),
        "h": xs[2], "w": xs[3]}, c, c


def _match_global_avg(node, ctx):
    x = node.args[0]
    xs = tuple(x.meta["val"].shape)
    spatial = op_name(node.target) == "adaptive_avg_pool2d" or sorted(d % 4 for d in node.args[1]) == [2, 3]
    if len(xs) != 4 or not spatial:
        return None
    c = ctx.width(x, 1)
    return "gap", {"h": xs[2], "w": xs[3]}, c, c


def _match_cat(node, ctx):
    val = node.meta.get("val")
    if val.dim() != 4 or (node.args[1] if len(node.args) > 1 else 0) not in (1, -3):
        return None
    c = ctx.width(node, 1)
    return "cat", {"h": val.shape[2], "w": val.shape[3]}, c, c


MATCHERS = {
    "conv2d": _match_conv, "convolution": _match_conv, "linear": _match_linear,
    **{j: _match_join for j in JOINS},
    **{a: _match_activation for a in ACTIVATIONS},
    "max_pool2d": _match_pool, "avg_pool2d": _match_pool,
    "adaptive_avg_pool2d": _match_global_avg, "mean": _match_global_avg,
    "cat": _match_cat,
}
