"""The final selection every method shares: the most importance a budget buys on the real cost.

Importance is one score per block (higher = keep). A plan's cost depends only on how many
channels each group keeps, so for a given width a group keeps its most important blocks, and
choosing a plan is choosing a width per group: a knapsack whose weights are not additive (a
layer's cost depends on the widths of the groups it reads and writes) and not smooth (tiled
kernels cost in steps: on a staircase a removal can save nothing, and the next one a whole
tile). No library solves that shape of problem (Torch-Pruning and NNI rank channels by score
alone and round widths afterwards), so it is written here, in three passes priced on the real,
tiled cost (never a slope):

1. remove: repeatedly take, over all groups, the next 1..LOOKAHEAD least important blocks of a
   group that lose the least importance per unit of cost they really save, until the budget is
   met (looking ahead past a flat step of the staircase to where the saving is);
2. fill: put back, while the budget allows, the removed block that adds the most importance per
   unit of cost (tiles make some free or cheap);
3. exchange: put back a block of one group and remove in another (or greedily in all others)
   until the budget is met again, where that gains importance, until no such exchange is left
   (greedy passes misjudge when a cheap step of one group is blocked behind an expensive one).

Each group keeps its most important full block, and a partial tail block only while it keeps
every full block, as the plan rule (blocks.py) wants.
A cost that sums over layers changes only in the layers of the group moved, so a move re-prices
only the groups that share a layer with it.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .blocks import Blocks

LOOKAHEAD = 4  # blocks of one group weighed as one removal: a tile of 32 at block 8 is 4 blocks
EXCHANGES_PER_GROUP = 8  # bound on exchange moves (each strictly gains importance)


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
    """The shortest prefix of ``removal_order`` whose cost meets the budget, and its length (by
    bisection: cost never rises as blocks go)."""
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


def floor_of_share(blocks: Blocks, share: float) -> dict[int, int]:
    """A floor for select(): every group keeps at least ``share`` of its full blocks (rounded up;
    one block at least, which every plan keeps anyway; no floor at all for a share of 0)."""
    return {gb.group.id: max(1, math.ceil(share * gb.full_blocks)) for gb in blocks.groups} if share > 0 else {}


def select(blocks: Blocks, importance: np.ndarray, cost, budget: float, rank_cost=None,
           floor: dict | None = None) -> dict:
    """The selection: blocks of the most total importance whose tiled cost is at or below
    ``budget`` (the smallest plan when none is). ``rank_cost``: what removals save is priced
    with this cost model instead (fisher's ablations: FLOPs savings under a latency budget).
    ``floor``: per group id, the full blocks it keeps at least where the budget allows (summed
    per-block importance does not see that cutting one group to its last block costs more than
    its blocks one by one: fisher's plans collapsed expansions to one block); fisher's is a share
    of the blocks its evidence says are used, l1's a share of all (floor_of_share). Where the
    budget does not allow it, the selection is made again without it."""
    importance = np.asarray(importance, dtype=np.float64)
    for at_least in (floor, {}) if floor else ({},):
        search = _Widths(blocks, importance, cost, rank_cost, at_least)
        search.removed, search.current = search.remove_until(budget, search.removed, search.current, search.moves())
        search.removed, search.current = search.fill(budget, search.removed, search.current)
        search.exchange(budget)
        if search.current <= budget:
            break
    return blocks.legal(search.selection(search.removed))


def select_by_rank(blocks: Blocks, importance: np.ndarray, cost, budget: float, rank_cost=None,
                   floor: dict | None = None) -> dict:
    """Blind to what removals save (fisher's ablation normalise="none", and the selection before
    2026-12-06): blocks go in ascending importance until the budget is met (trim), then the
    most important ones the budget still allows come back (tiles make some free or cheap).
    (``rank_cost`` and ``floor`` are taken and ignored: fisher calls either selection alike.)"""
    importance = np.asarray(importance, dtype=np.float64)
    sel, k = trim(blocks, importance, cost, budget)
    for gid, b in reversed(removal_order(blocks, importance)[:k]):  # most important first
        sel[gid][b] = True
        if _price(blocks, cost, sel) > budget:
            sel[gid][b] = False
    return blocks.legal(sel)


def put_back(blocks: Blocks, selection: dict, removed: list, cost, budget: float) -> dict:
    """``selection`` with blocks a method removed while training (``removed``: flat block indices
    in the order they went) put back, the last removed first, while its price stays within
    ``budget``. Such blocks rank below every other (fisher's importance): the selection alone
    leaves one in only where its greedy removal happens to stop early (fisher on a toy at blocks
    of 1: 0.392 of its FLOPs for an aim of 0.50, tests/test_prune.py), so a looser aim measured
    in rounds found its plan again, or a new training at that aim landed elsewhere (30% of
    fashion:resnet_w0.5, block 2: plans measured 0.314, 0.186 and 0.204 ms for a 0.292 ms
    budget, the rounds ended 30% under it, 2026-12-06). Put back in this order, one run's plans
    grow with the aim, so the rounds' bracket between aims under and over the budget holds."""
    flat = blocks.join(selection)
    for b in reversed(removed):
        if flat[b]:
            continue
        flat[b] = True
        trial = blocks.legal(blocks.split(flat))
        if _price(blocks, cost, trial) <= budget:
            selection = trial
        flat = blocks.join(selection)
    return selection


class _Widths:
    """A plan as the number of blocks removed from each group, in its removal order (_units: a
    unit is one block)."""

    def __init__(self, blocks: Blocks, importance: np.ndarray, cost, rank_cost=None, floor: dict | None = None) -> None:
        self.blocks, self.cost, self.rank_cost = blocks, cost, rank_cost
        self.gids = [gb.group.id for gb in blocks.groups]
        scores = blocks.split(importance)
        floor = floor or {}
        self.units = {gb.group.id: _units(gb, scores[gb.group.id], floor.get(gb.group.id, 1))
                      for gb in blocks.groups}
        self.lost = {gid: [float(scores[gid][b]) for b in units] for gid, units in self.units.items()}
        self.neighbours = _neighbours(cost, self.gids)
        self.prices: dict[tuple, float] = {}
        self.removed = {gid: 0 for gid in self.gids}
        self.current = self.price(self.removed)

    def selection(self, removed: dict) -> dict:
        sel = self.blocks.full()
        for gid, r in removed.items():
            sel[gid][self.units[gid][:r]] = False
        return sel

    def price(self, removed: dict) -> float:
        key = tuple(removed[g] for g in self.gids)  # (the passes price the same plans again and again)
        if key not in self.prices:
            self.prices[key] = _price(self.blocks, self.cost, self.selection(removed))
        return self.prices[key]

    def value(self, removed: dict) -> float:
        """The importance a plan gives up (lower is better)."""
        return sum(sum(self.lost[gid][:r]) for gid, r in removed.items())

    # ---- 1. remove ---------------------------------------------------------------------------
    def removal(self, removed: dict, price: float, gid, lookahead: int = LOOKAHEAD) -> tuple[float, int] | None:
        """(importance lost per cost saved, units) of the group's best next removal from ``removed``."""
        r, best = removed[gid], None
        if self.rank_cost is not None:  # savings in another cost
            price = _price(self.blocks, self.rank_cost, self.selection(removed))
        for j in range(1, min(lookahead, len(self.units[gid]) - r) + 1):
            after = self.price({**removed, gid: r + j}) if self.rank_cost is None else \
                _price(self.blocks, self.rank_cost, self.selection({**removed, gid: r + j}))
            saved, lost = price - after, sum(self.lost[gid][r:r + j])
            if saved <= 0 and lost >= 0:
                continue  # a flat step of the staircase: look further
            ratio = lost / saved if saved > 0 else -np.inf  # (lost < 0: fisher's blocks removed in training)
            if best is None or ratio < best[0]:
                best = (ratio, j)
        return best

    def remove_until(self, budget: float, removed: dict, price: float, moves: dict,
                     fixed=None) -> tuple[dict, float]:
        """From ``removed`` (costing ``price``; ``moves``: each group's best removal there, updated
        in place), the greedy removals that meet ``budget``, never in group ``fixed``."""
        removed = dict(removed)
        while price > budget:
            options = {g: m for g, m in moves.items() if m is not None and g != fixed}
            if not options:  # nothing saves within the lookahead: look as far as each group goes
                far = {g: self.removal(removed, price, g, len(self.units[g])) for g in self.gids if g != fixed}
                options = {g: m for g, m in far.items() if m is not None}
                if not options:
                    return removed, price  # the smallest plan: nothing else can go
            gid = min(options, key=lambda g: options[g][0])
            removed[gid] += options[gid][1]
            price = self.price(removed)
            for g in self.neighbours[gid]:  # (the others' savings did not change: the cost sums over layers)
                moves[g] = self.removal(removed, price, g)
        return removed, price

    def moves(self) -> dict:
        return {g: self.removal(self.removed, self.current, g) for g in self.gids}

    # ---- 2. fill -------------------------------------------------------------------------------
    def fill(self, budget: float, removed: dict, price: float) -> tuple[dict, float]:
        """Put back into ``removed`` (costing ``price``), while the budget allows, the unit that
        adds the most importance per unit of cost."""
        removed = dict(removed)
        while True:
            best = None
            for gid, r in removed.items():
                if not r:
                    continue
                after = self.price({**removed, gid: r - 1})
                gained, added = self.lost[gid][r - 1], after - price
                if after <= budget and gained > 0:
                    score = gained / added if added > 0 else np.inf
                    if best is None or score > best[0]:
                        best = (score, gid, after)
            if best is None:
                return removed, price
            _, gid, price = best
            removed[gid] -= 1

    # ---- 3. exchange ---------------------------------------------------------------------------
    def exchange(self, budget: float) -> None:
        """Put back one unit of a group, then meet the budget again by removing 1..LOOKAHEAD
        units of one other group, or greedily from all others, and fill; the move that gains
        the most importance, until none gains. (Putting back up to 4 units found no better plan
        in 324 random cases and took twice as long on fashion:mobilenet_w1 at block 8.)"""
        for _ in range(EXCHANGES_PER_GROUP * len(self.gids)):
            here, best = self.moves(), None
            for add in (g for g in self.gids if self.removed[g]):
                start = {**self.removed, add: self.removed[add] - 1}
                price = self.price(start)
                moves = dict(here)
                for g in self.neighbours[add]:
                    moves[g] = self.removal(start, price, g)
                trials = [self.remove_until(budget, start, price, moves, fixed=add)]
                for rem in (g for g in self.gids if g != add):
                    for j in range(1, min(LOOKAHEAD, len(self.units[rem]) - start[rem]) + 1):
                        trial = {**start, rem: start[rem] + j}
                        if self.price(trial) <= budget:
                            trials.append((trial, self.price(trial)))
                            break
                for removed, price in trials:
                    if price > budget:
                        continue
                    removed, price = self.fill(budget, removed, price)
                    gain = self.value(self.removed) - self.value(removed)
                    if gain > 1e-12 and (best is None or gain > best[0]):
                        best = (gain, removed, price)
            if best is None:
                return
            _, self.removed, self.current = best


def _units(gb, scores, at_least: int = 1) -> list[int]:
    """A group's removable units in the order they go: a partial tail first (the plan rule keeps
    a tail only with every full block), then its full blocks, least important first, but the most
    important one (and as many more as it keeps ``at_least``)."""
    scores = np.asarray(scores, dtype=np.float64)
    keep = int(np.argmax(scores[:gb.full_blocks]))
    order = sorted((b for b in range(gb.full_blocks) if b != keep), key=lambda b: (scores[b], b))
    kept = max(1, at_least)
    return ([gb.n - 1] if gb.tail else []) + order[:max(0, gb.full_blocks - kept)]


def _neighbours(cost, gids: list) -> dict:
    """Per group, the groups whose removal prices change when it moves (those sharing a layer
    with it, itself included); every group where the cost does not list its layers."""
    layers = getattr(cost, "layers", None)
    if layers is None:
        return {g: list(gids) for g in gids}
    out = {g: {g} for g in gids}
    for layer in layers:
        touched = [g for w in (layer.cin, layer.cout) for g in w.per_group if g in out]
        for g in touched:
            out[g].update(touched)
    return {g: [h for h in gids if h in near] for g, near in out.items()}


def _without(blocks: Blocks, order: list, k: int) -> dict:
    sel = blocks.full()
    for gid, b in order[:k]:
        sel[gid][b] = False
    return sel


def _price(blocks: Blocks, cost, sel: dict) -> float:
    with torch.no_grad():
        return float(cost(blocks.fractions(sel)))
