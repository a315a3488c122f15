"""export(): build the artifacts, prove them against eager PyTorch, write manifest.json.

Per format: lower (timed), write the file, run it on the device through a Runner on the parity
inputs, compare with eager PyTorch, and (with a device) measure its latency. An artifact that
fails parity is renamed ``NAME.EXT.failed`` and marked failed in the manifest, and export raises
ExportError after writing the manifest: a broken artifact is never left where an app build would
pick it up.
"""
from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch
from torch import nn

from ..devices.programs import write_atomic
from ..devices.runner import measure_artifact
from ..devices.runtimes import for_format, formats as registered_formats
from ..errors import MobilepruneError, SettingsError
from . import parity as parity_mod

FORMATS = ("pte", "tflite")  # what export() makes when not told; any registered runtime's format may be asked for
MANIFEST = "manifest.json"


class ExportError(MobilepruneError, RuntimeError):
    """An artifact failed a check; ``manifest`` is what was written to manifest.json."""

    def __init__(self, message: str, manifest: dict | None = None):
        super().__init__(message)
        self.manifest = manifest


def versions() -> dict:
    out = {"python": platform.python_version()}
    for dist in ("mobileprune", "torch", "executorch", "litert-torch", "ai-edge-litert", "tensorflow-cpu"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _tensor_info(tensors, prefix: str, layout_4d: str) -> list[dict]:
    return [{"name": f"{prefix}{i}", "shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", ""),
             "layout": layout_4d if t.dim() == 4 else "-"} for i, t in enumerate(tensors)]


@dataclass(frozen=True, kw_only=True)
class ExportConfig:
    """How the artifacts are made and proven. ``nhwc``: the .tflite takes channels-last 4-D
    inputs. Parity with eager PyTorch on ``random_inputs`` random input sets and ``images``
    images, within ``tolerance`` (relative); ``tf_check``: also run the runtime's second-opinion
    interpreters where installed (tf.lite for .tflite); ``check``: raise ExportError when any
    artifact fails parity (the manifest is written first). ``measure``: also measure each
    artifact's latency on the runner, at ``threads``, in ``processes`` fresh processes (the
    lowest median). ``name``: the artifacts' file stem."""
    nhwc: bool = False
    tolerance: float = parity_mod.DEFAULT_TOLERANCE
    random_inputs: int = 3
    images: int = 4
    tf_check: bool = True
    check: bool = True
    measure: bool = False
    threads: int = 1
    processes: int = 5
    name: str = "model"

    def __post_init__(self):
        if self.processes < 1 or self.threads < 1:
            raise SettingsError(f"processes and threads must be at least 1 (got {self.processes}, {self.threads})")


@dataclass(frozen=True)
class ModelOrigin:
    """What the manifest records of the model: its ``spec``, its ``plan`` (fingerprint and hash)
    when it is a pruned one, and ``prediction``, mobileprune.predict.predict's result for it
    (recorded with the device its profile describes and whether that is the device measured here,
    ``device_match``)."""
    spec: str | None = None
    plan: object = None  # a PrunePlan
    prediction: dict | None = None


def export(model: nn.Module, example_inputs, out_dir, formats=FORMATS, *, config: ExportConfig | None = None,
           runner=None, origin: ModelOrigin | None = None) -> dict:
    """Export ``model`` to each of ``formats`` in ``out_dir`` as ``config`` says (default
    ExportConfig()) and return the manifest. ``runner``: where artifacts run for parity and
    latency (default: this machine's HostRunner). ``origin``: what the manifest records of the
    model (a pruned model's spec and plan, a prediction)."""
    from ..devices import HostRunner

    c, origin = config or ExportConfig(), origin or ModelOrigin()
    tolerance, random_inputs, images, measure = c.tolerance, c.random_inputs, c.images, c.measure
    spec, plan, prediction = origin.spec, origin.plan, origin.prediction
    formats = tuple(formats)
    bad = [f for f in formats if f not in registered_formats()]
    if bad or not formats:
        raise ValueError(f"unknown format(s) {bad or formats}: choose from {', '.join(registered_formats())}")
    example_inputs = tuple(example_inputs) if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    runner = runner or HostRunner()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    sets, n_images = parity_mod.input_sets(example_inputs, random_inputs, images)
    expected = parity_mod.eager_outputs(model, sets)
    with torch.no_grad():
        example_out = model(*example_inputs)
    example_out = example_out if isinstance(example_out, (tuple, list)) else (example_out,)

    manifest = {
        "format": "mobileprune.export/1",
        "model": {"spec": spec, "pruned": plan is not None and bool(plan.keep),
                  "plan_fingerprint": plan.fingerprint if plan is not None else None,
                  "plan_sha256": _plan_hash(plan)},
        "inputs": _tensor_info(example_inputs, "input_", "NCHW"),
        "outputs": _tensor_info(example_out, "output_", "NCHW"),
        "versions": versions(),
        "parity_inputs": {"random": random_inputs, "images": n_images, "tolerance": tolerance},
        "predicted_latency_ms": _prediction_entry(prediction, runner if measure else None),
        "device": runner.device if measure else None,
        "artifacts": [],
    }
    for fmt in formats:
        manifest["artifacts"].append(_one(fmt, model, example_inputs, out_dir, (sets, expected, n_images), runner, c))
    manifest["passed"] = all(a["status"] == "ok" for a in manifest["artifacts"])
    write_atomic(json.dumps(manifest, indent=1).encode(), out_dir / MANIFEST)
    failed = [a for a in manifest["artifacts"] if a["status"] != "ok"]
    if failed and c.check:
        detail = "; ".join(f"{a['format']}: {a['error'] or 'relative diff %.3g > %.3g' % (a['parity']['rel_diff'], tolerance)}"
                           for a in failed)
        raise ExportError(f"parity failed, artifact(s) not shipped ({detail}); see {out_dir / MANIFEST}", manifest)
    return manifest


