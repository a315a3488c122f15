"""The deployment runtimes, one description each, in one registry.

Code asks the runtime (its suffix, its lowering, whether it reports per-op times, which
activations it fuses, which layer kinds its micro-programs take channels-last) instead of
comparing names. A runtime, or a flavour of one (an int8 XNNPACK build of .pte files, a phone
vendor's delegate), is one ``Runtime`` given to ``register``: how it lowers a model for timing
and builds an artifact for export, and the functions the measuring worker runs its artifacts
with (``WorkerCode``). Its artifacts are told apart by their whole suffix (``.pte``, and e.g.
``.int8.pte`` for a flavour), not by the last dot alone. docs/latency.md, "Adding a runtime".
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable

from ..errors import MobilepruneError
from ..graph.layers import CLAMP_ACTIVATIONS  # XNNPACK's min/max clamps, TFLite's fused RELU/RELU6


class UnknownRuntime(MobilepruneError, ValueError):
    pass


class NotAnArtifact(MobilepruneError, ValueError):
    """A file named as a runtime's artifact that is not one (or is missing)."""


@dataclass(frozen=True)
class WorkerCode:
    """What the measuring worker (host_worker.py, run in fresh processes) calls for a runtime's
    artifacts, as "module:function" names it imports there ("host_worker:..." is the worker's
    own code): names, not functions, because the worker is another process that must import
    nothing it does not need (no torch for a .tflite). ``run(path, request)`` times an artifact
    and returns {"samples_ms", "outputs", ...} (host_worker.run_pte); ``outputs(path, request)``
    computes its outputs for each input set; ``preload``: modules a worker started ahead of its
    request imports while it waits (HostRunner.run_in_fresh_processes)."""
    run: str
    outputs: str
    preload: tuple = ()


@dataclass(frozen=True)
class Runtime:
    name: str  # as profiles and the CLI spell it
    label: str  # as people read it
    suffix: str  # artifact file suffix, whole: ".pte", ".tflite", a flavour's e.g. ".int8.pte"
    package: str  # the distribution whose version a profile records
    per_op_events: bool  # the profiler reports per-op times (ExecuTorch ETDump); else whole programs
    fused_activations: frozenset  # activations folded into a preceding conv/linear
    channels_last_kinds: frozenset  # layer kinds whose micro-programs take and give NHWC tensors
    lower: Callable  # (module, example_inputs, path, channels_last: bool) -> Path: a program for timing
    build: Callable  # (module, example_inputs, nhwc: bool) -> (artifact bytes, delegation dict or None): export
    worker: WorkerCode
    interpreters: tuple = ()  # what runs its artifacts for parity checks (Runner.outputs' interpreter)
    optional_interpreters: tuple = ()  # second opinions, used where their package is installed
    nhwc_inputs: bool = False  # can be exported to take channels-last 4-D inputs
    export_format: str = ""  # mobileprune.export's name for it; default: the suffix without its dots
    # A quantized flavour: (module, example_inputs, calibration input sets) -> the fake-quantized
    # module its artifact is built from and checked against (devices/quantize.py); None: float.
    quantize: Callable | None = None
    dtype: str = "float32"  # what its kernels compute in; profiles and budgets never mix two
    # Parity against the (fake-quantized) reference: a relative tolerance of the runtime's own
    # (None: export's, default 1e-4) and the least share of images with the reference's top-1.
    tolerance: float | None = None
    min_top1_agreement: float | None = None
    # Its artifacts' FlatBuffers file identifier (bytes 4-8): a file without it is refused before
    # a runtime's loader fails on it with an error of its own language (b"": not checked).
    file_identifier: bytes = b""

    def __post_init__(self):
        if not self.export_format:
            object.__setattr__(self, "export_format", self.suffix.strip(".").replace(".", "-"))

    def version(self) -> str:
        try:
            return version(self.package)
        except PackageNotFoundError:
            return "not installed"

    def row_suffix(self, kind: str) -> str:
        return ("-nhwc" if kind in self.channels_last_kinds else "") + self.suffix


def _lower_pte(module, example_inputs, path, channels_last: bool = False) -> Path:
    from .programs import to_pte

    return to_pte(module, example_inputs, path)  # ETDump separates edge transposes: no NHWC I/O needed


