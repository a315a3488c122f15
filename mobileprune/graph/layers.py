"""The priced layers of a captured model, with their widths as functions of the channel groups.

A latency table prices what the runtime executes: XNNPACK folds BatchNorm into the conv and
fuses ReLU/ReLU6/clamp into it, while hardswish, sigmoid, joins and pooling run as ops of their
own. ``layers(analysis)`` walks the eval-mode graph once and returns one ``Layer`` per priced op;
views, dropout and getitem are free, everything else (split copies, layout changes between
delegated segments) is left to the per-model overhead a profile calibrates.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field

from .analysis import Analysis
from .tracer import op_name
from .values import Tracked, vector_along

FUSED_ACTS = {"relu": "relu", "relu6": "relu6", "hardtanh": "relu6", "clamp": "relu6"}
ACT_OPS = {"hardswish", "hardsigmoid", "sigmoid", "silu", "gelu", "relu", "relu6", "hardtanh", "tanh"}
POOL_OPS = {"max_pool2d", "avg_pool2d"}
JOIN_OPS = {"add", "sub", "mul", "div"}


@dataclass
class Width:
    """fixed + sum(per_group[g] * kept_fraction[g]): channels of one tensor dimension."""

    fixed: int = 0
    per_group: dict = field(default_factory=dict)  # group id -> channels of this tensor in it

    @property
    def full(self) -> int:
        return self.fixed + sum(self.per_group.values())

    def at(self, fractions: dict) -> float:
        return self.fixed + sum(n * fractions.get(g, 1.0) for g, n in self.per_group.items())


@dataclass
class Layer:
    op: str  # conv | dwconv | gconv | linear | add | mul | ... | gap | maxpool | avgpool | cat
    node: str
    attrs: dict  # k, stride, padding, dilation, h, w, act, group_width, pattern
    cin: Width
    cout: Width

    def signature(self) -> dict:
        return signature(self.op, self.attrs)

    def out_hw(self) -> tuple[int, int]:
        """Spatial size of the output (convs and pools shrink it, a global pool makes it 1x1)."""
        a = self.attrs
        if self.op == "gap":
            return 1, 1
        if self.op in ("conv", "dwconv", "gconv", "maxpool", "avgpool"):
            span = a.get("dilation", 1) * (a["k"] - 1) + 1
            return tuple((a[d] + 2 * a["padding"] - span) // a["stride"] + 1 for d in ("h", "w"))
        return a.get("h", 1), a.get("w", 1)


# What identifies a layer kind in a latency table (its widths aside); one row per width pair.
SIGNATURE_FIELDS = ("op", "k", "stride", "padding", "dilation", "h", "w", "act", "group_width", "pattern")
_DEFAULTS = {"k": 0, "stride": 0, "padding": 0, "dilation": 0, "h": 1, "w": 1, "act": "", "group_width": 0,
             "pattern": ""}


def signature(op: str, attrs: dict) -> dict:
    return {"op": op, **{k: (attrs.get(k, d) or d) for k, d in _DEFAULTS.items()}}


def layers(analysis: Analysis) -> list[Layer]:
    ep = analysis.program
    # Frozen groups never change width: their channels count as fixed.
    root_group = {r: g.id for g in analysis.groups if not g.frozen for r in g.roots}
    atoms = analysis.atoms
    users = {n.name: [u for u in n.users] for n in ep.graph.nodes}
    fused: set[str] = set()
    out: list[Layer] = []

    def width(node, dim) -> Width:
        val = node.meta.get("val")
        size = int(val.shape[dim])
        v = analysis.values.get(node.name)
        ids = vector_along(v.ids, dim, size) if isinstance(v, Tracked) else None
        if ids is None:
            return Width(fixed=size)
        roots = atoms.roots(ids)
        w = Width()
        for r in roots.tolist():
            g = root_group.get(r)
            if g is None:
                w.fixed += 1
            else:
                w.per_group[g] = w.per_group.get(g, 0) + 1
        return w

    for node in ep.graph.nodes:
        if node.op != "call_function" or node.target is operator.getitem or node.name in fused:
            continue
        name = op_name(node.target)
        val = node.meta.get("val")
        if name in ("conv2d", "convolution"):
            x, w = node.args[0], node.args[1]
            wshape = tuple(w.meta["val"].shape)
            args = list(node.args) + [None] * 7
            groups = int(args[6] or 1) if name == "conv2d" else int(args[8] or 1)
            stride, padding, dilation = (_first(args[3], 1), _first(args[4], 0), _first(args[5], 1))
            cin, cout = width(x, 1), width(node, 1)
            xs = tuple(x.meta["val"].shape)
            kind = "conv" if groups == 1 else ("dwconv" if groups == xs[1] == wshape[0] else "gconv")
            act = _fusable_act(node, users, fused)
            out.append(Layer(kind, node.name, {"k": wshape[2], "stride": stride, "padding": padding,
                                               "dilation": dilation, "h": xs[2], "w": xs[3], "act": act,
                                               "group_width": xs[1] // groups if kind == "gconv" else 0},
                             cin, cout))
        elif name == "linear":
            x = node.args[0]
            act = _fusable_act(node, users, fused)
            out.append(Layer("linear", node.name, {"act": act}, width(x, x.meta["val"].dim() - 1),
                             width(node, val.dim() - 1)))
        elif name in JOIN_OPS and isinstance(val, type(node.args[0].meta.get("val"))) and val.dim() == 4:
            shapes = [tuple(a.meta["val"].shape) for a in node.args[:2] if hasattr(a, "meta")]
            if len(shapes) < 2:
                continue  # tensor-scalar arithmetic: folded or negligible
            pattern = "same" if shapes[0] == shapes[1] else "bcast"
            c = width(node, 1)
            out.append(Layer(name, node.name, {"h": val.shape[2], "w": val.shape[3], "pattern": pattern}, c, c))
        elif name in ACT_OPS and hasattr(val, "dim") and val.dim() == 4:
            c = width(node, 1)
            out.append(Layer(name, node.name, {"h": val.shape[2], "w": val.shape[3]}, c, c))
        elif name in POOL_OPS:
            x = node.args[0]
            xs = tuple(x.meta["val"].shape)
            args = list(node.args) + [None] * 4
            k = _first(args[1], 1)
            stride = _first(args[2], k) if args[2] else k
            c = width(x, 1)
            out.append(Layer(name.replace("_pool2d", "pool"), node.name,
                             {"k": k, "stride": stride, "padding": _first(args[3], 0), "h": xs[2], "w": xs[3]}, c, c))
        elif name in ("adaptive_avg_pool2d", "mean"):
            x = node.args[0]
            xs = tuple(x.meta["val"].shape)
            if len(xs) == 4 and (name == "adaptive_avg_pool2d" or sorted(d % 4 for d in node.args[1]) == [2, 3]):
                c = width(x, 1)
                out.append(Layer("gap", node.name, {"h": xs[2], "w": xs[3]}, c, c))
        elif name == "cat" and val.dim() == 4 and (node.args[1] if len(node.args) > 1 else 0) in (1, -3):
            c = width(node, 1)
            out.append(Layer("cat", node.name, {"h": val.shape[2], "w": val.shape[3]}, c, c))
    return out


def _first(v, default):
    if v is None:
        return default
    if isinstance(v, (list, tuple)):
        return int(v[0]) if v else default
    return int(v)


def _fusable_act(node, users, fused) -> str:
    """The activation XNNPACK fuses into this conv/linear (BN between is folded at export)."""
    nxt = users[node.name]
    if len(nxt) == 1 and op_name(nxt[0].target) == "batch_norm":
        fused.add(nxt[0].name)
        node = nxt[0]
        nxt = users[node.name]
    if len(nxt) == 1 and op_name(nxt[0].target) in FUSED_ACTS:
        act = op_name(nxt[0].target)
        if act in ("hardtanh", "clamp") and not _is_relu6(nxt[0]):
            return ""
        fused.add(nxt[0].name)
        return FUSED_ACTS[act]
    return ""


def _is_relu6(node) -> bool:
    args = list(node.args) + [None, None, None]
    lo, hi = args[1], args[2]
    return lo in (0, 0.0) and hi in (6, 6.0)