def _one(fmt, model, example_inputs, out_dir, parity_data: tuple, runner, c: ExportConfig) -> dict:
    """One artifact made, written, checked for parity and (``c.measure``) measured.
    ``parity_data``: (input sets, eager outputs, how many of the sets are images)."""
    sets, expected, n_images = parity_data
    name, nhwc, threads = c.name, c.nhwc, c.threads
    runtime = for_format(fmt)
    path = out_dir / f"{name}{runtime.suffix}"
    entry = {"format": fmt, "path": path.name, "status": "ok", "error": None, "layout": "NCHW",
             "parity": None, "delegation": None, "latency_ms": None, "latency": None, "checked_with": []}
    start = time.perf_counter()
    data, entry["delegation"] = runtime.build(model, example_inputs, nhwc)
    if runtime.nhwc_inputs and nhwc:
        entry["layout"] = "NHWC"
    entry["export_s"] = round(time.perf_counter() - start, 2)
    write_atomic(data, path)
    entry["size_bytes"] = len(data)
    entry["sha256"] = hashlib.sha256(data).hexdigest()

    channels_last = runtime.nhwc_inputs and nhwc
    artifact_sets = [tuple(a.transpose(0, 2, 3, 1) if (channels_last and a.ndim == 4) else a for a in s)
                     for s in sets]
    interpreters = list(runtime.interpreters) + [i for i in runtime.optional_interpreters if c.tf_check and _has(i)]
    worst = None
    for interp in interpreters:
        try:
            got = runner.outputs(str(path), artifact_sets, threads=threads, interpreter=interp)
            result = parity_mod.compare(expected, got, c.tolerance, n_images)
        except Exception as exc:  # noqa: BLE001 - any failure to run or compare fails the artifact
            entry.update(status="failed", error=f"{interp}: {type(exc).__name__}: {exc}")
            break
        entry["checked_with"].append(interp)
        if worst is None or result.rel_diff > worst.rel_diff:
            worst = result
    if worst is not None:
        entry["parity"] = worst.to_dict()
        if not worst.passed and entry["status"] == "ok":
            entry["status"] = "failed"
    if entry["status"] != "ok":
        failed = path.with_name(path.name + ".failed")
        path.replace(failed)
        entry["path"] = failed.name
        return entry
    if c.measure:
        entry["latency"] = measure_artifact(runner, path, threads, c.processes)
        entry["latency_ms"] = entry["latency"]["ms"]
    return entry


def _prediction_entry(prediction: dict | None, runner) -> dict | None:
    """The prediction as the manifest records it: its profile's device, and whether that is the
    device the artifacts were measured on (or, without a measurement, the machine exporting)."""
    if prediction is None:
        return None
    from ..devices.identity import DeviceIdentity, compare

    entry = {"ms": round(float(prediction["predicted_ms"]), 4), "profile": prediction["profile"],
             "runtime": prediction["runtime"], "profile_device": prediction["profile_device"],
             "device_match": prediction["device_match"], "this_device": prediction["this_device"],
             "differences": prediction["differences"]}
    if runner is not None and prediction.get("profile_identity"):
        match = compare(DeviceIdentity.from_dict(prediction["profile_identity"]), runner.identity())
        entry.update({k: v for k, v in match.to_dict().items() if k != "profile_device"})
    return entry


def _plan_hash(plan) -> str | None:
    if plan is None:
        return None
    return hashlib.sha256(json.dumps(plan.to_dict(), sort_keys=True).encode()).hexdigest()


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
