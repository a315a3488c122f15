"""Rules for ops that move, merge, cut or join tensor dimensions.

The rule is to replay the op on the id array itself (numpy reshape/transpose/concatenate), so a
flatten before a linear, a permute to channels-last, or a channel shuffle come out right without
a special case. Two choices are conventions, written down here and in docs/analysis.md:
- a reshape that splits one channel dimension into several (channel shuffle's view(N, g, C/g, ..),
  attention heads) treats the leading factors as fixed counts and the last one as the width
  that shrinks: the leading slices are coupled position by position;
- chunk/split by a size follow the runtime size, so their pieces are coupled position by
  position; split with literal sizes and constant slices freeze what they pin down.
slim() verifies the slimmed model against the masked one, so a convention that does not hold
for a model is reported there, never shipped.
"""
from __future__ import annotations

import numpy as np

from ..atoms import UNTRACKED
from ..values import ParamView, T, Tracked, compact, ids_of, untracked_like


def _norm_dim(d: int, rank: int) -> int:
    return d % rank if rank else 0


def reshape(ctx, a: dict, out_shape: tuple):
    x: T = next(v for v in a.values() if isinstance(v, T))
    if isinstance(x.value, ParamView):
        return _reshape_param(ctx, x, out_shape)
    if not x.tracked:
        return None
    ids = x.tracked.ids
    if not x.tracked.varying():
        return Tracked(ids.reshape(-1)[:1].reshape((1,) * len(out_shape)))
    full = np.broadcast_to(ids, x.shape).reshape(out_shape)
    if not all(_kept_whole(tuple(x.shape), tuple(out_shape), d) for d in x.tracked.varying()):
        ctx.pin(ids, f"reshape of {tuple(x.shape)} to {tuple(out_shape)}")
    return Tracked(_couple_leading(ctx, compact(full)))


def _kept_whole(shape: tuple, out_shape: tuple, d: int) -> bool:
    """Whether dim ``d`` of ``shape`` survives a reshape as one whole dim of ``out_shape`` (the
    same elements before it, the same size): then the reshape's sizes do not involve it."""
    before = int(np.prod(shape[:d]))
    prefix = 1
    for n in out_shape:
        if prefix == before and n == shape[d]:
            return True
        prefix *= n
    return False


def _couple_leading(ctx, ids: np.ndarray) -> np.ndarray:
    varying = [d for d, n in enumerate(ids.shape) if n > 1]
    if len(varying) <= 1:
        return ids
    for d in varying[:-1]:
        first = np.take(ids, [0], axis=d)
        ctx.atoms.union_arrays(ids, first)
        bad = (ids == UNTRACKED) != (np.broadcast_to(first, ids.shape) == UNTRACKED)
        if bad.any():
            ctx.freeze(ids, "channel dimension split into slices that cannot all shrink")
    return compact(ctx.atoms.roots(ids))


def _reshape_param(ctx, x: T, out_shape: tuple):
    """A view of a parameter that only adds/removes size-1 dims keeps its dim mapping."""
    pv = x.value
    kept_in = [d for d, n in enumerate(x.shape) if n != 1]
    kept_out = [d for d, n in enumerate(out_shape) if n != 1]
    if [x.shape[d] for d in kept_in] != [out_shape[d] for d in kept_out]:
        ctx.claim_as_fixed([x], "reshape of a parameter")
        return None
    dims = [None] * len(out_shape)
    for i, o in zip(kept_in, kept_out):
        dims[o] = pv.dims[i]
    ctx.claim(pv)
    return ParamView(pv.fqns, tuple(dims), pv.param_shape)


