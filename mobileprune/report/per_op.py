"""ExecuTorch's per-op times (ETDump events of the XNNPACK delegate) mapped to the priced layers.

An ETDump event names the XNNPACK operator that ran ('Convolution (NHWC, F32) IGEMM #3'), not
the PyTorch module it came from: XNNPACK's events carry no debug handle back to the graph. The
delegate runs its operators in the exported graph's order, which is the order graph/layers.py
walks, so within one family of operators (every convolution, every add, ...) the n-th event is
the n-th layer of that family. A family whose counts differ (an op the delegate split or fused
differently) is left unmapped and said so; events of no family (layout changes, standalone
activations) are summed as "other".
"""
from __future__ import annotations

from dataclasses import dataclass, field

# Layer kind (graph/kinds.py) -> the family its XNNPACK operator belongs to; the family's event
# names start with one of FAMILY_EVENTS' prefixes.
FAMILY_OF_KIND = {"conv": "convolution", "dwconv": "convolution", "gconv": "convolution",
                  "linear": "fully connected", "add": "add", "sub": "subtract", "mul": "multiply",
                  "div": "divide", "maxpool": "max pooling", "avgpool": "average pooling",
                  "gap": "global average pooling", "cat": "concatenate"}
FAMILY_EVENTS = {"convolution": ("Convolution",), "fully connected": ("Fully Connected",), "add": ("Add",),
                 "subtract": ("Subtract",), "multiply": ("Multiply",), "divide": ("Divide",),
                 "max pooling": ("Max Pooling", "Argmax Pooling"), "average pooling": ("Average Pooling",),
                 "global average pooling": ("Global Average Pooling", "Mean", "Global Sum Pooling"),
                 "concatenate": ("Concatenate", "Copy")}


def family_of_event(name: str) -> str | None:
    for family, prefixes in FAMILY_EVENTS.items():
        if name.startswith(prefixes):
            return family
    return None


@dataclass
class Mapped:
    """Per-op times as layers: ``ms[i]`` is layer i's time (None where its family was not
    mapped), ``other_ms`` the events of no family, ``unmapped`` why a family was left out."""
    ms: list
    other_ms: float = 0.0
    unmapped: dict = field(default_factory=dict)  # family -> "3 events for 4 layers"

    @property
    def total_ms(self) -> float:
        return sum(v for v in self.ms if v is not None) + self.other_ms


def map_events(layer_ops: list[str], events: list) -> Mapped:
    """``events`` (OpEvent: name, median_ms; in execution order) onto layers of kinds
    ``layer_ops`` (in graph order)."""
    ms: list = [None] * len(layer_ops)
    by_family: dict[str, list] = {}
    other = 0.0
    for e in events:
        family = family_of_event(e.name)
        if family is None:
            other += e.median_ms
        else:
            by_family.setdefault(family, []).append(e.median_ms)
    layers_of: dict[str, list[int]] = {}
    for i, op in enumerate(layer_ops):
        if op in FAMILY_OF_KIND:
            layers_of.setdefault(FAMILY_OF_KIND[op], []).append(i)
    unmapped = {}
    for family in sorted(set(by_family) | set(layers_of)):
        times, idx = by_family.get(family, []), layers_of.get(family, [])
        if len(times) == len(idx):
            for i, t in zip(idx, times):
                ms[i] = t
        else:
            unmapped[family] = f"{len(times)} event(s) for {len(idx)} layer(s)"
            other += sum(times)
    return Mapped(ms, other, unmapped)
