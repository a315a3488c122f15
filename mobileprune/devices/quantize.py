"""int8 as apps ship it: static post-training quantization through PyTorch 2 export (PT2E).

One flow, two quantizers: ExecuTorch's XNNPACKQuantizer for .pte, litert-torch's PT2EQuantizer
for .tflite (litert-torch's own converter takes the fake-quantized graph with its quantizer and
writes an int8 flatbuffer whose input and output are int8 too; the ai-edge-quantizer, the other
choice, quantizes a float .tflite after conversion, so there would be no PyTorch model to check
the artifact against). The quantizer annotates the captured graph (weights int8 per output channel, symmetric;
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

SCHEME = "int8: weights per output channel (symmetric), activations per tensor (static)"
RANDOM_CALIBRATION = 4  # random input sets a timing program is calibrated on (its latency ignores values)


def int8_xnnpack(module: nn.Module, example_inputs: tuple, calibration: Iterable[tuple] | None = None) -> nn.Module:
    """The fake-quantized ``module`` for ExecuTorch-XNNPACK: captured at ``example_inputs`` (so
    calibration inputs have their shapes), observed on each input tuple of ``calibration``
    (default: a few standard normal inputs, enough for a timing program), converted, in eval
    mode (its .eval()/.train() switch what they can of an exported graph: torchao's
    allow_exported_model_train_eval)."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    class PostTrainingXNNPACKQuantizer(XNNPACKQuantizer):
        # Why: prepare_pt2e folds each BatchNorm into its convolution before annotating (post-
        # training quantization), so the conv+BN patterns, which are quantization-aware
        # training's, never match here; yet annotating them exports 18 pattern graphs per call,
        # 8 of the 9 s an int8 timing program took to build. Same annotations, same artifact
        # (tests/test_int8.py checks the bytes against the stock quantizer's).
        SUPPORTED_PATTERNS = [p for p in XNNPACKQuantizer.SUPPORTED_PATTERNS if not p.is_qat]

    quantizer = PostTrainingXNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    return _quantized(module, example_inputs, calibration, quantizer, fold=True)


def litert_quantizer():
    """litert-torch's PT2E quantizer, per-channel symmetric and static (its converter is told
    the same through QuantConfig)."""
    from litert_torch.quantize import pt2e_quantizer

    return pt2e_quantizer.PT2EQuantizer().set_global(
        pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))


def int8_litert(module: nn.Module, example_inputs: tuple, calibration: Iterable[tuple] | None = None) -> nn.Module:
    """The fake-quantized ``module`` for LiteRT, as int8_xnnpack; quantize nodes left unfolded,
    as litert-torch's converter reads them."""
    return _quantized(module, example_inputs, calibration, litert_quantizer(), fold=False)


def _quantized(module, example_inputs, calibration, quantizer, fold: bool) -> nn.Module:
    from torchao.quantization.pt2e import allow_exported_model_train_eval, move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    example_inputs = tuple(example_inputs)
    if calibration is None:
        gen = torch.Generator().manual_seed(0)
        calibration = [tuple(torch.randn(x.shape, generator=gen) for x in example_inputs)
                       for _ in range(RANDOM_CALIBRATION)]
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
        quantized = convert_pt2e(prepared, fold_quantize=fold)
    move_exported_model_to_eval(quantized)
    allow_exported_model_train_eval(quantized)
    # An exported graph keeps its own train/eval flag (torchao's _exported_training); nn.Module's
    # stays True, and litert-torch's converter, which reads it, logged "converted in training
    # mode" for every int8 program (29 times profiling the tiny net). Its graph is eval already.
    for m in quantized.modules():
        m.training = False
    return quantized
