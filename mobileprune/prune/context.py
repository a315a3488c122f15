"""What a pruning method is given: the model to train, its channel blocks, the cost model and
the budget, the data and the loop's settings. Every method returns an importance per block
(or, for uniform scaling, the selection itself); the final selection is shared (select.py)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..train.loop import Checkpoint, TrainConfig
from .blocks import Blocks
from .budget import Budget


@dataclass
class Context:
    model: nn.Module  # a copy of the user's model: methods train it in place
    blocks: Blocks
    cost: Callable  # a CostModel: fractions -> tensor
    budget: Budget
    train: TrainConfig
    dataset: object = None  # training split (map-style Dataset of (input, target))
    loss_fn: Callable | None = None
    checkpoint: Path | None = None
    run_key: dict = field(default_factory=dict)
    show: bool = True
    options: dict = field(default_factory=dict)  # method settings the user overrides
    saving_cost: Callable | None = None  # what a removal saves is priced by (fisher); default: cost

    def price(self, selection: dict) -> float:
        with torch.no_grad():
            return float(self.cost(self.blocks.fractions(selection)))

    def checkpoint_at(self) -> Checkpoint | None:
        """Where a trained method checkpoints (OUT/checkpoint.pt), keyed on this run's settings."""
        return Checkpoint(self.checkpoint, self.run_key) if self.checkpoint is not None else None

    def describe(self, status: dict) -> str:
        """The progress line: loss, predicted cost vs budget, kept share."""
        parts = [f"loss {status['loss']:.3f}"]
        if "cost" in status:
            parts.append(f"cost {status['cost']:.4g}/{self.budget.value:.4g} {self.budget.unit}")
        if "kept" in status:
            parts.append(f"kept {100 * status['kept']:.0f}%")
        return "  ".join(parts)


@dataclass
class Outcome:
    importance: np.ndarray | None  # one score per block (higher = keep), or
    selection: dict | None = None  # the selection itself (uniform scaling)
    info: dict = field(default_factory=dict)  # settings and what happened, for the report
    floor: dict = field(default_factory=dict)  # per group id, the full blocks the final selection keeps at
    # least where the budget allows (select.select)
    by_rank: bool = False  # the final selection blind to what removals save (fisher's ablation)
    removed: list = field(default_factory=list)  # flat blocks removed while training, in the order they went
    # (fisher): a looser aim puts the last removed back first (select.put_back)
