"""Lower a module to a runtime program: ExecuTorch .pte (XNNPACK) or LiteRT .tflite.

Lives in devices/ because profiling builds many small programs and calibration whole models;
the export stage builds on the same lowering (and adds parity, delegation reports, manifests),
so what is profiled is what is exported.
"""
from __future__ import annotations

import contextlib
import io
import os
import threading
import warnings
from pathlib import Path

import torch
from torch import nn

from ..graph.capture import EXPORT_LOCK


def lower_pte(module: nn.Module, example_inputs: tuple):
    """The XNNPACK-lowered EdgeProgramManager (``.to_executorch().buffer`` is the .pte), after
    the exact rewrites of devices/rewrites.py (which live beside the lowering, so profiled
    micro-programs, calibration models and exported artifacts all get them)."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import (
        XnnpackPartitioner,
    )
    from executorch.exir import to_edge_transform_and_lower

    from . import decomp_cache
    from .rewrites import for_xnnpack

    decomp_cache.install()
    module.eval()  # (a statement: a fake-quantized graph's eval() returns None, devices/quantize.py)
    with EXPORT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ep = for_xnnpack(torch.export.export(module, tuple(example_inputs)))
        return to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()])


def write_atomic(data: bytes, path) -> Path:
    """Write under a temporary name, then rename: a killed run never leaves a truncated program
    under the final name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Two processes, or two threads profiling two devices, may build one program at once.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def to_pte(module: nn.Module, example_inputs: tuple, path) -> Path:
    with EXPORT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        buffer = lower_pte(module, example_inputs).to_executorch().buffer
    return write_atomic(buffer, path)


def tflite_bytes(module: nn.Module, example_inputs: tuple, nhwc: bool = False,
                 nhwc_outputs: bool = False, quant_config=None) -> bytes:
    """The .tflite flatbuffer; ``nhwc``: 4-D inputs are taken channels-last (the layout Android
    camera and bitmap pipelines produce), the model itself is unchanged; ``nhwc_outputs``: 4-D
    outputs are given channels-last too (micro-benchmarks: no layout transpose at either edge,
    as inside a converted model, whose layers run NHWC throughout); ``quant_config``:
    litert-torch's, for a fake-quantized ``module`` (devices/quantize.py: an int8 flatbuffer)."""
    import tempfile

    import litert_torch

    from . import decomp_cache

    decomp_cache.install()
    module.eval()
    module, example_inputs = channels_last_io(module, example_inputs, nhwc, nhwc_outputs)
    with tempfile.TemporaryDirectory(prefix="mobileprune-tflite-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = Path(tmp) / "model.tflite"
        # litert-torch prints a progress log of its passes to stdout; callers print their own.
        with EXPORT_LOCK, contextlib.redirect_stdout(io.StringIO()):
            litert_torch.convert(module, tuple(example_inputs), quant_config=quant_config).export(str(out))
        return out.read_bytes()


def channels_last_io(module: nn.Module, example_inputs: tuple, nhwc: bool, nhwc_outputs: bool = False):
    """(module, example inputs) taking 4-D inputs (``nhwc``) and giving 4-D outputs
    (``nhwc_outputs``) channels-last, through litert-torch's wrapper (which its converter folds
    into the flatbuffer's layout: no transposes at the edges); unchanged when neither is asked."""
    if not (nhwc or nhwc_outputs):
        return module, tuple(example_inputs)
    import litert_torch

    four_d = [i for i, x in enumerate(example_inputs) if x.dim() == 4] if nhwc else []
    out_4d = []
    if nhwc_outputs:
        with torch.no_grad():
            outs = module(*example_inputs)
        outs = outs if isinstance(outs, (tuple, list)) else (outs,)
        out_4d = [i for i, o in enumerate(outs) if o.dim() == 4]
    wrapped = litert_torch.to_channel_last_io(module, args=four_d, outputs=out_4d).eval()
    return wrapped, tuple(x.permute(0, 2, 3, 1).contiguous() if i in four_d else x
                          for i, x in enumerate(example_inputs))


def to_tflite(module: nn.Module, example_inputs: tuple, path, nhwc: bool = False,
              nhwc_outputs: bool = False, quant_config=None) -> Path:
    return write_atomic(tflite_bytes(module, example_inputs, nhwc, nhwc_outputs, quant_config), path)
