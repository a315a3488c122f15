"""Lower a module to a runtime program: ExecuTorch .pte (XNNPACK) or LiteRT .tflite.

Lives in devices/ because profiling builds many small programs; the export stage builds on it
for whole models (and adds parity, delegation reports and manifests).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn


def to_pte(module: nn.Module, example_inputs: tuple, path) -> Path:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ep = torch.export.export(module.eval(), tuple(example_inputs))
        program = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()]).to_executorch()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    tmp.write_bytes(program.buffer)
    tmp.replace(path)  # a killed run never leaves a truncated program under the final name
    return path


def to_tflite(module: nn.Module, example_inputs: tuple, path) -> Path:
    import litert_torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".partial.tflite")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        litert_torch.convert(module.eval(), tuple(example_inputs)).export(str(tmp))
    tmp.replace(path)
    return path
