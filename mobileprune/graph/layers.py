"""The priced layers of a captured model, with their widths as functions of the channel groups.

``layers(analysis)`` walks the eval-mode graph once and returns one ``Layer`` per priced op, as
the kinds in graph/kinds.py match them; views, dropout and getitem are free, everything else
(split copies, layout changes between delegated segments) is left to the per-model calibration
a profile records.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field

from .analysis import Analysis
from .kinds import KINDS, MATCHERS
from .tracer import op_name
from .values import Tracked, vector_along

# ATen ops a conv/linear can absorb, as the fused activation they become (hardtanh and clamp
# only as ReLU6: _is_relu6).
FUSED_ACTS = {"relu": "relu", "relu6": "relu6", "hardtanh": "relu6", "clamp": "relu6"}
# What a conv/linear lowering with clamp fusion absorbs (BatchNorm before it is folded): both
# shipped runtimes (devices/runtimes.py) declare this set as their Runtime.fused_activations.
CLAMP_ACTIVATIONS = frozenset(FUSED_ACTS.values())


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
        return KINDS[self.op].out_hw(self.attrs)


# What identifies a layer kind in a latency table (its widths aside); one row per width pair.
SIGNATURE_FIELDS = ("op", "k", "stride", "padding", "dilation", "h", "w", "act", "group_width", "pattern")
_DEFAULTS = {"k": 0, "stride": 0, "padding": 0, "dilation": 0, "h": 1, "w": 1, "act": "", "group_width": 0,
             "pattern": ""}


def signature(op: str, attrs: dict) -> dict:
    return {"op": op, **{k: (attrs.get(k, d) or d) for k, d in _DEFAULTS.items()}}


def layers(analysis: Analysis, fused_activations=CLAMP_ACTIVATIONS) -> list[Layer]:
    """One Layer per priced op of the eval-mode graph (graph/kinds.py says which ops are priced
    and how). ``fused_activations``: what the target runtime folds into a conv/linear with its
    BatchNorm (devices.runtimes.Runtime.fused_activations)."""
    ep = analysis.program
    # Frozen groups never change width: their channels count as fixed.
    root_group = {r: g.id for g in analysis.groups if not g.frozen for r in g.roots}
    atoms = analysis.atoms
    users = {n.name: [u for u in n.users] for n in ep.graph.nodes}
    fused: set[str] = set()
    out: list[Layer] = []

    class Context:
        @staticmethod
        def width(node, dim) -> Width:
            val = node.meta.get("val")
            size = int(val.shape[dim])
            v = analysis.values.get(node.name)
            ids = vector_along(v.ids, dim, size) if isinstance(v, Tracked) else None
            if ids is None:
                return Width(fixed=size)
            w = Width()
            for r in atoms.roots(ids).tolist():
                g = root_group.get(r)
                if g is None:
                    w.fixed += 1
                else:
                    w.per_group[g] = w.per_group.get(g, 0) + 1
            return w

        @staticmethod
        def fused_act(node) -> str:
            return _fusable_act(node, users, fused, fused_activations)

    for node in ep.graph.nodes:
        if node.op != "call_function" or node.target is operator.getitem or node.name in fused:
            continue
        matcher = MATCHERS.get(op_name(node.target))
        found = matcher(node, Context) if matcher else None
        if found is not None:
            kind_name, attrs, cin, cout = found
            out.append(Layer(kind_name, node.name, attrs, cin, cout))
    return out


def _fusable_act(node, users, fused, fusable) -> str:
    """The activation the runtime fuses into this conv/linear (BN between is folded at export)."""
    nxt = users[node.name]
    if len(nxt) == 1 and op_name(nxt[0].target) == "batch_norm":
        fused.add(nxt[0].name)
        node = nxt[0]
        nxt = users[node.name]
    if len(nxt) == 1 and FUSED_ACTS.get(op_name(nxt[0].target)) in fusable:
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
