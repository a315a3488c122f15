"""``find_groups(model, example_inputs) -> Analysis``: the channel groups of a model, as captured.

A ChannelGroup is a set of channel positions that are kept or removed together; each position
is one root atom. Positions share a group when they index exactly the same parameter slices
(the same producers, consumers and pass-through parameters), so a group reads like "the output
channels of layer1.0.conv2, layer1.1.conv2, ... and the inputs of every conv that reads them".
"""
from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from math import gcd

import numpy as np
import torch
from torch import nn

from .atoms import UNTRACKED
from .capture import capture
from .tracer import Cut, Tracer


@dataclass
class ChannelGroup:
    id: int
    size: int  # number of positions (what a plan keeps a subset of)
    unit: int  # channels one position spans in its producers (>1 for whole conv groups)
    producers: list[str]  # "fqn[dim]" of parameters whose output channels these are
    consumers: list[str]
    passthrough: list[str]
    frozen: bool
    reasons: list[str] = field(default_factory=list)
    roots: list[int] = field(default_factory=list, repr=False)

    @property
    def channels(self) -> int:
        return self.size * self.unit

    def block_positions(self, block: int) -> int:
        """How many positions make one block of ``block`` channels (see docs/analysis.md)."""
        return block // gcd(block, self.unit)

    def prunable(self, block: int) -> bool:
        return not self.frozen and self.size > self.block_positions(block)

    def name(self) -> str:
        return (self.producers or self.consumers or ["?"])[0]

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in (
            "id", "size", "unit", "producers", "consumers", "passthrough", "frozen", "reasons")}


