"""Rules for ops that work within each channel (pooling, resizing) or reduce over dimensions.

Pooling and interpolation touch only the trailing spatial dims: channels pass through.
A reduction (mean, sum, norm, softmax) over a channel dimension makes every output depend on all
channels, so removing one changes the rest: those channels are frozen.
"""
from __future__ import annotations

import numpy as np

from ..values import T, Tracked


def _spatial_dims(op: str, rank: int) -> list[int]:
    k = 3 if "3d" in op else 1 if "1d" in op else 2
    return list(range(rank - k, rank))


def spatial(ctx, a: dict, out_shape):
    """max/avg/adaptive pooling, upsample/interpolate: per channel over the last 1-3 dims."""
    x: T = a.get("self", a.get("input"))
    if not x.tracked:
        return [None, None] if isinstance(out_shape, list) else None
    if set(_spatial_dims(ctx.op, len(x.shape))) & set(x.tracked.varying()):
        return ctx.unknown(a, f"{ctx.op} over a channel dimension")
    if isinstance(out_shape, list):  # *_with_indices: values and indices share channels
        return [x.value, x.value]
    return x.value


def reduction(ctx, a: dict, out_shape):
    x: T = a.get("self", a.get("input"))
    rank = len(x.shape)
    dims = a.get("dim")
    if dims is None or dims == []:
        dims = list(range(rank))
    elif isinstance(dims, int):
        dims = [dims]
    dims = sorted({d % rank for d in dims})
    if not x.tracked:
        ctx.claim_as_fixed([x], ctx.op)
        return None
    if set(dims) & set(x.tracked.varying()):
        return ctx.unknown(a, f"{ctx.op} reduces over channels")
    ids = x.tracked.ids
    if not a.get("keepdim", False):
        ids = ids.reshape([n for d, n in enumerate(ids.shape) if d not in dims])
    return Tracked(np.ascontiguousarray(ids))


def along_dim(ctx, a: dict, out_shape):
    """softmax / log_softmax / cumsum: independent per channel unless taken along channels."""
    x: T = a.get("self", a.get("input"))
    if not x.tracked:
        return None
    if a["dim"] % len(x.shape) in x.tracked.varying():
        return ctx.unknown(a, f"{ctx.op} along channels")
    return x.value
