"""Blocks of channels: the unit every pruning method scores and every plan keeps or removes.

A prunable group of ``size`` positions is cut into blocks of ``step`` positions (one block =
``block`` channels, see ChannelGroup.block_positions); when ``size`` is not a multiple of
``step`` the last block is a partial *tail*. The plan rule (plan.py) allows a group kept whole or
a whole number of full blocks, so the tail is kept only while every block is, and a group always
keeps at least one full block.

Which positions make a block: the device needs a layer's kept *count* to be a multiple of the
block, not any particular channels, so by default (``order``, from ``magnitude_order``) a
group's positions are ranked by their weights' magnitude and cut into blocks in that order:
block 0 the strongest ``step``, and so on, as Torch-Pruning keeps its strongest channels and
rounds only their number. Contiguous blocks (``order=None``: positions 0..step-1, ...) mix strong
and weak channels in every block: at block 32 on fashion:mobilenet_w1 fisher kept 1.5 points
more top-1 with blocks by magnitude at the same plan shape, and an even cut from the trained
weights at Torch-Pruning's widths came within 0.5 points of it (docs/results.md, 2026-12-04).

A *selection* is ``{group id: bool array over its blocks}``; groups not listed keep everything.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..graph import Analysis, ChannelGroup
from ..plan import PrunePlan


@dataclass
class GroupBlocks:
    group: ChannelGroup
    step: int  # positions per full block
    spans: list[tuple[int, int]]  # [start, stop) of each block in ``order``
    order: list[int] | None = None  # the group's positions, strongest first (None: 0..size-1)

    def positions(self, b: int) -> list[int]:
        start, stop = self.spans[b]
        return list(range(start, stop)) if self.order is None else self.order[start:stop]

    @property
    def n(self) -> int:
        return len(self.spans)

    @property
    def tail(self) -> bool:
        """Whether the last block is partial (kept only with the whole group)."""
        return self.spans[-1][1] - self.spans[-1][0] < self.step

    @property
    def tail_alone(self) -> bool:
        """A tail in a group of one full block (24 channels at block 16): it is the one thing
        the group can lose, so it is removed on its own; any other tail goes with the group's
        first removed full block."""
        return self.tail and self.full_blocks == 1

    @property
    def full_blocks(self) -> int:
        return self.n - int(self.tail)

    def sizes(self) -> np.ndarray:
        return np.array([b - a for a, b in self.spans], dtype=np.int64)

    def kept_positions(self, kept: np.ndarray) -> list[int]:
        """In the original channel order (the slimmed layer keeps its channels' order)."""
        return sorted(p for b, k in enumerate(kept) if k for p in self.positions(b))


class Blocks:
    """The blocks of every prunable group of ``analysis`` at channel block ``block``."""

    def __init__(self, analysis: Analysis, block: int, order: dict[int, list[int]] | None = None) -> None:
        """``order``: per group id, its positions strongest first (``magnitude_order``); groups
        not in it (or ``None``) are cut into contiguous blocks."""
        self.analysis = analysis
        self.block = block
        self.groups: list[GroupBlocks] = []
        for g in analysis.groups:
            if not g.prunable(block):
                continue
            step = g.block_positions(block)
            self.groups.append(GroupBlocks(g, step, [(a, min(a + step, g.size)) for a in range(0, g.size, step)],
                                           (order or {}).get(g.id)))
        self.by_id = {gb.group.id: gb for gb in self.groups}
        # Flat numbering of all blocks (methods keep one vector of gates / masks / scores).
        self.offsets = {}
        n = 0
        for gb in self.groups:
            self.offsets[gb.group.id] = n
            n += gb.n
        self.total = n

    # ---- selections ---------------------------------------------------------------------
    def full(self) -> dict:
        return {gb.group.id: np.ones(gb.n, dtype=bool) for gb in self.groups}

    def legal(self, selection: dict) -> dict:
        """The selection as the plan rule allows it: the tail goes when any full block does."""
        out = {}
        for gid, kept in selection.items():
            gb, kept = self.by_id[gid], np.array(kept, dtype=bool)
            if gb.tail and not kept[:-1].all():
                kept[-1] = False
            out[gid] = kept
        return out

    def fractions(self, selection: dict) -> dict:
        """Kept fraction of every group (the cost models' input); float64 tensors."""
        out = {}
        for gid, kept in self.legal(selection).items():
            gb = self.by_id[gid]
            out[gid] = torch.tensor(float(gb.sizes()[kept].sum()) / gb.group.size, dtype=torch.float64)
        return out

    def soft_fractions(self, keep_probs: torch.Tensor) -> dict:
        """Expected kept fraction per group from one keep-probability per block (flat vector),
        never below one full block: every plan keeps one (see the module's docstring), and no
        profile measures a narrower layer (a gated run on fashion:mobilenet_w1 reached expected
        widths of 19 of 64 channels at block 32 and stopped on the missing rows)."""
        out = {}
        for gb in self.groups:
            o = self.offsets[gb.group.id]
            sizes = torch.as_tensor(gb.sizes(), dtype=torch.float64)
            expected = (keep_probs[o:o + gb.n].double() * sizes).sum() / gb.group.size
            out[gb.group.id] = expected.clamp(min=gb.step / gb.group.size)
        return out

    def plan(self, selection: dict, meta: dict | None = None) -> PrunePlan:
        keep = {}
        for gid, kept in self.legal(selection).items():
            if not kept.all():
                keep[gid] = self.by_id[gid].kept_positions(kept)
        plan = PrunePlan(keep, self.block, self.analysis.fingerprint(), dict(meta or {}))
        plan.validate(self.analysis)
        return plan

    def split(self, flat) -> dict:
        """A flat per-block vector (numpy or tensor) as {group id: its blocks' slice}."""
        return {gb.group.id: flat[self.offsets[gb.group.id]:self.offsets[gb.group.id] + gb.n] for gb in self.groups}

    def join(self, selection: dict) -> np.ndarray:
        """A selection ({group id: kept blocks}) as one flat boolean vector: ``split``'s inverse."""
        return np.concatenate([np.asarray(selection[gb.group.id], dtype=bool) for gb in self.groups])

    def block_of_roots(self) -> dict:
        """Root atom id -> flat block index, for every position of a prunable group."""
        out = {}
        for gb in self.groups:
            o = self.offsets[gb.group.id]
            for b in range(gb.n):
                for pos in gb.positions(b):
                    out[gb.group.roots[pos]] = o + b
        return out

    def widths(self, selection: dict) -> dict:
        """Channels kept per group (positions x unit), for reports."""
        fr = self.fractions(selection)
        return {gid: int(round(float(f) * self.by_id[gid].group.channels)) for gid, f in fr.items()}


def magnitude_order(model: torch.nn.Module, analysis: Analysis) -> dict[int, list[int]]:
    """Per prunable group, its positions ranked by the L2 norm of their weights, strongest first.

    A position's score sums, over every weight its group cuts (the producers whose output
    channels it is, the consumers that read it, the depthwise convs and norms it passes
    through), its slice's L2 norm divided by that weight's mean slice norm, so a conv and its
    BatchNorm weigh alike; biases are left out. This is close to Torch-Pruning's group
    magnitude importance (which weighs layers by their raw squared norms): on
    fashion:mobilenet_w1 the two keep 48-53 of the same 64 channels in a 128-channel expansion,
    against 35-38 when only producers are counted. Ties keep the original order. Written here
    because the weights are our analysis's cuts, which no library knows."""
    params = dict(model.named_parameters())
    position = {int(r): (g.id, i) for g in analysis.groups for i, r in enumerate(g.roots)}
    score = {g.id: np.zeros(g.size) for g in analysis.groups if not g.frozen}
    for cut in analysis.cuts:
        w = params.get(cut.fqn)
        if w is None or cut.fqn.endswith("bias"):
            continue
        w = w.detach().double()
        norms = (w.pow(2).sum(dim=[d for d in range(w.dim()) if d != cut.dim]) if w.dim() > 1 else w.pow(2)).sqrt()
        norms = (norms / norms.mean().clamp(min=1e-12)).tolist()
        for r, v in zip(np.asarray(cut.ids).reshape(-1).tolist(), norms):
            gid, i = position.get(int(r), (None, None))
            if gid in score:
                score[gid][i] += v
    return {gid: [int(i) for i in np.argsort(-s, kind="stable")] for gid, s in score.items()}
