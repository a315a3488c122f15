"""ExecuTorch's per-op times (ETDump events of the XNNPACK delegate) mapped to the priced layers.

An ETDump event names the XNNPACK operator that ran ('Convolution (NHWC, F32) IGEMM #3'), not
the PyTorch module it came from: XNNPACK's events carry no handle back to the graph. What ties
them: the delegate runs its operators in the exported graph's order, the order graph/layers.py
lists layers in, and each layer kind becomes a known short sequence of operators (a 1x1 conv is
a 'Fully Connected' GEMM in NHWC, a hardsigmoid is Add, Clamp, Divide; seen on ExecuTorch
1.5.1). So both sides are written as sequences of operator tokens and aligned with difflib's
SequenceMatcher (the longest matching runs, in order); a layer all of whose tokens align takes
the sum of its events' times. Layers that do not align are left unmapped (the page says how
many), events that align with no layer (layout changes, activations the table does not price)
are summed as "other".
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field

# Event name prefix -> token; names of no prefix here (Transpose, Static Reshape, Convert) are
# layout work, never a layer's.
EVENT_TOKENS = (("Convolution", "gemm"), ("Deconvolution", "gemm"), ("Fully Connected", "gemm"),
                ("Add", "add"), ("Subtract", "sub"), ("Multiply", "mul"), ("Divide", "div"),
                ("Max Pooling", "maxpool"), ("Argmax Pooling", "maxpool"), ("Average Pooling", "avgpool"),
                ("Global Average Pooling", "mean"), ("Global Sum Pooling", "mean"), ("Mean", "mean"),
                ("Concatenate", "cat"), ("Clamp", "clamp"), ("HardSwish", "hardswish"),
                ("Sigmoid", "sigmoid"), ("Tanh", "tanh"), ("GELU", "gelu"))

# Layer kind (graph/kinds.py) -> the operator tokens XNNPACK runs for it, in order.
KIND_TOKENS = {"conv": ("gemm",), "dwconv": ("gemm",), "gconv": ("gemm",), "linear": ("gemm",),
               "add": ("add",), "sub": ("sub",), "mul": ("mul",), "div": ("div",), "maxpool": ("maxpool",),
               "avgpool": ("avgpool",), "gap": ("mean",), "cat": ("cat",), "relu": ("clamp",),
               "relu6": ("clamp",), "hardtanh": ("clamp",), "hardswish": ("hardswish",),
               "hardsigmoid": ("add", "clamp", "div"), "sigmoid": ("sigmoid",), "tanh": ("tanh",),
               "silu": ("sigmoid", "mul"), "gelu": ("gelu",)}


def token_of(event_name: str) -> str | None:
    for prefix, token in EVENT_TOKENS:
        if event_name.startswith(prefix):
            return token
    return None


@dataclass
class Mapped:
    """Per-op times as layers: ``ms[i]`` is layer i's time (None where it did not align),
    ``other_ms`` the events of no layer, ``unmapped`` the layers that run operators but did not
    align."""
    ms: list
    other_ms: float = 0.0
    unmapped: list = field(default_factory=list)

    @property
    def total_ms(self) -> float:
        return sum(v for v in self.ms if v is not None) + self.other_ms


def map_events(layer_ops: list[str], events: list) -> Mapped:
    """``events`` (OpEvent: name, median_ms; in execution order) onto layers of kinds
    ``layer_ops`` (in graph order)."""
    timed = [(token_of(e.name), e.median_ms) for e in events]
    observed = [(t, ms) for t, ms in timed if t is not None]
    expected, owner = [], []  # token, and the layer it belongs to
    for i, op in enumerate(layer_ops):
        for token in KIND_TOKENS.get(op, ()):
            expected.append(token)
            owner.append(i)
    matcher = difflib.SequenceMatcher(None, expected, [t for t, _ in observed], autojunk=False)
    event_of = {}  # expected position -> observed position
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            event_of[block.a + k] = block.b + k
    ms: list = [None] * len(layer_ops)
    used = set()
    for i in range(len(layer_ops)):
        positions = [p for p, o in enumerate(owner) if o == i]
        if positions and all(p in event_of for p in positions):
            ms[i] = sum(observed[event_of[p]][1] for p in positions)
            used.update(event_of[p] for p in positions)
    other = sum(ms_ for t, ms_ in timed if t is None) + sum(observed[j][1] for j in range(len(observed))
                                                              if j not in used)
    unmapped = [i for i, op in enumerate(layer_ops) if KIND_TOKENS.get(op) and ms[i] is None]
    return Mapped(ms, other, unmapped)
