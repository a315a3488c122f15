"""The deployment runtimes, one description each, in one registry.

Code asks the runtime (its suffix, its lowering, whether it reports per-op times, which
activations it fuses, which layer kinds its micro-programs take channels-last) instead of
comparing names. Adding a runtime (e.g. an int8 XNNPACK flavour, or a phone's vendor delegate)
is one ``Runtime`` entry here plus, if its artifacts are new, a ``run``/``outputs`` pair in
host_worker.py (docs/latency.md, "Adding a runtime").
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


@dataclass(frozen=True)
class Runtime:
    name: str  # as profiles and the CLI spell it
    label: str  # as people read it
    suffix: str  # artifact file suffix
    package: str  # the distribution whose version a profile records
    per_op_events: bool  # the profiler reports per-op times (ExecuTorch ETDump); else whole programs
    fused_activations: frozenset  # activations folded into a preceding conv/linear
    channels_last_kinds: frozenset  # layer kinds whose micro-programs take and give NHWC tensors
    lower: Callable  # (module, example_inputs, path, channels_last: bool) -> Path
    interpreters: tuple = ()  # what runs its artifacts for parity checks (Runner.outputs' interpreter)
    optional_interpreters: tuple = ()  # second opinions, used where their package is installed
    nhwc_inputs: bool = False  # can be exported to take channels-last 4-D inputs

    @property
    def export_format(self) -> str:
        """mobileprune.export's name for it: the suffix without its dot ("pte", "tflite")."""
        return self.suffix.lstrip(".")

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


def _lower_tflite(module, example_inputs, path, channels_last: bool = False) -> Path:
    from .programs import to_tflite

    return to_tflite(module, example_inputs, path, nhwc=channels_last, nhwc_outputs=channels_last)


RUNTIMES = {r.name: r for r in (
    Runtime("executorch", "ExecuTorch-XNNPACK", ".pte", "executorch", per_op_events=True,
            fused_activations=CLAMP_ACTIVATIONS, channels_last_kinds=frozenset(), lower=_lower_pte,
            interpreters=("executorch",)),
    # LiteRT gives no per-op times from Python, so a row is a whole program: ops it runs NHWC get
    # channels-last I/O (no transposes to subtract); layout-free ops keep plain I/O (wrapped they
    # cost 2-8x their in-model time, docs/latency.md).
    Runtime("tflite", "LiteRT", ".tflite", "ai-edge-litert", per_op_events=False,
            fused_activations=CLAMP_ACTIVATIONS,
            channels_last_kinds=frozenset({"conv", "dwconv", "gconv", "maxpool", "avgpool"}), lower=_lower_tflite,
            interpreters=("litert",), optional_interpreters=("tensorflow",), nhwc_inputs=True),
)}


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


def for_artifact(path) -> Runtime:
    """The runtime that runs an artifact, by its file suffix."""
    suffix = Path(str(path)).suffix
    for r in RUNTIMES.values():
        if r.suffix == suffix:
            return r
    raise UnknownRuntime(f"{path}: not an artifact of a known runtime "
                         f"({', '.join(r.suffix for r in RUNTIMES.values())})")
