"""The final selection every method shares: keep the most important blocks under the budget.

Importance is one score per block (higher = keep). On the real, tiled cost (not a relaxed one):
1. trim: remove blocks in ascending importance, each group keeping its most important full
   block, and find by bisection the shortest prefix whose cost is at or below the budget (cost
   never rises as blocks go: every table is monotone);
2. fill: walk the removed blocks from the most important down and put back each one the budget
   still allows (tiles make some blocks free or cheap), so the cost ends as close under the
   budget as the block granularity allows.
"""
from __future__ import annotations

import numpy as np
import torch

from .blocks import Blocks


def smallest(blocks: Blocks, importance: np.ndarray | None = None) -> dict:
    """Every group at its most important (or first) full block."""
    sel = {}
    for gb in blocks.groups:
        kept = np.zeros(gb.n, dtype=bool)
        scores = blocks.split(importance)[gb.group.id][:gb.full_blocks] if importance is not None else None
        kept[int(np.argmax(scores)) if scores is not None else 0] = True
        sel[gb.group.id] = kept
    return sel


def removal_order(blocks: Blocks, importance: np.ndarray) -> list[tuple[int, int]]:
    """(group id, block) in the order they go: ascending importance, never a group's last full
    block. A tail is listed only in a group of one full block (24 channels at block 16), where
    it is the one thing that can go; elsewhere it goes with the group's first removed block."""
    keep_last = {gid: int(np.argmax(s[:blocks.by_id[gid].full_blocks])) for gid, s in blocks.split(importance).items()}
    order = []
    for gb in blocks.groups:
        o = blocks.offsets[gb.group.id]
        for b in range(gb.full_blocks):
            if b != keep_last[gb.group.id]:
                order.append((float(importance[o + b]), o + b, gb.group.id, b))
        if gb.tail_alone:
            order.append((float(importance[o + gb.n - 1]), o + gb.n - 1, gb.group.id, gb.n - 1))
    order.sort()
    return [(gid, b) for _, _, gid, b in order]


def trim(blocks: Blocks, importance: np.ndarray, cost, budget: float) -> tuple[dict, int]:
    """Step 1: the shortest prefix of the removal order that meets the budget, and its length."""
    order = removal_order(blocks, np.asarray(importance, dtype=np.float64))
    lo, hi = 0, len(order)  # all removable blocks gone: the smallest plan, kept when nothing meets the budget
    if _price(blocks, cost, _without(blocks, order, 0)) <= budget:
        return _without(blocks, order, 0), 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _price(blocks, cost, _without(blocks, order, mid)) <= budget:
            hi = mid
        else:
            lo = mid
    return _without(blocks, order, hi), hi


def select(blocks: Blocks, importance: np.ndarray, cost, budget: float) -> dict:
    """The selection: the most important blocks whose tiled cost is at or below ``budget``."""
    importance = np.asarray(importance, dtype=np.float64)
    sel, k = trim(blocks, importance, cost, budget)
    for gid, b in reversed(removal_order(blocks, importance)[:k]):  # fill: most important first
        sel[gid][b] = True
        if _price(blocks, cost, sel) > budget:
            sel[gid][b] = False
    return blocks.legal(sel)


def _without(blocks: Blocks, order: list, k: int) -> dict:
    sel = blocks.full()
    for gid, b in order[:k]:
        sel[gid][b] = False
    return sel


def _price(blocks: Blocks, cost, sel: dict) -> float:
    with torch.no_grad():
        return float(cost(blocks.fractions(sel)))
