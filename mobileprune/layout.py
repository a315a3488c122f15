"""Training and evaluation in channels-last memory layout on CPU, the weights handed back as they came.

Why: torch's CPU convolutions and BatchNorm run faster on NHWC (channels-last) tensors than on
NCHW: one training step of batch 32 at 128x128, 1 thread, on an Intel Xeon VM (family 6 model
106): fashion:mobilenet_w1 0.609 -> 0.457 s, fashion:resnet_w0.5 0.326 -> 0.207 s; eval
forwards 1.35-1.5x faster. The layout changes where numbers sit in memory, not the model: the
results agree up to the order of float sums. Weights go back to the contiguous layout
afterwards, so what is exported, saved or compared later is what it was before.

One exception, a oneDNN bug (uxlfoundation/oneDNN#6035, open): the weight gradient of a 1x1
convolution with stride > 1 and fewer than 16 input channels (per group) on channels-last
tensors writes past its workspace. torch 2.14.1 on an Intel Xeon VM (family 6 model 106):
Conv2d(8, 16, 1, stride=2) on a 32x8x64x64 channels-last input segfaults in backward (17 input
channels or more, stride 1, or NCHW: fine); the issue reports wrong gradients and hangs on
other CPUs. Pruning makes such layers: ResNet shortcuts pruned to 8 or 4 input channels
(Torch-Pruning's, uniform's and ours at block 8 or 4) killed every ResNet fine-tuning of
benchmarks/peers.py. A model with one trains in its own layout; without gradients
(evaluation) channels-last stays, the bug is in backward.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def channels_last(model: nn.Module):
    """``model``'s 4-D weights in channels-last layout for the block, contiguous again after it,
    even on error. Convolutions then produce channels-last outputs from any input layout.
    Left alone on CUDA (the gain there depends on mixed precision, not measured here) and when
    a 4-D weight is not in the default contiguous layout (the user chose one: it is kept), and
    while gradients are on when a layer would meet oneDNN's bug (module docstring)."""
    device = next(model.parameters(), torch.empty(0)).device
    if (device.type != "cpu" or not all(p.is_contiguous() for p in model.parameters() if p.dim() == 4)
            or (torch.is_grad_enabled() and any(map(_hits_onednn_6035, model.modules())))):
        yield model
        return
    model.to(memory_format=torch.channels_last)
    try:
        yield model
    finally:
        model.to(memory_format=torch.contiguous_format)


def _hits_onednn_6035(module: nn.Module) -> bool:
    """A layer whose channels-last weight gradient oneDNN computes out of bounds (module docstring).
    16: oneDNN's input-channel block on AVX-512 (8 on AVX2, below it too)."""
    return (isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1) and max(module.stride) > 1
            and module.in_channels // module.groups < 16)