def _build_pte(module, example_inputs, nhwc: bool = False) -> tuple[bytes, dict]:
    from ..graph.capture import EXPORT_LOCK
    from .delegation import delegation_of
    from .programs import lower_pte

    with EXPORT_LOCK:
        edge = lower_pte(module, example_inputs)
        return edge.to_executorch().buffer, delegation_of(edge).to_dict()


def _lower_pte_int8(module, example_inputs, path, channels_last: bool = False) -> Path:
    from .programs import to_pte

    # Calibrated on random inputs: a timing program's latency does not depend on the values.
    return to_pte(_int8_xnnpack(module, example_inputs, None), example_inputs, path)


def _int8_xnnpack(module, example_inputs, calibration):
    from .quantize import int8_xnnpack

    return int8_xnnpack(module, example_inputs, calibration)


def _int8_litert(module, example_inputs, calibration):
    from .quantize import int8_litert

    return int8_litert(module, example_inputs, calibration)


def _litert_int8_config():
    from litert_torch.quantize.quant_config import QuantConfig

    from .quantize import litert_quantizer

    return QuantConfig(pt2e_quantizer=litert_quantizer())


def _lower_tflite_int8(module, example_inputs, path, channels_last: bool = False) -> Path:
    from .programs import channels_last_io, to_tflite

    # Channels-last I/O as for float .tflite rows, wrapped before quantizing (quantize/dequantize
    # pairs between the wrapper's permutes and the op would keep the transposes); random
    # calibration as for .int8.pte.
    module, example_inputs = channels_last_io(module.eval(), example_inputs, channels_last, channels_last)
    return to_tflite(_int8_litert(module, example_inputs, None), example_inputs, path, quant_config=_litert_int8_config())


def _build_tflite_int8(module, example_inputs, nhwc: bool = False) -> tuple[bytes, None]:
    from .programs import tflite_bytes

    return tflite_bytes(module, example_inputs, quant_config=_litert_int8_config()), None


def _lower_tflite(module, example_inputs, path, channels_last: bool = False) -> Path:
    from .programs import to_tflite

    return to_tflite(module, example_inputs, path, nhwc=channels_last, nhwc_outputs=channels_last)


def _build_tflite(module, example_inputs, nhwc: bool = False) -> tuple[bytes, None]:
    from .programs import tflite_bytes

    return tflite_bytes(module, example_inputs, nhwc), None


RUNTIMES: dict[str, Runtime] = {}
LITERT_NHWC_KINDS = frozenset({"conv", "dwconv", "gconv", "maxpool", "avgpool"})  # LiteRT runs these NHWC


def register(runtime: Runtime) -> Runtime:
    """Add a runtime (or a flavour of one) to the registry: profiles, export, prediction and the
    measuring worker find it by its name, export format or artifact suffix from then on. Refused
    when one of the three is taken already."""
    for r in RUNTIMES.values():
        clash = [what for what, mine, theirs in (("name", runtime.name, r.name),
                                                   ("export format", runtime.export_format, r.export_format),
                                                   ("suffix", runtime.suffix, r.suffix)) if mine == theirs]
        if clash:
            raise ValueError(f"runtime {runtime.name!r}: its {' and '.join(clash)} {'is' if len(clash) == 1 else 'are'} "
                             f"{r.name!r}'s already")
    RUNTIMES[runtime.name] = runtime
    return runtime


def unregister(name: str) -> None:
    """Remove a registered runtime (a test's stand-in, or a plugin's on unload)."""
    RUNTIMES.pop(name, None)


register(Runtime("executorch", "ExecuTorch-XNNPACK", ".pte", "executorch", per_op_events=True,
                 fused_activations=CLAMP_ACTIVATIONS, channels_last_kinds=frozenset(), lower=_lower_pte,
                 build=_build_pte, interpreters=("executorch",), file_identifier=b"ET12",
                 worker=WorkerCode("host_worker:run_pte", "host_worker:outputs_pte",
                                   preload=("torch", "executorch.extension.pybindings._C"))))
