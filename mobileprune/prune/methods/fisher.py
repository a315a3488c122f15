"""Group Fisher pruning (Liu et al., ICML 2021), on blocks and with any cost model.

A mask of ones per block, per sample, multiplies the block's channels at every consumer
(masks.py); its gradient for sample n, summed over the coupled places (the chain rule for a
mask shared by them), squared and summed over samples, is the block's Fisher importance: the
loss a removal is expected to add. While the net trains, blocks are removed in rounds, each
round choosing with the shared selection (select.py: the most importance per unit of cost
really saved, on the tiled table) at a target that steps from the original's cost down to the
budget; training goes on until the predicted cost meets the budget.

Where this departs from the paper, and why (docs/results.md, 2026-12-05): the paper removes one
channel every few steps on the evidence gathered since the last removal. Here two single-batch
estimates of one group ranked its blocks with a correlation of 0.24 (16 batches: 0.74), so
decisions made on 32-64 samples followed noise. So the evidence is never thrown away (the
accumulators run over the whole run), the first round waits for ``min_samples`` samples
(default 512) and the rounds are spaced so that each adds as many; and a removal is priced by
what it really saves on the table's staircase (one block of a mobilenet_w1 group saved 46.7 us
where the table's slope said 7.8 us), not by the slope. When the steps are too few for that
evidence, the rounds use what there is and the report says how many samples each had.

Two ablations of the paper's choices (benchmarks/ablations.py): option ``normalise="none"``
ranks by importance alone (the selection ignores what removals save; ``normalise`` set to
another cost kind prices the savings with that cost instead), and ``grouping=False`` takes each
block's gradient at its first consumer only, as a layer-by-layer method blind to the coupling
would (removal still prunes the whole coupled group: the network must stay valid).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..context import Context, Outcome
from ...train.loop import train
from ..masks import ConsumerMasks
from ..select import select, select_by_rank
from .l1 import magnitude

REMOVED = -1e12  # importance of removed blocks: below any score, in removal order
MIN_SAMPLES = 512  # samples of evidence behind each round of removals
PRUNE_SHARE = 0.8  # the rounds end by this share of the steps: the net recovers after the last
# Each group keeps at least this share of its blocks where the budget allows (select.py). Why a
# half: summed per-block Fisher does not see that cutting a group to its last blocks costs more
# than those blocks one by one. At a quarter, fashion:resnet_w0.5 at 50% of its measured latency
# kept 31 k of 309 k parameters (its 128-channel stage cut to 32) and fine-tuned to 86.68% where
# a half kept 78 k and reached 87.79%, Torch-Pruning's even cut 88.84% (one seed, 2026-12-06).
FLOOR = 0.5
OPTIONS = ("interval", "min_samples", "floor", "magnitude_order", "normalise", "grouping")
NEGLIGIBLE = 0.01  # a block whose Fisher is under this share of the mean block's carries no evidence


class Fisher:
    def __init__(self, ctx: Context, interval: int | None = None) -> None:
        self.ctx = ctx
        self.rank_only = ctx.options.get("normalise") == "none"
        self.min_samples = int(ctx.options.get("min_samples", MIN_SAMPLES))
        self.floor = float(ctx.options.get("floor", FLOOR))
        # Option: which blocks of a group go by magnitude, how many by Fisher (the issue's "magnitude
        # order within a group"); off by default: the same plan widths fine-tuned to 87.71% with it
        # and 87.79% without (fashion:resnet_w0.5 at 50%, one seed, 2026-12-06).
        self.magnitude_order = bool(ctx.options.get("magnitude_order", False))
        self.alone: dict[str, torch.Tensor] | None = None  # grouping=False: blocks each consumer counts
        self.blocks = ctx.blocks
        self.removed = np.zeros(self.blocks.total, dtype=bool)
        self.order: list[int] = []  # flat block indices in the order they were removed
        self.total = torch.zeros(self.blocks.total, dtype=torch.float64)  # over the whole run
        self.samples = 0
        self.steps_seen = 0
        self._masks: list[torch.Tensor] = []
        steps, batch = ctx.train.steps, ctx.train.batch_size
        # The first round once min_samples were seen, the last by PRUNE_SHARE of the steps, the
        # rounds between min_samples apart (one round at the end when the steps are too few).
        self.first = max(1, min(math.ceil(self.min_samples / batch), math.floor(PRUNE_SHARE * steps)))
        self.interval = interval or max(1, math.ceil(self.min_samples / batch))
        self.last = max(self.first, math.floor(PRUNE_SHARE * steps))
        self.rounds_done = 0
        self.samples_per_round: list[int] = []
        self.done = ctx.price(self.selection()) <= ctx.budget.value

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
            self.total += (per_sample ** 2).sum(0).cpu()
            self.samples += n
        self.steps_seen += 1

    # ---- removal ---------------------------------------------------------------------------
    def selection(self) -> dict:
        return self.blocks.split(~self.removed)

    def importance(self) -> np.ndarray:
        """Mean Fisher per sample; removed blocks below everything, in removal order."""
        score = self.total.numpy() / max(1, self.samples)
        if self.magnitude_order:
            score = self._in_magnitude_order(score)
        for rank, b in enumerate(self.order):  # removed first, earliest first
            score[b] = REMOVED + rank
        return score

    def _in_magnitude_order(self, score: np.ndarray) -> np.ndarray:
        """Within each group, the blocks still kept take the group's Fisher scores in the order of
        their weights' magnitude (the strongest block the highest score): Fisher says how much a
        group can lose, magnitude which of its blocks go."""
        mag = magnitude(self.blocks, self.ctx.model)
        out = score.copy()
        for gb in self.blocks.groups:
            o = self.blocks.offsets[gb.group.id]
            alive = [o + b for b in range(gb.n) if not self.removed[o + b]]
            by_score = sorted(score[alive])
            for b, s in zip(sorted(alive, key=lambda b: mag[b]), by_score):
                out[b] = s
        return out

    def floor_blocks(self) -> dict:
        """Per group id, the full blocks the selection keeps at least where the budget allows:
        FLOOR of those the loss uses. A branch the loss does not use (Fisher 0 on every block)
        still goes down to one block, as the evidence says. From the accumulators, which keep
        the evidence of blocks removed already: the floor does not shrink round by round."""
        score = self.total.numpy() / max(1, self.samples)
        negligible = NEGLIGIBLE * float(score.mean()) if score.size else 0.0
        return {gb.group.id: max(1, math.ceil(self.floor * int(
                    (score[self.blocks.offsets[gb.group.id]:][:gb.full_blocks] > negligible).sum())))
                for gb in self.blocks.groups}

    def rounds_left(self, step: int) -> int:
        """Rounds still to come, this one (at ``step``) included."""
        return max(1, (self.last - 1 - step) // self.interval + 1)

    def after_step(self, step: int) -> None:
        s = step + 1
        if self.done or s < self.first or ((s - self.first) % self.interval and s < self.last):
            return
        now = self.ctx.price(self.selection())
        target = now - (now - self.ctx.budget.value) / self.rounds_left(step)
        choose = select_by_rank if self.rank_only else select
        kept = choose(self.blocks, self.importance(), self.ctx.cost, target, rank_cost=self.ctx.saving_cost,
                      floor=self.floor_blocks())
        flat = self.blocks.join(kept)
        for b in np.flatnonzero(~flat & ~self.removed):
            self.removed[b] = True
            self.order.append(int(b))
        self.rounds_done += 1
        self.samples_per_round.append(self.samples)
        self.done = self.ctx.price(self.selection()) <= self.ctx.budget.value

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
                "total": self.total.clone(), "samples": self.samples, "steps_seen": self.steps_seen,
                "done": self.done, "rounds_done": self.rounds_done,
                "samples_per_round": torch.tensor(self.samples_per_round, dtype=torch.long)}

    def load_state_dict(self, state: dict) -> None:
        self.removed = state["removed"].cpu().numpy().astype(bool)
        self.order = [int(i) for i in state["order"].tolist()]
        self.total = state["total"].cpu().double()
        self.samples, self.steps_seen = int(state["samples"]), int(state["steps_seen"])
        self.done, self.rounds_done = bool(state["done"]), int(state["rounds_done"])
        self.samples_per_round = [int(i) for i in state["samples_per_round"].tolist()]


def run(ctx: Context) -> Outcome:
    method = Fisher(ctx, ctx.options.get("interval"))
    masks = ConsumerMasks(ctx.model, ctx.blocks, method.mask)
    if not ctx.options.get("grouping", True):
        method.alone = masks.first_consumers()
    with masks:
        trained = train(ctx.model, ctx.dataset, ctx.loss_fn, ctx.train, method=method, checkpoint=ctx.checkpoint_at(),
                        show=ctx.show, describe=ctx.describe)
    return Outcome(method.importance(), info={
        "interval": method.interval, "rounds": method.rounds_done, "samples_per_round": method.samples_per_round,
        "removed_in_training": len(method.order), "budget_met_in_training": method.done,
        "unmasked_consumers": masks.skipped, **trained}, floor={} if method.rank_only else method.floor_blocks(),
        by_rank=method.rank_only, removed=list(method.order))
