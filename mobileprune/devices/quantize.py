"""int8 as apps ship it: static post-training quantization through PyTorch 2 export (PT2E).

XNNPACK's quantizer annotates the captured graph (weights int8 per output channel, symmetric;
activations int8 per tensor, static), observers record activation ranges on calibration inputs,
and ``convert_pt2e`` leaves a graph of quantize/dequantize pairs around float ops: the
fake-quantized model. It runs in eager PyTorch, and XNNPACK's lowering turns each
dequantize -> op -> quantize pattern into one int8 kernel, so the fake-quantized model is what an
int8 artifact is checked against (its own arithmetic rounds differently: within a tolerance, not
exactly). Why by hand: the PT2E calls are torchao's and ExecuTorch's; what is ours is which
inputs calibrate (a data source's training images for export, random inputs of the right range
for timing programs, whose latency does not depend on the values) and the eval-mode handling
an exported graph needs.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable

import torch
from torch import nn

from ..graph.capture import EXPORT_LOCK

SCHEME = "int8: weights per output channel (symmetric), activations per tensor (static), XNNPACKQuantizer"
RANDOM_CALIBRATION = 4  # random input sets a timing program is calibrated on (its latency ignores values)


def int8_xnnpack(module: nn.Module, example_inputs: tuple, calibration: Iterable[tuple] | None = None) -> nn.Module:
    """The fake-quantized ``module``: captured at ``example_inputs`` (so calibration inputs have
    their shapes), observed on each input tuple of ``calibration`` (default: a few standard
    normal inputs, enough for a timing program), converted, in eval mode (its .eval()/.train()
    switch what they can of an exported graph: torchao's allow_exported_model_train_eval)."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e import allow_exported_model_train_eval, move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    example_inputs = tuple(example_inputs)
    if calibration is None:
        gen = torch.Generator().manual_seed(0)
        calibration = [tuple(torch.randn(x.shape, generator=gen) for x in example_inputs)
                       for _ in range(RANDOM_CALIBRATION)]
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    with EXPORT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = torch.export.export(module.eval(), example_inputs).module()
        prepared = prepare_pt2e(graph, quantizer)
    seen = 0
    with torch.no_grad():
        for inputs in calibration:
            prepared(*inputs)
            seen += 1
    if not seen:
        raise ValueError("int8 calibration needs at least one input set")
    with EXPORT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = convert_pt2e(prepared)
    move_exported_model_to_eval(quantized)
    allow_exported_model_train_eval(quantized)
    return quantized
