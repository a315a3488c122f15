"""Learned gates (ACPLI): channel importance learned from feature maps under a budget loss.

As the paper has it, on blocks and with any cost model:
- one gate per block of each prunable group, shared by all its coupled places (masks.py applies
  it at every consumer of the group);
- a gate is a binary-concrete (Gumbel-sigmoid) sample at temperature 0.5 of the group's logits,
  which start at 3.0 (keep probability 0.95);
- a logit predictor per group — 3x3 depthwise conv -> 1x1 conv (one output per block) -> global
  average pool (a linear layer for a group consumed by linears) — reads a feature map of the
  group (the input of its first consumer, average-pooled to at most 14x14 so that predicting
  costs little next to the layer it gates); its batch-mean output updates the group's logits by
  an exponential moving average, and the loss reaches the predictor through that update;
- loss = task loss + entropy of the keep-probabilities (pushes them away from 0.5) + the budget
  loss |cost(expected widths) / budget - 1|, its weight annealed from 0 towards its final value
  by exponential decay of the gap;
- BatchNorm statistics are frozen while the gates train (the loop's freeze_bn).
The keep-probabilities at the end are the blocks' importance; the predictors live in this
object, never in the model, so nothing remains at run time.

Where this departs from the paper, and why: its one-sided ReLU(cost / budget - 1) at weight 5
and a fixed gate learning rate (0.02) with Adam's momentum left the gates far from the budget in
the step counts a user gives (fashion:mobilenet_w1 at 50% of its latency, block 32: expected
0.661 ms after 40 steps and 0.646 ms after 100, against 0.340 ms), so their final ranking was
Gumbel noise. Here the budget loss weighs 50 and is two-sided (|cost / budget - 1|: one-sided
at that weight it overshot to 44% of a FLOPs budget, training a net narrower than the plan), the
gates' learning rate scales with the run (a logit travels about 5: 5 / steps, at least 0.05)
and decays to a tenth over its second half, and their Adam has no momentum (with momentum 0.9
the expected cost swung 30% around the budget and, at 30% of a toy's FLOPs, collapsed to 40% of
it). Measured: 0.351 ms after 40 steps and after 100 on that net; within 2% of the toy's
budgets at 50% and 30% after 100 (tests/test_prune.py). Fewer than MIN_STEPS steps get a
warning, as does a run that ends more than 5% over the budget. The paper's loss, rate and
momentum stay options (budget_loss="relu", budget_weight=5, gate_lr=0.02, momentum=0.9).

Ablations (benchmarks/ablations.py): ``predictors=False`` learns the logits directly (plain
learnable logits, trained at ``gate_lr``), ``entropy_weight=0`` drops the entropy loss.
"""
from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import PruneWarning
from ..context import Context, Outcome
from ...train.loop import train
from ..masks import ConsumerMasks

POOLED = 14  # predictors read feature maps average-pooled to at most 14x14 (a 224 model's last stage)
DEFAULTS = {"temperature": 0.5, "init_logit": 3.0, "ema": 0.3, "entropy_weight": 0.01,
            "budget_weight": 50.0, "anneal_share": 0.25, "gate_lr": None, "predictors": True,
            "budget_loss": "two-sided", "momentum": 0.0}
MIN_STEPS = 40  # the fewest that brought the expected cost within 5% of the budget (docstring)
REACHED = 0.05  # expected cost within this share of the budget: the gates reached it


