"""export(): build the artifacts, prove them against eager PyTorch, write manifest.json.

Per format: lower (timed), write the file, run it on the device through a Runner on the parity
inputs, compare with eager PyTorch, and (with a device) measure its latency. A quantized format
(a runtime flavour with ``quantize``, e.g. pte-int8) is calibrated on a data source's training
images and compared with the fake-quantized model within the runtime's tolerance, its top-1
agreeing on the data source's held-out images; the manifest gives its top-1 and the float
model's on them. An artifact that
fails parity is renamed ``NAME.EXT.failed`` and marked failed in the manifest, and export raises
ExportError after writing the manifest: a broken artifact is never left where an app build would
pick it up.
"""
from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import dataclass, replace
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
    lowest median). ``name``: the artifacts' file stem. A quantized format calibrates on
    ``calibration_images`` training images and is checked on ``data_images`` held-out images
    (export's ``data``): 1000, because the top-1 agreement it must reach (99%) is a rate of near
    ties: the int8 kernels round a few output quanta away from the fake-quantized model, which
    flips only images whose top two logits are that close (fashion:mobilenet_w1 in XNNPACK int8,
    2026-12-07: 6 of 1000 flipped, at margins of 0-3 quanta), and 200 images estimate such a rate
    too coarsely to hold a line at 99% (2 flips pass, 3 fail)."""
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
    calibration_images: int = 256
    data_images: int = 1000

    def __post_init__(self):
        if self.processes < 1 or self.threads < 1:
            raise SettingsError(f"processes and threads must be at least 1 (got {self.processes}, {self.threads})")
        if self.calibration_images < 1 or self.data_images < 1:
            raise SettingsError(f"calibration_images and data_images must be at least 1 (got "
                                f"{self.calibration_images}, {self.data_images})")


@dataclass
class Checks:
    """What an artifact is checked on: input ``sets`` (the last ``images`` of them real
    images) and its reference's outputs on them (``expected``: eager PyTorch, or the
    fake-quantized model for a quantized format); for a quantized format, the images' ``labels``
    and the float model's top-1 on them."""
    sets: list
    expected: list
    images: int
    labels: list | None = None
    float_top1: float | None = None


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
           runner=None, origin: ModelOrigin | None = None, data=None) -> dict:
    """Export ``model`` to each of ``formats`` in ``out_dir`` as ``config`` says (default
    ExportConfig()) and return the manifest. ``runner``: where artifacts run for parity and
    latency (default: this machine's HostRunner). ``origin``: what the manifest records of the
    model (a pruned model's spec and plan, a prediction). ``data``: a data source's splits
    (data.load_data), which quantized formats need: they calibrate on its training images and are
    checked on its held-out ones."""
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
    emulated = runner.identity().emulated
    if emulated and measure:  # its outputs are real (parity is checked there), its timings the emulator's
        measure, c = False, replace(c, measure=False)
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
                  "plan_sha256": plan_hash(plan)},
        "inputs": _tensor_info(example_inputs, "input_", "NCHW"),
        "outputs": _tensor_info(example_out, "output_", "NCHW"),
        "versions": versions(),
        "parity_inputs": {"random": random_inputs, "images": n_images, "tolerance": tolerance},
        "predicted_latency_ms": _prediction_entry(prediction, runner if measure else None),
        "device": runner.device if measure or emulated else None,
        "device_emulated": emulated,
        "artifacts": [],
    }
    quantized = [f for f in formats if for_format(f).quantize is not None]
    if quantized and data is None:
        raise SettingsError(f"{', '.join(quantized)}: a quantized artifact calibrates on a data source's training "
                            "images and is checked on its held-out ones: give data (e.g. --data fashion-mnist)")
    for fmt in formats:
        runtime = for_format(fmt)
        if runtime.quantize is None:
            artifact = _one(fmt, model, example_inputs, out_dir, Checks(sets, expected, n_images), runner, c)
        else:
            reference, checks, quantization = _quantized(runtime, model, example_inputs, data, c)
            artifact = {**_one(fmt, reference, example_inputs, out_dir, checks, runner, c),
                        "quantization": quantization}
        manifest["artifacts"].append(artifact)
    manifest["passed"] = all(a["status"] == "ok" for a in manifest["artifacts"])
    write_atomic(json.dumps(manifest, indent=1).encode(), out_dir / MANIFEST)
    failed = [a for a in manifest["artifacts"] if a["status"] != "ok"]
    if failed and c.check:
        detail = "; ".join(f"{a['format']}: {failure(a)}" for a in failed)
        raise ExportError(f"parity failed, artifact(s) not shipped ({detail}); see {out_dir / MANIFEST}", manifest)
    return manifest


