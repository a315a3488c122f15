"""Give every floating-point parameter and buffer distinct values per channel before a slimmed
model is compared with its masked reference.

Why: freshly built models start with parameters that are equal on every channel (BatchNorm
weight 1 and bias 0, running statistics 0 and 1, PReLU 0.25, LayerNorm weight 1, layer scale
1e-6, zero-initialised heads). A slimming bug that cuts such a parameter at the wrong channel
positions (keeping the first n instead of the kept ones) then changes nothing and every
equivalence check passes. Scaled, not replaced: a value's sign and magnitude are kept (a
variance stays positive), so the network's activations keep their usual range.
"""
from __future__ import annotations

import torch


@torch.no_grad()
def enliven(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    tensors = list(model.parameters()) + [b for b in model.buffers() if b.is_floating_point()]
    for t in tensors:
        if not t.is_floating_point() or t.numel() < 2:
            continue
        if t.abs().max() == 0:  # zero-initialised: small distinct values
            t.copy_(torch.empty(t.shape).normal_(0, 0.02, generator=gen).to(t.dtype))
        elif bool((t == t.flatten()[0]).all()):  # one value on every channel: spread it
            t.mul_(torch.empty(t.shape).uniform_(0.5, 1.5, generator=gen).to(t.dtype))
        elif _channels_repeat(t, gen):  # random init, yet two channels alike: tell them apart
            t.add_(torch.empty(t.shape).normal_(0, 1e-3, generator=gen).to(t.dtype) * t.abs().mean())
    return model


def _channels_repeat(t: torch.Tensor, gen: torch.Generator) -> bool:
    """Whether two slices of ``t`` along its first or second dimension (the output and input
    channels a cut selects) are equal, seen through one random projection each. Why not noise on
    every tensor, as before: drawing it for the 644 M parameters of regnet_y_128gf cost more
    than half of that model's zoo test, and a random initialisation repeats a channel with
    probability zero; this checks that it did not, at the cost of one pass over the tensor per
    dimension. The second dimension is projected with a product of two random vectors (over
    the first and over the rest), so no moved copy of the tensor is made (vit_h_14: 5.2 s)."""
    flat = t.detach().float().reshape(t.shape[0], t.shape[1] if t.dim() > 1 else 1, -1)
    rest = torch.randn(flat.shape[2], generator=gen)
    seen = [flat.reshape(flat.shape[0], -1) @ torch.randn(flat.shape[1] * flat.shape[2], generator=gen)]
    if t.dim() > 1:
        seen.append(torch.einsum("oir,o,r->i", flat, torch.randn(flat.shape[0], generator=gen), rest))
    return any(torch.unique(s).numel() < s.numel() for s in seen)


def distinct_per_channel(model: torch.nn.Module) -> bool:
    """No floating parameter or buffer has the same value on every element."""
    tensors = list(model.parameters()) + [b for b in model.buffers() if b.is_floating_point()]
    return all(t.numel() < 2 or not bool((t == t.flatten()[0]).all()) for t in tensors)