class Predictor(nn.Module):
    """Feature map of a group -> one logit per block of the group (batch mean)."""

    def __init__(self, channels: int, n_blocks: int, conv: bool, init_logit: float) -> None:
        super().__init__()
        if conv:
            self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
                                      nn.Conv2d(channels, n_blocks, 1))
        else:
            self.body = nn.Linear(channels, n_blocks)
        self.conv = conv
        last = self.body[-1] if conv else self.body
        nn.init.zeros_(last.weight)  # starts by predicting the initial logits exactly
        nn.init.constant_(last.bias, init_logit)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Inputs scaled by 1/channels: Adam moves every weight by about the learning rate, so an
        # unscaled 1x1 layer over C channels would move the logits C times faster than its bias.
        if self.conv:
            if x.shape[-1] > POOLED or x.shape[-2] > POOLED:  # the same map, averaged to a cheap size
                x = F.adaptive_avg_pool2d(x, (min(POOLED, x.shape[-2]), min(POOLED, x.shape[-1])))
            h = self.body[0](x) / x.shape[1]
            return self.body[1](h).mean((2, 3)).mean(0)
        return self.body(x.reshape(-1, x.shape[-1]) / x.shape[-1]).mean(0)


class Gates:
    def __init__(self, ctx: Context, masks: ConsumerMasks, options: dict) -> None:
        self.ctx, self.blocks = ctx, ctx.blocks
        self.o = {**DEFAULTS, **options}
        if self.o["gate_lr"] is None:  # a logit travels about 5 over the run
            self.o["gate_lr"] = max(0.05, 5.0 / max(1, ctx.train.steps))
        device = next(ctx.model.parameters()).device
        self.logits = torch.full((self.blocks.total,), float(self.o["init_logit"]), dtype=torch.float32, device=device)
        self.generator = torch.Generator().manual_seed(ctx.train.seed)
        self.noise = self._draw()
        # Each group's predictor reads the input of the group's first consumer to run.
        order = masks.call_order()
        self.readers: dict[str, list[int]] = {}  # consumer name -> group ids it predicts
        self.predictors = nn.ModuleDict()
        # Without predictors the logits themselves are learned (the ablation's plain logits).
        self.free = nn.Parameter(self.logits.clone()) if not self.o["predictors"] else None
        for gb in self.blocks.groups if self.free is None else ():
            o = self.blocks.offsets[gb.group.id]
            first = next((c for c in order if ((c.index >= o) & (c.index < o + gb.n)).any()), None)
            if first is None:
                continue  # consumed nowhere a mask reaches: its importance stays the initial one
            channels = int(first.index.numel())
            self.predictors[str(gb.group.id)] = Predictor(channels, gb.n, first.channel_dim == 1,
                                                          float(self.o["init_logit"])).to(device)
            self.readers.setdefault(first.name, []).append(gb.group.id)
        self.step_logits = self.logits.clone() if self.free is None else self.free

    def _draw(self) -> torch.Tensor:
        u = torch.rand(self.blocks.total, generator=self.generator).clamp(1e-6, 1 - 1e-6)
        return (u.log() - (1 - u).log()).to(self.logits.device)

    # ---- masks -------------------------------------------------------------------------------
    def read(self, consumer, x) -> None:
        for gid in self.readers.get(consumer.name, ()):
            o, n = self.blocks.offsets[gid], self.blocks.by_id[gid].n
            predicted = self.predictors[str(gid)](x.detach().float())
            blended = (1 - self.o["ema"]) * self.logits[o:o + n] + self.o["ema"] * predicted
            self.step_logits = torch.cat([self.step_logits[:o], blended, self.step_logits[o + n:]])

    def mask(self, consumer, x):
        if not torch.is_grad_enabled():  # evaluation: the expected gate
            return torch.sigmoid(self.logits)
        return torch.sigmoid((self.step_logits + self.noise) / self.o["temperature"])

    # ---- loop protocol ---------------------------------------------------------------------
    def parameters(self) -> list:
        learned = list(self.predictors.parameters()) if self.free is None else [self.free]
        return [{"params": learned, "lr": self.o["gate_lr"], "weight_decay": 0.0, "betas": (self.o["momentum"], 0.999)}]

    def lr_scale(self, step: int) -> float:
        """The gates' learning rate over the run: whole for the first half, then down to a tenth
        (a constant rate left the expected cost swinging 10% around the budget to the end)."""
        half = self.ctx.train.steps / 2
        return 1.0 if step < half else 1.0 - 0.9 * (step - half) / max(1.0, half)

    def budget_weight(self, step: int) -> float:
        tau = max(1.0, self.o["anneal_share"] * self.ctx.train.steps)
        return self.o["budget_weight"] * (1 - math.exp(-(step + 1) / tau))

    def extra_loss(self, step: int, inputs=None, outputs=None) -> torch.Tensor:
        p = torch.sigmoid(self.step_logits)
        expected = self.ctx.cost(self.blocks.soft_fractions(p))
        self._expected = float(expected.detach())
        ratio = expected / self.ctx.budget.value - 1
        budget = ratio.abs() if self.o["budget_loss"] == "two-sided" else torch.relu(ratio)
        entropy = -(p * torch.log(p + 1e-8) + (1 - p) * torch.log(1 - p + 1e-8)).mean()
        return (self.budget_weight(step) * budget + self.o["entropy_weight"] * entropy).float()

    def after_backward(self, step: int) -> None:
        pass

    def after_step(self, step: int) -> None:
        self.logits = self.step_logits.detach().clone()  # the moving average moves on
        self.step_logits = self.logits.clone() if self.free is None else self.free
        self.noise = self._draw()

    def finished(self) -> bool:
        return False

    def keep_probs(self) -> torch.Tensor:
        return torch.sigmoid(self.logits.detach()).cpu()

    def status(self) -> dict:
        return {"cost": getattr(self, "_expected", float("nan")), "kept": float(self.keep_probs().mean())}

    def state_dict(self) -> dict:
        return {"logits": self.logits.clone(), "predictors": self.predictors.state_dict(),
                "generator": self.generator.get_state(), "noise": self.noise.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.logits = state["logits"].clone()
        if self.free is not None:
            with torch.no_grad():
                self.free.copy_(self.logits)
        self.step_logits = self.logits.clone() if self.free is None else self.free
        self.predictors.load_state_dict(state["predictors"])
        self.generator.set_state(state["generator"].cpu())
        self.noise = state["noise"].clone()


def attach(ctx: Context, options: dict) -> tuple[Gates, ConsumerMasks]:
    """Gates for ctx's blocks and the masks that apply them (enter the masks to gate the model)."""
    masks = ConsumerMasks(ctx.model, ctx.blocks, mask_fn=None)
    method = Gates(ctx, masks, options)
    masks.mask_fn, masks.on_input = method.mask, method.read
    return method, masks


def run(ctx: Context) -> Outcome:
    method, masks = attach(ctx, ctx.options)
    if ctx.train.steps < MIN_STEPS:
        warnings.warn(f"gates with {ctx.train.steps} steps: they need about {MIN_STEPS} to bring the expected "
                      f"cost to the budget, and their ranking is uncertain before", PruneWarning, stacklevel=3)
    with masks:
        trained = train(ctx.model, ctx.dataset, ctx.loss_fn, ctx.train, method=method, checkpoint=ctx.checkpoint_at(),
                        show=ctx.show, describe=ctx.describe)
    settings = {k: method.o[k] for k in DEFAULTS}
    with torch.no_grad():  # of the keep-probabilities the gates end with
        expected = float(ctx.cost(method.blocks.soft_fractions(method.keep_probs().double())))
    if expected > (1 + REACHED) * ctx.budget.value:
        warnings.warn(f"the gates ended with an expected cost of {expected:.4g} {ctx.budget.unit}, "
                      f"{100 * (expected / ctx.budget.value - 1):.0f}% over the budget ({ctx.budget.value:.4g}): "
                      f"their ranking is uncertain; more steps help", PruneWarning, stacklevel=3)
    return Outcome(method.keep_probs().double().numpy(), info={
        "settings": settings, "expected_cost": expected,
        "unmasked_consumers": masks.skipped, **trained})