def permute(ctx, a: dict, out_shape: tuple):
    x: T = a["self"]
    rank = len(x.shape)
    if ctx.op == "permute":
        perm = [_norm_dim(d, rank) for d in a["dims"]]
    else:  # transpose / swapaxes / t
        perm = list(range(rank))
        d0 = _norm_dim(a.get("dim0", a.get("axis0", 0)), rank)
        d1 = _norm_dim(a.get("dim1", a.get("axis1", 1 if rank > 1 else 0)), rank)
        perm[d0], perm[d1] = perm[d1], perm[d0]
    if isinstance(x.value, ParamView):
        ctx.claim(x.value)
        return ParamView(x.value.fqns, tuple(x.value.dims[p] for p in perm), x.value.param_shape)
    if not x.tracked:
        return None
    return Tracked(np.transpose(x.tracked.ids, perm))


def expand(ctx, a: dict, out_shape: tuple):
    x: T = a["self"]
    extra = len(out_shape) - len(x.shape)
    if isinstance(x.value, ParamView):
        ctx.claim(x.value)
        return ParamView(x.value.fqns, (None,) * extra + tuple(x.value.dims), x.value.param_shape)
    if not x.tracked:
        return None
    return Tracked(x.tracked.ids.reshape((1,) * extra + x.tracked.ids.shape))


def cat(ctx, a: dict, out_shape: tuple):
    parts: list[T] = [t for t in a["tensors"] if isinstance(t, T)]
    rank = len(out_shape)
    dim = _norm_dim(a.get("dim", 0), rank)
    along = any(dim in t.tracked.varying() for t in parts if t.tracked)
    if not along:
        # Joined along a non-channel dim (tokens, batch): channels must line up like a join.
        from .elementwise import pointwise

        squashed = {f"t{i}": T(p.value, tuple(1 if d == dim else n for d, n in enumerate(p.shape)), p.node)
                    for i, p in enumerate(parts)}
        out = pointwise(ctx, squashed, tuple(1 if d == dim else n for d, n in enumerate(out_shape)))
        return out
    others = [d for d in range(rank) if d != dim]
    if any(d in t.tracked.varying() for t in parts if t.tracked for d in others):
        return ctx.unknown(a, "concatenation of tensors whose channels vary along several dims")
    pieces = []
    for t in parts:
        ids = ids_of(t) if t.tracked else untracked_like(rank)
        pieces.append(np.broadcast_to(ids.reshape(-1), (t.shape[dim],)))
        if isinstance(t.value, ParamView):
            ctx.claim_as_fixed([t], "concatenated along channels")
    shape = [1] * rank
    shape[dim] = out_shape[dim]
    return Tracked(np.concatenate(pieces).reshape(shape))


def split(ctx, a: dict, out_shapes: list):
    """chunk / split / split_with_sizes / unbind: a list of pieces along ``dim``."""
    x: T = a["self"]
    rank = len(x.shape)
    dim = _norm_dim(a.get("dim", 0), rank)
    if isinstance(x.value, ParamView) or not x.tracked or dim not in x.tracked.varying():
        if isinstance(x.value, ParamView):
            ctx.claim_as_fixed([x], f"{ctx.op} of a parameter")
            return [None] * len(out_shapes)
        if not x.tracked:
            return [None] * len(out_shapes)
        squeeze = ctx.op == "unbind"
        ids = x.tracked.ids
        return [Tracked(ids.reshape([n for d, n in enumerate(ids.shape) if d != dim]) if squeeze else ids)
                for _ in out_shapes]
    if len(x.tracked.varying()) > 1:
        return ctx.unknown(a, f"{ctx.op} of a tensor whose channels vary along several dims")
    vec = x.tracked.ids.reshape(-1)
    sizes = [s[dim] for s in out_shapes] if ctx.op != "unbind" else [1] * len(out_shapes)
    if ctx.op in ("split_with_sizes", "unbind") or len(set(sizes)) != 1:
        ctx.freeze(vec, f"{ctx.op} into pieces of fixed sizes {sizes}")
    else:
        if ctx.op == "split":  # split(x, n): n is a constant here, maybe a plain attribute in the code
            ctx.pin(vec, f"split into pieces of {sizes[0]} channels")
        pieces = vec.reshape(len(sizes), sizes[0])
        ctx.atoms.union_arrays(pieces, pieces[:1])  # runtime-sized pieces stay equal
        fixed = (pieces == UNTRACKED) != (pieces[:1] == UNTRACKED)
        if fixed.any():
            ctx.freeze(vec, f"{ctx.op} pieces mix removable and fixed channels")
        vec = ctx.atoms.roots(vec)
    out, start = [], 0
    for s, n in zip(out_shapes, sizes):
        shape = [1] * len(s)
        if ctx.op == "unbind":
            out.append(Tracked(np.full((1,) * len(s), vec[start])))
        else:
            shape[dim] = n
            out.append(Tracked(vec[start:start + n].reshape(shape)))
        start += n
    return out