def failure(artifact: dict) -> str:
    """Why a manifest's artifact failed, in a line."""
    par = artifact["parity"] or {}
    if artifact["error"] or not par:
        return artifact["error"] or "not checked"
    if par["rel_diff"] > par["tolerance"]:
        return f"relative diff {par['rel_diff']:.3g} > tolerance {par['tolerance']:.3g}"
    return f"top-1 agreement {par['top1_agreement']:.3f} < {par['min_top1_agreement']:.3f} on {par['images']} images"


def _quantized(runtime, model, example_inputs, data, c: ExportConfig) -> tuple[nn.Module, Checks, dict]:
    """A quantized format's reference (the fake-quantized model, calibrated on the first
    ``c.calibration_images`` training images), what it is checked on (``c.random_inputs``
    random sets and the first ``c.data_images`` held-out images, in batches of the example
    input's size) and what the manifest records of it."""
    from ..devices.quantize import SCHEME

    if len(example_inputs) != 1:
        raise SettingsError(f"{runtime.export_format}: quantized export takes models of one image input")
    batch = example_inputs[0].shape[0]
    calibration = [(x,) for x, _ in parity_mod.batches(data.train, c.calibration_images, batch)]
    reference = runtime.quantize(model, example_inputs, calibration)
    images = parity_mod.batches(data.val, c.data_images, batch)
    sets, _ = parity_mod.input_sets(example_inputs, c.random_inputs, images=0)
    image_sets = [(x.numpy(),) for x, _ in images]
    labels = [y.numpy() for _, y in images]
    float_top1 = parity_mod.top1_of(parity_mod.eager_outputs(model, image_sets), labels)
    checks = Checks(sets + image_sets, parity_mod.eager_outputs(reference, sets + image_sets), len(image_sets),
                    labels, float_top1)
    return reference, checks, {"dtype": runtime.dtype, "scheme": SCHEME, "runtime": runtime.label,
                               "calibration_images": len(calibration) * batch,
                               "calibration_split": f"{data.name} train", "check_split": f"{data.name} validation"}


def _one(fmt, model, example_inputs, out_dir, checks: Checks, runner, c: ExportConfig) -> dict:
    """One artifact made from ``model`` (for a quantized format, its fake-quantized reference),
    written, checked for parity against it on ``checks`` and (``c.measure``) measured."""
    sets, expected, n_images = checks.sets, checks.expected, checks.images
    name, nhwc, threads = c.name, c.nhwc, c.threads
    runtime = for_format(fmt)
    path = out_dir / f"{name}{runtime.suffix}"
    entry = {"format": fmt, "path": path.name, "status": "ok", "error": None, "layout": "NCHW", "dtype": runtime.dtype,
             "parity": None, "delegation": None, "latency_ms": None, "latency": None, "checked_with": []}
    tolerance = runtime.tolerance if runtime.tolerance is not None else c.tolerance
    accuracy = None
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
            result = parity_mod.compare(expected, got, tolerance, n_images, runtime.min_top1_agreement)
        except Exception as exc:  # noqa: BLE001 - any failure to run or compare fails the artifact
            entry.update(status="failed", error=f"{interp}: {type(exc).__name__}: {exc}")
            break
        entry["checked_with"].append(interp)
        if worst is None or (not result.passed, result.rel_diff) > (not worst.passed, worst.rel_diff):
            worst = result
        if checks.labels is not None and accuracy is None:  # the runtime's own interpreter's
            accuracy = parity_mod.top1_of(got[-n_images:], checks.labels)
    if accuracy is not None:
        entry["top1"] = {"images": n_images, "artifact": accuracy, "float_model": checks.float_top1}
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


def plan_hash(plan) -> str | None:
    """The sha256 of a plan as the manifest records it (None: no plan, an unpruned model)."""
    if plan is None:
        return None
    return hashlib.sha256(json.dumps(plan.to_dict(), sort_keys=True).encode()).hexdigest()


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
