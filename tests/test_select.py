"""The shared selection (prune/select.py) against an exhaustive search, on a tiled cost.

Small real nets (a conv chain with a residual add and a depthwise conv, analysed as any model
is) and a cost shaped like a device's table: each layer costs in whole tiles of its input and
output channels (tiles of 4, 8 or 16 at block 4, so many removals save nothing and the next
saves a tile), with random weights per layer. Importance is random per block. The exhaustive
search tries every plan the plan rule allows (any set of full blocks, a partial tail only with
all of them) and keeps the most important one within the budget."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

import mobileprune as mp
from mobileprune.cost.base import LayerCost
from mobileprune.prune.blocks import Blocks
from mobileprune.prune.select import put_back, select, smallest

BLOCK = 4


class Staircase(LayerCost):
    """Each layer: weight x tiles of its input x tiles of its output, plus a fixed cost."""

    unit = "ms"

    def __init__(self, analysis, rng) -> None:
        super().__init__(analysis)
        self.shape = [(int(rng.choice([4, 8, 16])), int(rng.choice([4, 8, 16])), float(rng.uniform(0.2, 5.0)))
                      for _ in self.layers]

    def __call__(self, fractions=None):
        cin, cout = self.widths(fractions)
        total = torch.zeros((), dtype=torch.float64)
        for (tile_in, tile_out, weight), ci, co in zip(self.shape, cin.unbind(), cout.unbind()):
            total = total + 0.01 * weight * torch.ceil(ci / tile_in - 1e-9) * torch.ceil(co / tile_out - 1e-9) + 0.05
        return total


class Net(nn.Module):
    """stem -> a (residual pair) -> depthwise -> b -> head; widths that leave partial tails."""

    def __init__(self, w: tuple[int, int, int]) -> None:
        super().__init__()
        a, b, c = w
        self.stem = nn.Conv2d(3, a, 3, padding=1)
        self.res = nn.Conv2d(a, a, 3, padding=1)
        self.expand = nn.Conv2d(a, b, 1)
        self.dw = nn.Conv2d(b, b, 3, padding=1, groups=b)
        self.project = nn.Conv2d(b, c, 1)
        self.head = nn.Linear(c, 5)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = x + torch.relu(self.res(x))
        x = self.project(torch.relu(self.dw(torch.relu(self.expand(x)))))
        return self.head(x.mean((2, 3)))


def _case(seed: int):
    rng = np.random.default_rng(seed)
    widths = tuple(int(rng.choice([8, 12, 16, 20])) for _ in range(3))
    analysis = mp.analyze(Net(widths).eval(), torch.randn(1, 3, 8, 8))
    blocks = Blocks(analysis, BLOCK)
    cost = Staircase(analysis, rng)
    importance = rng.uniform(0.5, 1.5, blocks.total)
    with torch.no_grad():
        least, full = (float(cost(blocks.fractions(sel))) for sel in (smallest(blocks, importance), blocks.full()))
    budget = least + rng.uniform(0.05, 0.9) * (full - least)
    return blocks, cost, importance, budget


def _legal_sets(gb) -> list[np.ndarray]:
    """Every selection of one group the plan rule allows."""
    full = gb.full_blocks
    out = []
    for keep in itertools.product([False, True], repeat=full):
        if any(keep):
            out.append(np.array(list(keep) + ([all(keep)] if gb.tail else []), dtype=bool))
    return out


def _exhaustive(blocks, cost, importance, budget) -> float:
    """The most total importance of any legal plan within the budget. A plan's cost depends on
    each group's kept channel count only, so per group and count the best set is found first
    (over every legal set), then every combination of counts is priced."""
    per_group = []
    for gb in blocks.groups:
        scores = blocks.split(importance)[gb.group.id]
        best: dict[int, tuple[float, np.ndarray]] = {}
        for kept in _legal_sets(gb):
            channels = int(gb.sizes()[kept].sum())
            value = float(scores[kept].sum())
            if channels not in best or value > best[channels][0]:
                best[channels] = (value, kept)
        per_group.append(list(best.values()))
    top = -np.inf
    for combo in itertools.product(*per_group):
        value = sum(v for v, _ in combo)
        if value <= top:
            continue
        sel = {gb.group.id: kept for gb, (_, kept) in zip(blocks.groups, combo)}
        with torch.no_grad():
            if float(cost(blocks.fractions(sel))) <= budget:
                top = value
    return top


def _value(blocks, importance, sel) -> float:
    return float(sum(blocks.split(importance)[gid][kept].sum() for gid, kept in sel.items()))


@pytest.mark.parametrize("seed", range(24))
def test_the_selection_finds_the_most_important_plan_within_the_budget(seed):
    blocks, cost, importance, budget = _case(seed)
    sel = select(blocks, importance, cost, budget)
    assert all(np.array_equal(kept, blocks.legal(sel)[gid]) for gid, kept in sel.items())
    with torch.no_grad():
        assert float(cost(blocks.fractions(sel))) <= budget
    assert _value(blocks, importance, sel) == pytest.approx(_exhaustive(blocks, cost, importance, budget), abs=1e-9)


def test_a_floor_keeps_its_blocks_where_the_budget_allows_and_yields_where_not():
    """A floor of half the blocks (l1's option, floor_of_share): with importance that would empty
    one group, that group still keeps half its full blocks when the budget allows, the plan within
    the budget (without the floor it keeps fewer in some of these cases: a tile can make a block
    free, and free blocks stay); under a budget the floor cannot meet, it is made without it."""
    from mobileprune.prune.select import floor_of_share

    gave_way = 0
    for seed in range(12):
        blocks, cost, importance, _ = _case(seed)
        first = blocks.groups[0]
        o = blocks.offsets[first.group.id]
        importance[o:o + first.n] = 1e-6  # worthless to the selection
        floor = floor_of_share(blocks, 0.5)
        at_floor = {gb.group.id: np.array([b < floor[gb.group.id] for b in range(gb.full_blocks)]
                                          + ([False] if gb.tail else [])) for gb in blocks.groups}
        with torch.no_grad():
            cheapest, full = (float(cost(blocks.fractions(sel))) for sel in (at_floor, blocks.full()))
            budget = cheapest + 0.25 * (full - cheapest)
            sel = select(blocks, importance, cost, budget, floor=floor)
            assert float(cost(blocks.fractions(sel))) <= budget
            assert all(sel[gb.group.id][:gb.full_blocks].sum() >= floor[gb.group.id] for gb in blocks.groups)
            alone = select(blocks, importance, cost, budget)[first.group.id][:first.full_blocks].sum()
            gave_way += int(alone < floor[first.group.id])
            tight = float(cost(blocks.fractions(smallest(blocks, importance))))
            assert float(cost(blocks.fractions(select(blocks, importance, cost, tight, floor=floor)))) <= tight + 1e-9
    assert gave_way >= 3, gave_way  # the floor decided these plans
    assert floor_of_share(blocks, 0.0) == {}


@pytest.mark.parametrize("seed", range(3))
def test_a_selection_joins_into_the_flat_vector_it_splits_from(seed):
    blocks = _case(seed)[0]
    flat = np.random.default_rng(seed).random(blocks.total) < 0.5
    joined = blocks.join(blocks.split(flat))
    assert joined.dtype == bool and (joined == flat).all()
    assert (blocks.join(blocks.full()) == np.ones(blocks.total, dtype=bool)).all()


@pytest.mark.parametrize("seed", range(10))
def test_blocks_removed_in_training_come_back_last_removed_first_within_the_budget(seed):
    """put_back: from a plan with blocks removed in a known order, a looser budget puts back the
    last removed first, never goes over the budget nor drops a kept block, and a budget at the
    full net's price puts every one back."""
    blocks, cost, _, _ = _case(seed)
    rng = np.random.default_rng(seed)

    def price(selection: dict) -> float:
        with torch.no_grad():
            return float(cost(blocks.fractions(selection)))

    flat = blocks.join
    full_blocks = [blocks.offsets[gb.group.id] + b for gb in blocks.groups for b in range(gb.full_blocks)]
    tails = [blocks.offsets[gb.group.id] + gb.n - 1 for gb in blocks.groups if gb.tail]  # (fisher removes
    # a tail with the group's first full block: the plan rule keeps it only with all of them)
    removed = tails + [int(b) for b in rng.permutation(full_blocks)[:max(2, len(full_blocks) // 2)]]
    kept = np.ones(blocks.total, dtype=bool)
    kept[removed] = False
    plan = blocks.legal(blocks.split(kept))
    assert price(put_back(blocks, plan, removed, cost, price(plan))) <= price(plan)
    for share in (0.1, 0.4, 0.8):
        budget = price(plan) + share * (price(blocks.full()) - price(plan))
        back = put_back(blocks, plan, removed, cost, budget)
        assert price(back) <= budget
        assert (flat(back) >= flat(plan)).all()  # nothing the plan kept goes
        last = flat(plan).copy()
        last[removed[-1]] = True
        if price(blocks.legal(blocks.split(last))) <= budget:  # the last removed fits alone: it is back
            assert flat(back)[removed[-1]]
    assert flat(put_back(blocks, plan, removed, cost, price(blocks.full()))).all()