def slice_(ctx, a: dict, out_shape: tuple):
    """slice / narrow / select: constant positions along one dim."""
    x: T = a["self"]
    rank = len(x.shape)
    dim = _norm_dim(a.get("dim", 0), rank)
    size = x.shape[dim]
    if isinstance(x.value, ParamView):
        if tuple(out_shape) == tuple(x.shape):
            ctx.claim(x.value)
            return x.value
        ctx.claim_as_fixed([x], f"{ctx.op} of a parameter")
        return None
    if not x.tracked:
        return None
    ids = x.tracked.ids
    if ctx.op == "select":
        index = a["index"] % size
        start, stop, step = index, index + 1, 1
    elif ctx.op == "narrow":
        start = a["start"] % size if size else 0
        stop, step = start + a["length"], 1
    else:
        start, stop, step = slice(a.get("start"), a.get("end"), a.get("step") or 1).indices(size)
    if dim in x.tracked.varying():
        if (start, stop, step) != (0, size, 1):
            # x[:, start:stop] with literal bounds still picks the same channels after slimming
            # only if nothing before `stop` moved: freeze that prefix, the tail stays free.
            ctx.freeze(np.take(ids, np.arange(0, stop), axis=dim), f"{ctx.op} of channels at fixed positions")
        ids = np.take(ids, np.arange(start, stop, step), axis=dim)
    if ctx.op == "select":
        ids = ids.reshape([n for d, n in enumerate(ids.shape) if d != dim])
    return Tracked(ids)


def pad(ctx, a: dict, out_shape: tuple):
    x: T = a.get("self", a.get("input"))
    widths = list(a.get("pad", a.get("padding")) or [])
    rank = len(x.shape)
    padded = {rank - 1 - i // 2 for i, w in enumerate(widths) if w}
    if x.tracked and padded & set(x.tracked.varying()):
        return ctx.unknown(a, "padding along a channel dimension")
    return _same_or_none(x)


def roll(ctx, a: dict, out_shape: tuple):
    x: T = a["self"]
    rank = len(x.shape)
    dims = [_norm_dim(d, rank) for d in (a.get("dims") or range(rank))]
    if x.tracked and set(dims) & set(x.tracked.varying()):
        return ctx.unknown(a, f"{ctx.op} along a channel dimension")
    return _same_or_none(x)


def _same_or_none(x: T):
    return x.value if x.tracked else None


def channel_shuffle(ctx, a: dict, out_shape: tuple):
    """aten.channel_shuffle(x, g): the same view(g, C/g)-transpose-view as the unfused form."""
    x: T = a["self"]
    if not x.tracked or 1 not in x.tracked.varying():
        return _same_or_none(x)
    if len(x.tracked.varying()) > 1:
        return ctx.unknown(a, "channel_shuffle of a tensor whose channels vary along several dims")
    g = int(a["groups"])
    ids = _couple_leading(ctx, x.tracked.ids.reshape(g, -1))
    ids = np.broadcast_to(ids, (g, x.shape[1] // g)).T.reshape(-1)
    shape = [1] * len(x.shape)
    shape[1] = len(ids)
    return Tracked(ids.reshape(shape).copy())
