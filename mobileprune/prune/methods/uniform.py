"""Baseline: uniform width scaling. Every prunable group keeps the same share of its full
blocks (its first ones, which hold the strongest channels by default: blocks.py), the share
bisected to the largest one that meets the budget. Meant as a scaled-width architecture trained
from scratch; from trained weights it is an even cut that keeps the strongest channels."""
from __future__ import annotations

import numpy as np

from ..context import Context, Outcome


def selection_at(ctx: Context, share: float) -> dict:
    sel = {}
    for gb in ctx.blocks.groups:
        kept = np.ones(gb.n, dtype=bool)
        if share < 1:
            kept[:] = False
            kept[:max(1, int(np.floor(share * gb.full_blocks + 1e-9)))] = True
        sel[gb.group.id] = kept
    return sel


def run(ctx: Context) -> Outcome:
    lo, hi = 0.0, 1.0  # share 0 (one block per group) is the floor, kept when no share fits
    for _ in range(40):
        mid = (lo + hi) / 2
        if ctx.price(selection_at(ctx, mid)) <= ctx.budget.value:
            lo = mid
        else:
            hi = mid
    return Outcome(None, ctx.blocks.legal(selection_at(ctx, lo)), info={"share": lo})
