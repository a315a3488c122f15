"""Masks on blocks of channels while a method trains: one value per block, applied where the
channels are consumed, removed when the method is done.

Where: at the inputs of every consumer (the convs and linears whose input channels the analysis
cut), exactly where ``slim.masked`` zeroes weights, so a mask of 0 is the slimmed model and a
mask shared by the coupled places of a group is what pruning that group does (a residual
stream, an SE multiply or a concat all carry it). A consumer's input x becomes x * m[block of
each input channel]; channels of frozen groups or outside any group see 1.

torch has no "mask the input channels of a layer" utility that follows our channel groups, so
this is a forward pre-hook per consumer module, installed by ``ConsumerMasks`` as a context
manager and removed on exit: nothing stays on the model.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .blocks import Blocks


@dataclass
class Consumer:
    name: str  # module name
    module: nn.Module
    index: torch.Tensor  # per input channel: flat block index, or n_blocks (the constant 1)
    channel_dim: int  # of the module's input


def consumers(model: nn.Module, blocks: Blocks) -> tuple[list[Consumer], list[str]]:
    """The consumer modules whose inputs carry prunable channels, and the consumer parameters
    that are not a conv/linear module's weight (not masked while training; slimming still
    handles them exactly)."""
    of_root = blocks.block_of_roots()
    modules = dict(model.named_modules())
    found, skipped = {}, []
    for cut in blocks.analysis.cuts:
        if cut.role != "consumer":
            continue
        owner, _, pname = cut.fqn.rpartition(".")
        mod = modules.get(owner)
        if pname != "weight" or not isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear,
                                                     nn.ConvTranspose2d)):
            skipped.append(cut.fqn)
            continue
        index = np.array([of_root.get(int(r), blocks.total) for r in np.asarray(cut.ids).reshape(-1)], dtype=np.int64)
        if (index == blocks.total).all():
            continue
        if owner in found:  # the same weight cut twice (re-traced in train mode): one mask
            continue
        found[owner] = Consumer(owner, mod, torch.as_tensor(index), -1 if isinstance(mod, nn.Linear) else 1)
    return list(found.values()), skipped


class ConsumerMasks:
    """Multiply every consumer's input by ``mask_fn(consumer, x)`` expanded over its channels.

    ``mask_fn`` returns the flat per-block mask: shape (n_blocks,) shared by the batch, or
    (N, n_blocks) per sample. With ``on_input``, a method also sees each consumer's input (the
    gates' logit predictors read feature maps this way).
    """

    def __init__(self, model: nn.Module, blocks: Blocks, mask_fn: Callable,
                 on_input: Callable | None = None) -> None:
        self.model = model
        self.blocks = blocks
        self.mask_fn = mask_fn
        self.on_input = on_input
        self.consumers, self.skipped = consumers(model, blocks)
        self._handles = []

    def __enter__(self) -> ConsumerMasks:
        for c in self.consumers:
            self._handles.append(c.module.register_forward_pre_hook(self._hook(c)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def call_order(self) -> list[Consumer]:
        """The consumers in the order a forward pass of the analysis' example reaches them."""
        seen = []
        hooks = [c.module.register_forward_pre_hook(lambda m, a, c=c: seen.append(c) if c not in seen else None)
                 for c in self.consumers]
        try:
            x = self.blocks.analysis.example_inputs
            device = next(self.model.parameters()).device
            was = self.model.training
            self.model.eval()
            with torch.no_grad():
                self.model(*[t.to(device) for t in x])
            self.model.train(was)
        finally:
            for h in hooks:
                h.remove()
        return seen

    def first_consumers(self) -> dict[str, torch.Tensor]:
        """Per consumer name, the flat blocks it is the first (in call order) to consume: what a
        method that looks at each layer alone, blind to channel coupling, would see."""
        taken = torch.zeros(self.blocks.total + 1, dtype=torch.bool)
        taken[-1] = True  # the constant-1 slot of channels outside any block
        first = {}
        for c in self.call_order():
            mine = torch.zeros_like(taken)
            mine[c.index] = True
            first[c.name] = (mine & ~taken)[:-1]
            taken |= mine
        return first

    def _hook(self, c: Consumer):
        def pre_hook(module, args):
            x = args[0]
            if self.on_input is not None:
                self.on_input(c, x)
            m = self.mask_fn(c, x)
            if m is None:
                return None
            ones = torch.ones(m.shape[:-1] + (1,), dtype=m.dtype, device=m.device)
            per_channel = torch.cat([m, ones], -1).index_select(-1, c.index.to(m.device))
            return (x * _along(per_channel, x, c.channel_dim).to(x.dtype),) + tuple(args[1:])
        return pre_hook


def _along(per_channel: torch.Tensor, x: torch.Tensor, dim: int) -> torch.Tensor:
    """Shape a (C,) or (N, C) per-channel vector to broadcast over x along channel dim."""
    dim = dim % x.dim()
    shape = [1] * x.dim()
    shape[dim] = per_channel.shape[-1]
    if per_channel.dim() == 2:
        shape[0] = per_channel.shape[0]
    return per_channel.reshape(shape)
