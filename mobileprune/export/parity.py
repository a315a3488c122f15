"""Parity: does the artifact compute what eager PyTorch computes?

Inputs are a few seeded random tensors of the example inputs' shapes plus, for an image model
(one N x 3 x H x W input), real ImageNet sample images resized to H x W: random inputs reach
every channel, real images reach the value ranges a deployed model sees.

The score is relative to the output's scale: max |artifact - eager| / max |eager| over all inputs
and outputs, so a logit model and a probability model share one tolerance.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

DEFAULT_TOLERANCE = 1e-4


@dataclass
class Parity:
    max_abs_diff: float
    rel_diff: float  # max_abs_diff / max |eager output|
    tolerance: float
    inputs: int  # input sets compared
    images: int  # of which real images
    passed: bool
    top1_agreement: float | None = None  # share of real images with the same top-1 class
    min_top1_agreement: float | None = None  # the least agreement that passes (quantized formats)

    def to_dict(self) -> dict:
        return asdict(self)


def input_sets(example_inputs: tuple, random: int = 3, images: int = 4, seed: int = 0) -> tuple[list, int]:
    """(list of input tuples as float32 numpy arrays, how many of them are real images)."""
    gen = torch.Generator().manual_seed(seed)
    sets = [tuple(torch.randn(x.shape, generator=gen).numpy() for x in example_inputs) for _ in range(random)]
    n_images = 0
    if images and len(example_inputs) == 1 and example_inputs[0].dim() == 4 and example_inputs[0].shape[1] == 3:
        from ..pretrained import MissingPackage, imagenet_samples

        n, _, h, w = example_inputs[0].shape
        try:
            batch, _ = imagenet_samples(size=max(h, w))
        except MissingPackage:
            batch = None  # no sample images installed: random inputs only, the manifest says so
        if batch is not None:
            batch = torch.nn.functional.interpolate(batch, size=(h, w), mode="bilinear") if h != w else batch
            for i in range(0, min(images * n, len(batch)) - n + 1, n):
                sets.append((batch[i:i + n].contiguous().numpy(),))
                n_images += 1
    return sets, n_images


def eager_outputs(model: torch.nn.Module, sets: list) -> list[list[np.ndarray]]:
    with torch.no_grad():
        outs = []
        for inputs in sets:
            out = model(*(torch.from_numpy(a) for a in inputs))
            flat = out if isinstance(out, (tuple, list)) else (out,)
            outs.append([o.detach().numpy() for o in flat])
    return outs


def batches(dataset, count: int, batch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first ``count`` items of an (image, label) ``dataset`` (fewer if it is shorter) as
    (images, labels) batches of ``batch`` (an exported program's input size is fixed)."""
    items = [dataset[i] for i in range(min(count, len(dataset)) // batch * batch)]
    return [(torch.stack([x for x, _ in items[i:i + batch]]), torch.as_tensor([y for _, y in items[i:i + batch]]))
            for i in range(0, len(items), batch)]


def top1_of(outputs: list, labels: list) -> float:
    """The share of labels a list of per-batch outputs (first output: logits) ranks first."""
    right = sum(int((np.asarray(out[0]).reshape(len(y), -1).argmax(-1) == np.asarray(y)).sum())
                for out, y in zip(outputs, labels))
    return right / max(1, sum(len(y) for y in labels))


def compare(expected: list[list[np.ndarray]], got: list[list[np.ndarray]], tolerance: float,
            images: int = 0, min_top1_agreement: float | None = None) -> Parity:
    if len(expected) != len(got) or any(len(e) != len(g) for e, g in zip(expected, got)):
        raise ValueError("the artifact returned a different number of outputs than the eager model")
    max_abs, scale = 0.0, 0.0
    for e_set, g_set in zip(expected, got):
        for e, g in zip(e_set, g_set):
            g = np.asarray(g).reshape(e.shape) if np.asarray(g).size == e.size else g
            if np.shape(g) != e.shape:
                raise ValueError(f"artifact output shape {np.shape(g)} differs from eager {e.shape}")
            max_abs = max(max_abs, float(np.max(np.abs(e.astype(np.float64) - g))) if e.size else 0.0)
            scale = max(scale, float(np.max(np.abs(e))) if e.size else 0.0)
    rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    top1 = None
    if images:  # the last ``images`` sets are the real images
        agree = [np.array_equal(e[0].argmax(-1), g[0].reshape(e[0].shape).argmax(-1))
                 for e, g in zip(expected[-images:], got[-images:])]
        top1 = float(np.mean(agree))
    passed = bool(np.isfinite(rel) and rel <= tolerance)
    if min_top1_agreement is not None and top1 is not None:
        passed = passed and top1 >= min_top1_agreement
    return Parity(max_abs, rel, tolerance, len(expected), images, passed, top1, min_top1_agreement)
