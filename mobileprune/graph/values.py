"""What the analysis knows about one tensor of the captured graph.

A tensor is either
- ``Tracked``: ``ids`` has the tensor's rank; along each dimension its size is either the
  tensor's size or 1 (broadcast). ``ids[...]`` is the atom of that element's channel, or
  UNTRACKED. A plain feature map [N, C, H, W] has ids of shape [1, C, 1, 1].
- ``ParamView``: the tensor is a parameter/buffer, or a view or elementwise image of some
  parameters of one shape; ``dims`` maps each tensor dimension to the parameter dimension it indexes (None for an added dim).
- ``None``: nothing known (inputs, constants, results of ops that mix channels). Such a tensor
  can never shrink, so whenever it meets a tracked channel dimension, that channel is frozen.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch.fx import Node

from .atoms import UNTRACKED


@dataclass
class Tracked:
    ids: np.ndarray

    def varying(self) -> list[int]:
        return [d for d, n in enumerate(self.ids.shape) if n > 1]


@dataclass
class ParamView:
    fqns: tuple  # parameters indexed alike (FrozenBatchNorm's w * rsqrt(var) gives two)
    dims: tuple  # tensor dim -> parameter dim or None
    param_shape: tuple


@dataclass
class T:
    """A tensor argument as a rule sees it: what is known, and its concrete shape."""

    value: Tracked | ParamView | None
    shape: tuple
    node: Node | None = None

    @property
    def tracked(self) -> Tracked | None:
        return self.value if isinstance(self.value, Tracked) else None


def tensor_args(a: dict) -> list[T]:
    """Every tensor argument of a bound op, lists of tensors (cat's inputs) flattened."""
    out = []
    for v in a.values():
        if isinstance(v, T):
            out.append(v)
        elif isinstance(v, (list, tuple)):
            out.extend(tensor_args(dict(enumerate(v))))
    return out


def compact(ids: np.ndarray) -> np.ndarray:
    """Shrink every dimension along which ids are constant to size 1."""
    for d in range(ids.ndim):
        if ids.shape[d] > 1:
            first = np.take(ids, [0], axis=d)
            if np.array_equal(np.broadcast_to(first, ids.shape), ids):
                ids = first
    return ids


def untracked_like(rank: int) -> np.ndarray:
    return np.full((1,) * rank, UNTRACKED, dtype=np.int64)


def ids_of(t: T) -> np.ndarray:
    """Compact ids of a tensor argument; untracked/param tensors give all-UNTRACKED."""
    if isinstance(t.value, Tracked):
        return t.value.ids
    return untracked_like(len(t.shape))


def vector_along(ids: np.ndarray, dim: int, size: int) -> np.ndarray | None:
    """The 1-D ids along ``dim`` if ids vary along no other dimension, else None."""
    others = [d for d, n in enumerate(ids.shape) if n > 1 and d != dim]
    if others:
        return None
    v = ids.reshape(-1) if ids.size > 1 else np.full(1, ids.reshape(-1)[0])
    return np.broadcast_to(v, (size,)).copy()


def align_right(ids: np.ndarray, rank: int) -> np.ndarray:
    """Prepend size-1 dims (numpy/torch broadcasting aligns shapes at the right)."""
    return ids.reshape((1,) * (rank - ids.ndim) + ids.shape)
