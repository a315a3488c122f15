"""Exact rewrites that move common ops into XNNPACK's reach before lowering.

One table, ATen op -> decomposition. Each entry computes the same values with ops the XNNPACK
partitioner takes; an entry returns NotImplemented for the calls it leaves alone (torch's tracer
then keeps the op as it is). Applied through ``ExportedProgram.run_decompositions`` so the
graph's signature, parameters and metadata stay consistent (no hand-made graph surgery).

- ``mean`` over dims with keepdim=False: XNNPACK takes only the keepdim=True form (a global
  average pool), so torchvision-style ``x.mean((2, 3))`` split the graph into two delegates with a
  portable kernel between them. Rewritten as keepdim=True followed by a view to the same shape:
  the same reduction in the same order, so bit-identical.
- ``chunk`` / ``split`` / ``split_with_sizes`` (as in ShuffleNet's channel split): no XNNPACK
  kernel, so every split broke the delegate (ShuffleNet v2: 14 delegates, 93% of compute ops);
  rewritten as one static slice per piece, which XNNPACK runs. Slices copy the same values.
- ``hardsigmoid`` (MobileNetV3's squeeze-excite gate): its stock decomposition lifts scalar
  constants that are copied by portable kernels on every call (18 in MobileNetV3-Small).
  Rewritten as min(max(x + 3, 0), 6) / 6 with scalar operands: what ATen's CPU kernel computes.
"""
from __future__ import annotations

import torch

aten = torch.ops.aten


def _mean_keepdim(x, dims=None, keepdim=False, dtype=None):
    if keepdim or not dims:
        return NotImplemented
    out_shape = [s for i, s in enumerate(x.shape) if i not in {d % x.dim() for d in dims}]
    return aten.mean.dim(x, dims, True, dtype=dtype).view(out_shape)


def _split_sizes_to_slices(x, split_sizes, dim=0):
    out, start = [], 0
    for n in split_sizes:
        out.append(aten.slice.Tensor(x, dim, start, start + n))
        start += n
    return out


def _split_to_slices(x, split_size, dim=0):
    if not isinstance(split_size, int):
        return NotImplemented
    size = x.shape[dim]
    return _split_sizes_to_slices(x, [min(split_size, size - s) for s in range(0, size, split_size)], dim)


def _chunk_to_slices(x, chunks, dim=0):
    return _split_to_slices(x, -(-x.shape[dim] // chunks), dim)


def _hardsigmoid(x):
    return aten.div.Tensor(aten.hardtanh.default(aten.add.Tensor(x, 3.0), 0.0, 6.0), 6.0)


REWRITES = {aten.mean.dim: _mean_keepdim,
            aten.hardsigmoid.default: _hardsigmoid,
            aten.chunk.default: _chunk_to_slices,
            aten.split_with_sizes.default: _split_sizes_to_slices,
            aten.split.Tensor: _split_to_slices}


def for_xnnpack(ep: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """The program with every REWRITES entry applied (ops without an entry are untouched)."""
    # The whole table every time: ops decompose into one another on the way (chunk -> split ->
    # split_with_sizes), so an op absent from the graph may still appear during the rewrite.
    return ep.run_decompositions(dict(REWRITES))
