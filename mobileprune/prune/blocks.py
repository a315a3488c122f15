"""Blocks of channels: the unit every pruning method scores and every plan keeps or removes.

A prunable group of ``size`` positions is cut into contiguous blocks of ``step`` positions (one
block = ``block`` channels, see ChannelGroup.block_positions); when ``size`` is not a multiple of
``step`` the last block is a partial *tail*. The plan rule (plan.py) allows a group kept whole or
a whole number of full blocks, so the tail is kept only while every block is, and a group always
keeps at least one full block.

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
    spans: list[tuple[int, int]]  # [start, stop) positions of each block

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
        return [p for k, (a, b) in zip(kept, self.spans) if k for p in range(a, b)]


class Blocks:
    """The blocks of every prunable group of ``analysis`` at channel block ``block``."""

    def __init__(self, analysis: Analysis, block: int) -> None:
        self.analysis = analysis
        self.block = block
        self.groups: list[GroupBlocks] = []
        for g in analysis.groups:
            if not g.prunable(block):
                continue
            step = g.block_positions(block)
            self.groups.append(GroupBlocks(g, step, [(a, min(a + step, g.size)) for a in range(0, g.size, step)]))
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

    def block_of_roots(self) -> dict:
        """Root atom id -> flat block index, for every position of a prunable group."""
        out = {}
        for gb in self.groups:
            o = self.offsets[gb.group.id]
            for b, (start, stop) in enumerate(gb.spans):
                for pos in range(start, stop):
                    out[gb.group.roots[pos]] = o + b
        return out

    def widths(self, selection: dict) -> dict:
        """Channels kept per group (positions x unit), for reports."""
        fr = self.fractions(selection)
        return {gid: int(round(float(f) * self.by_id[gid].group.channels)) for gid, f in fr.items()}
