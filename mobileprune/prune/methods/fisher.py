"""Group Fisher pruning (Liu et al., ICML 2021), on blocks and with any cost model.

A mask of ones per block, per sample, multiplies the block's channels at every consumer
(masks.py); its gradient for sample n, summed over the coupled places (the chain rule for a
mask shared by them), squared and summed over samples, is the block's Fisher importance. Every
``interval`` steps the block with the least importance per unit of cost its removal saves (at
the current widths) is removed — its mask set to 0 — and the accumulators restart; training
goes on until the predicted cost meets the budget. When the steps are few for the blocks still
to go, several blocks go at once (as many as the remaining intervals need).

The cost a removal saves is priced by the budget's cost model, or by another one (option
``normalise``: e.g. a FLOPs budget with latency normalisation, benchmarks/latency_vs_flops.py);
it is the cost's slope in the group's kept fraction times one block's
share: exact for FLOPs and memory, and for latency the slope of the interpolated table (the
straight-through slope; a tiled staircase has none).

Two ablations of the paper's choices (benchmarks/ablations.py): option ``normalise="none"``
ranks by importance alone (no division by the cost saved), and ``grouping=False`` takes each
block's gradient at its first consumer only, as a layer-by-layer method blind to the coupling
would (removal still prunes the whole coupled group: the network must stay valid).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..context import Context, Outcome
from ..loop import train
from ..masks import ConsumerMasks
from ..select import removal_order, trim

REMOVED = -1e12  # importance of removed blocks: below any score, in removal order


class Fisher:
    def __init__(self, ctx: Context, interval: int | None = None) -> None:
        self.ctx = ctx
        self.by_cost = ctx.options.get("normalise") != "none"
        self.alone: dict[str, torch.Tensor] | None = None  # grouping=False: blocks each consumer counts
        self.blocks = ctx.blocks
        self.removed = np.zeros(self.blocks.total, dtype=bool)
        self.order: list[int] = []  # flat block indices in the order they were removed
        self.fisher = torch.zeros(self.blocks.total, dtype=torch.float64)  # since the last removal
        self.total = torch.zeros(self.blocks.total, dtype=torch.float64)  # over the whole run
        self.steps_seen = 0
        # Tails that go along with their group's first removed block (removal_order does not
        # list them; a tail alone is listed and goes on its own).
        self.tails = {self.blocks.offsets[gb.group.id] + gb.n - 1 for gb in self.blocks.groups
                      if gb.tail and not gb.tail_alone}
        self._masks: list[torch.Tensor] = []
        self.needed = self._still_needed()
        self.interval = interval or max(1, min(25, ctx.train.steps // max(1, self.needed)))
        self.done = self.needed == 0

    # ---- masks ---------------------------------------------------------------------------
    def mask(self, consumer, x):
        keep = torch.as_tensor(~self.removed, dtype=torch.float32, device=x.device)
        m = keep.expand(x.shape[0], -1).clone().requires_grad_(True)
        self._masks.append((m, consumer.name))
        return m

    def after_backward(self, step: int) -> None:
        grads = [m.grad if self.alone is None else m.grad * self.alone[name].to(m.grad)
                 for m, name in self._masks if m.grad is not None]
        self._masks.clear()
        if grads:
            n = grads[0].shape[0]
            per_sample = torch.stack(grads).sum(0).double() * n  # the loss is a batch mean
            squares = (per_sample ** 2).sum(0).cpu()
            self.fisher += squares
            self.total += squares
        self.steps_seen += 1

    # ---- removal ---------------------------------------------------------------------------
    def selection(self) -> dict:
        return self.blocks.split(~self.removed)

    def savings(self) -> np.ndarray:
        """Per block: the cost removing it saves at the current widths (linearised); all 1 when
        importance is not normalised."""
        if not self.by_cost:
            return np.ones(self.blocks.total)
        fr = {g: f.clone().requires_grad_(True) for g, f in self.blocks.fractions(self.selection()).items()}
        total = (self.ctx.saving_cost or self.ctx.cost)(fr)
        grads = torch.autograd.grad(total, list(fr.values()), allow_unused=True)
        out = np.zeros(self.blocks.total)
        for (gid, _), g in zip(fr.items(), grads):
            gb = self.blocks.by_id[gid]
            slope = float(g) if g is not None else 0.0
            o = self.blocks.offsets[gid]
            out[o:o + gb.n] = slope * gb.sizes() / gb.group.size
        return np.maximum(out, 1e-12)

    def normalised(self, accumulated: torch.Tensor | None = None) -> np.ndarray:
        """Importance per unit of cost saved; removed blocks below everything, in removal order."""
        score = (self.fisher if accumulated is None else accumulated).numpy() / self.savings()
        for rank, b in enumerate(self.order):  # removed first, earliest first
            score[b] = REMOVED + rank
        return score

    def _still_needed(self) -> int:
        """How many more blocks the budget needs with the current ranking."""
        _, k = trim(self.blocks, self.normalised(), self.ctx.cost, self.ctx.budget.value)
        return max(0, k - sum(b not in self.tails for b in self.order))  # trim counts listed blocks only

    def after_step(self, step: int) -> None:
        if self.done or (step + 1) % self.interval:
            return
        intervals_left = max(1, (self.ctx.train.steps - step - 1) // self.interval + 1)
        count = max(1, math.ceil(self._still_needed() / intervals_left))
        for _ in range(count):
            # The selection's own order says which blocks may go (a group keeps its best full
            # block, tails go with the first removal); the first one not yet removed goes now.
            candidates = (self.blocks.offsets[gid] + b for gid, b in removal_order(self.blocks, self.normalised()))
            b = next((b for b in candidates if not self.removed[b]), None)
            if b is None:
                break
            self._remove(b)
        self.fisher.zero_()
        self.done = self.ctx.price(self.selection()) <= self.ctx.budget.value

    def _remove(self, b: int) -> None:
        self.removed[b] = True
        self.order.append(b)
        for gb in self.blocks.groups:  # the tail of that group goes with it
            o = self.blocks.offsets[gb.group.id]
            if o + gb.n - 1 in self.tails and o <= b < o + gb.n and not self.removed[o + gb.n - 1]:
                self.removed[o + gb.n - 1] = True
                self.order.append(o + gb.n - 1)

    # ---- loop protocol ---------------------------------------------------------------------
    def parameters(self) -> list:
        return []

    def extra_loss(self, step: int, inputs=None, outputs=None):
        return None

    def finished(self) -> bool:
        return self.done

    def status(self) -> dict:
        sel = self.selection()
        return {"cost": self.ctx.price(sel), "kept": float((~self.removed).mean())}

    def state_dict(self) -> dict:
        return {"removed": torch.as_tensor(self.removed), "order": torch.tensor(self.order, dtype=torch.long),
                "fisher": self.fisher.clone(), "total": self.total.clone(), "steps_seen": self.steps_seen, "done": self.done,
                "interval": self.interval}

    def load_state_dict(self, state: dict) -> None:
        self.removed = state["removed"].cpu().numpy().astype(bool)
        self.order = [int(i) for i in state["order"].tolist()]
        self.fisher = state["fisher"].cpu().double()
        self.total = state["total"].cpu().double()
        self.steps_seen, self.done, self.interval = int(state["steps_seen"]), bool(state["done"]), int(state["interval"])


def run(ctx: Context) -> Outcome:
    method = Fisher(ctx, ctx.options.get("interval"))
    masks = ConsumerMasks(ctx.model, ctx.blocks, method.mask)
    if not ctx.options.get("grouping", True):
        method.alone = masks.first_consumers()
    with masks:
        trained = train(ctx.model, ctx.dataset, ctx.loss_fn, ctx.train, method, ctx.checkpoint, ctx.run_key,
                        ctx.show, ctx.describe)
    # The final ranking of the blocks still kept uses everything seen (the per-interval
    # accumulator is empty right after the last removal).
    return Outcome(method.normalised(method.total), info={
        "interval": method.interval, "removed_in_training": len(method.order), "budget_met_in_training": method.done,
        "unmasked_consumers": masks.skipped, **trained})