@dataclass
class Analysis:
    groups: list[ChannelGroup]
    cuts: list[Cut]  # ids already mapped to roots
    fixed_params: dict[str, str]
    unknown_ops: dict[str, list[str]]
    untraced_modules: list[str]
    example_inputs: tuple = field(repr=False)
    export_seconds: float = 0.0
    analysis_seconds: float = 0.0
    program: object = field(default=None, repr=False)  # the eval-mode ExportedProgram
    values: dict = field(default_factory=dict, repr=False)  # node name -> Tracked/ParamView/None
    atoms: object = field(default=None, repr=False)
    pins: list = field(default_factory=list, repr=False)  # (root ids, why): sizes constant in the graph

    @property
    def free_groups(self) -> list[ChannelGroup]:
        return [g for g in self.groups if not g.frozen]

    def fingerprint(self) -> str:
        """Stable hash of the group structure: a plan only applies to the same structure."""
        desc = [(g.size, g.unit, g.producers, g.consumers, g.passthrough, g.frozen) for g in self.groups]
        return hashlib.sha256(json.dumps(desc).encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return {
            "fingerprint": self.fingerprint(),
            "groups": [g.to_dict() for g in self.groups],
            "unknown_ops": self.unknown_ops,
            "untraced_modules": self.untraced_modules,
            "export_seconds": round(self.export_seconds, 4),
            "analysis_seconds": round(self.analysis_seconds, 4),
        }


def find_groups(model: nn.Module, example_inputs) -> Analysis:
    """Find the channel groups of ``model`` by capturing it with torch.export.

    ``example_inputs``: a tensor or tuple of tensors at the size the model is used with.
    Modules that run only in train mode (auxiliary heads) are captured by a second, train-mode
    export so that slimming keeps them consistent.
    """
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    example_inputs = tuple(example_inputs)
    ep, export_s = capture(model, example_inputs, train=False)
    tracer = Tracer(model)
    start = time.perf_counter()
    tracer.run(ep)
    own = time.perf_counter() - start
    untraced = _unused_modules(ep)
    if untraced:
        # Batch of 2: train-mode BatchNorm refuses one value per channel (inception's aux head).
        doubled = tuple(torch.cat([x, x]) if isinstance(x, torch.Tensor) and x.dim() and x.shape[0] == 1
                        else x for x in example_inputs)
        ep_train, seconds = capture(model, doubled, train=True)
        export_s += seconds
        start = time.perf_counter()
        tracer.run(ep_train)  # same atoms: train-only modules join the eval-mode groups
        untraced = sorted(set(untraced) & set(_unused_modules(ep_train)))
        own += time.perf_counter() - start
    start = time.perf_counter()
    cuts = _settle_params(tracer)
    groups = _group(tracer, cuts)
    own += time.perf_counter() - start
    pins = [(tracer.atoms.roots(ids), why) for ids, why in tracer.pins]
    return Analysis(groups, cuts, tracer.fixed_params, tracer.unknown_ops, untraced,
                    example_inputs, export_s, own, ep, tracer.values, tracer.atoms, pins)


def _unused_modules(ep) -> list[str]:
    sig = ep.graph_signature
    names = {**sig.inputs_to_parameters}
    unused = set()
    for node in ep.graph.nodes:
        if node.op == "placeholder" and node.name in names and not node.users:
            unused.add(names[node.name].rsplit(".", 1)[0])
    return sorted(unused)


def _settle_params(tracer: Tracer) -> list[Cut]:
    """One cut per (parameter, dim): several uses along one dim must keep the same channels;
    a parameter that some use needs at full size freezes every channel it is cut by."""
    atoms = tracer.atoms
    by_key: dict[tuple, list[Cut]] = {}
    for c in tracer.cuts:
        by_key.setdefault((c.fqn, c.dim), []).append(c)
    for (fqn, dim), cs in by_key.items():
        for other in cs[1:]:
            if len(other.ids) != len(cs[0].ids):
                atoms.freeze(np.concatenate([cs[0].ids, other.ids]),
                             f"parameter {fqn} is indexed inconsistently: {other.where}")
            else:
                atoms.union_arrays(cs[0].ids, other.ids)
                if ((cs[0].ids < 0) != (other.ids < 0)).any():
                    atoms.freeze(np.concatenate([cs[0].ids, other.ids]),
                                 f"parameter {fqn} used with fixed channels: {other.where}")
        if fqn in tracer.fixed_params:
            for c in cs:
                atoms.freeze(c.ids, f"parameter {fqn} must keep its size ({tracer.fixed_params[fqn]})")
    settled = []
    for (fqn, dim), cs in by_key.items():
        first = cs[0]
        settled.append(Cut(fqn, dim, first.role, atoms.roots(first.ids), first.where))
    return settled


def _group(tracer: Tracer, cuts: list[Cut]) -> list[ChannelGroup]:
    atoms = tracer.atoms
    members: dict[int, set] = {}
    width: dict[int, int] = {}  # channels a position spans in the cut where it is narrowest
    order: list[int] = []
    for c in cuts:
        for r, k in Counter(c.ids.tolist()).items():
            width[r] = min(width.get(r, k), k)
        for r in dict.fromkeys(c.ids.tolist()):  # unique, in order
            if r == UNTRACKED:
                continue
            if r not in members:
                members[r] = set()
                order.append(r)
            members[r].add((c.fqn, c.dim, c.role))
    by_sig: dict[tuple, list[int]] = {}
    for r in order:
        key = (frozenset(members[r]), bool(atoms.frozen.get(r)))
        by_sig.setdefault(key, []).append(r)
    groups = []
    for gid, ((sig, frozen), roots) in enumerate(by_sig.items()):
        unit = min(width[r] for r in roots)
        pick = lambda role: sorted(f"{f}[{d}]" for f, d, r in sig if r == role)  # noqa: E731
        reasons: list[str] = []
        for r in roots:
            for why in atoms.frozen.get(r, []):
                if why not in reasons:
                    reasons.append(why)
        groups.append(ChannelGroup(gid, len(roots), max(unit, 1), pick("producer"), pick("consumer"),
                                   pick("passthrough"), frozen, reasons, roots))
    return groups