# int8 as apps ship it: PT2E static quantization lowered to XNNPACK's int8 kernels. Checked
# against the fake-quantized model: XNNPACK requantizes with its own rounding, a few output
# quanta apart (docs/export.md, "int8").
register(Runtime("executorch-int8", "ExecuTorch-XNNPACK int8", ".int8.pte", "executorch", per_op_events=True,
                 fused_activations=CLAMP_ACTIVATIONS, channels_last_kinds=frozenset(), lower=_lower_pte_int8,
                 build=_build_pte, interpreters=("executorch",), export_format="pte-int8", file_identifier=b"ET12",
                 worker=WorkerCode("host_worker:run_pte", "host_worker:outputs_pte",
                                   preload=("torch", "executorch.extension.pybindings._C")),
                 quantize=_int8_xnnpack,
                 dtype="int8", tolerance=0.05, min_top1_agreement=0.99))
# LiteRT gives no per-op times from Python, so a row is a whole program: ops it runs NHWC get
# channels-last I/O (no transposes to subtract); layout-free ops keep plain I/O (wrapped they
# cost 2-8x their in-model time, docs/latency.md).
register(Runtime("tflite", "LiteRT", ".tflite", "ai-edge-litert", per_op_events=False,
                 fused_activations=CLAMP_ACTIVATIONS,
                 channels_last_kinds=LITERT_NHWC_KINDS, lower=_lower_tflite,
                 build=_build_tflite, interpreters=("litert",), optional_interpreters=("tensorflow",),
                 nhwc_inputs=True, file_identifier=b"TFL3",
                 worker=WorkerCode("host_worker:run_tflite", "host_worker:outputs_tflite",
                                   preload=("ai_edge_litert.interpreter",))))

# int8 LiteRT: litert-torch's PT2E quantizer and converter; the flatbuffer takes and gives int8
# tensors (the worker quantizes and dequantizes at its edges with their scales). Exported NCHW
# (channels-last inputs of an exported int8 model are not offered yet); its micro-programs of
# NHWC ops take channels-last I/O, as float LiteRT's do.
register(Runtime("tflite-int8", "LiteRT int8", ".int8.tflite", "ai-edge-litert", per_op_events=False,
                 fused_activations=CLAMP_ACTIVATIONS,
                 channels_last_kinds=LITERT_NHWC_KINDS, lower=_lower_tflite_int8,
                 build=_build_tflite_int8, interpreters=("litert",), optional_interpreters=("tensorflow",),
                 export_format="tflite-int8", file_identifier=b"TFL3",
                 worker=WorkerCode("host_worker:run_tflite", "host_worker:outputs_tflite",
                                   preload=("ai_edge_litert.interpreter",)),
                 quantize=_int8_litert, dtype="int8", tolerance=0.05, min_top1_agreement=0.99))


def get(name: str) -> Runtime:
    try:
        return RUNTIMES[name]
    except KeyError:
        raise UnknownRuntime(f"unknown runtime {name!r}: one of {', '.join(RUNTIMES)}") from None


def for_format(export_format: str) -> Runtime:
    for r in RUNTIMES.values():
        if r.export_format == export_format:
            return r
    raise UnknownRuntime(f"unknown export format {export_format!r}: one of "
                         f"{', '.join(r.export_format for r in RUNTIMES.values())}")


def check_artifact(path) -> Runtime:
    """The runtime of an artifact file, refused in one sentence when the file is missing or is not
    what its name says (its FlatBuffers file identifier)."""
    runtime = for_artifact(path)
    path = Path(str(path))
    if not path.is_file():
        raise NotAnArtifact(f"{path}: no such file")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if runtime.file_identifier and head[4:8] != runtime.file_identifier:
        raise NotAnArtifact(f"{path} is not an artifact of {runtime.label} ({runtime.suffix}): its file identifier is "
                            f"{head[4:8]!r}, a {runtime.suffix} file has {runtime.file_identifier!r}")
    return runtime


def formats() -> tuple[str, ...]:
    """The export formats of the registered runtimes ("pte", "tflite", ...)."""
    return tuple(r.export_format for r in RUNTIMES.values())


def for_artifact(path) -> Runtime:
    """The runtime that runs an artifact, by the longest registered suffix its name ends with
    (``model.int8.pte`` is a flavour's, ``model.pte`` ExecuTorch's)."""
    name = Path(str(path)).name
    matches = [r for r in RUNTIMES.values() if name.endswith(r.suffix)]
    if not matches:
        raise UnknownRuntime(f"{path}: not an artifact of a known runtime "
                             f"({', '.join(r.suffix for r in RUNTIMES.values())})")
    return max(matches, key=lambda r: len(r.suffix))
