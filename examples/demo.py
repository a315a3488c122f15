"""The main job: prune a trained model to a latency budget on *this* machine, and check the result.

1. A profile of this machine (shipped in device_profiles/, cached in ~/.cache/mobileprune/profiles,
   or measured now for the model and cached: a latency table is a fact about one device).
2. The model: the Fashion-MNIST MobileNetV2-like net with its shipped trained weights
   (mobileprune/fashion.py), top-1 on the held-out validation split.
3. Prune it to 50% of its predicted latency with Group Fisher under the latency cost, in the
   profile's channel blocks, training while it prunes; slim it, fine-tune it briefly with the
   hierarchical distillation chain (the original, then its larger trained sibling) and save it
   (spec + plan + weights).
4. Reload it and export .pte and .tflite, each checked for parity with eager PyTorch and for
   delegation.
5. Predict and measure its latency here (ExecuTorch-XNNPACK, 1 thread, normalised to the
   profile's speed; the pruned model as its exported .pte), against the budget.
6. Write its page (`mobileprune report`, demo-report.html, --report=PATH elsewhere): before and
   after, per group and per layer, the staircases, the exported artifacts.

With --int8 (`make demo-int8`) the whole path is int8, as apps ship it: the profile is of
ExecuTorch-XNNPACK's int8 kernels (runtime executorch-int8), the budget is int8 latency, the
pruned model is fine-tuned in float and exported as .int8.pte (calibrated on training images,
checked against the fake-quantized model, its top-1 beside the float model's), and that
artifact is what is measured against the budget.

Run with `make demo`; `examples/demo.py SPEC [--steps=N] [--budget=B]` runs it on another model
spec (data resized to it) with N pruning steps (default 200), budget B (default 50%),
--finetune-steps=F steps per teacher (default 100), --larger=SPEC as the chain's second teacher
(default: a Fashion net's larger trained sibling), and for a profile it makes --reference=SPEC
as its speed reference (default MobileNetV2 at 224x224) and --block=N as its channel block
(default: the device's tile, probed), --measure-processes=N fresh processes per whole-model
latency measurement (default 3); the tests give a tiny net, its own reference, block 8, one process.
Log lines of torch, TensorFlow and absl that say nothing here are silenced; --verbose keeps them.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console

import mobileprune as mp
from mobileprune import fashion
from mobileprune.cache import cache_root
from mobileprune.data import load_data, top1
from mobileprune.devices.latency_table import DeviceProfile
from mobileprune.devices.reference import REFERENCE_MODEL
from mobileprune.finetune import FinetuneConfig, finetune
from mobileprune.spec import build, default_input_shape

OPTIONS = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
SPECS = [a for a in sys.argv[1:] if not a.startswith("--")][:1] or ["fashion:mobilenet_w1"]
STEPS = int(OPTIONS.get("steps", 200))
BUDGET = OPTIONS.get("budget", "50%")
SHIPPED = Path(__file__).resolve().parent.parent / "device_profiles"
CACHED = cache_root() / "profiles"
VAL_IMAGES = 2000
FINETUNE_STEPS = int(OPTIONS.get("finetune-steps", 100))  # per teacher
LARGER = OPTIONS.get("larger")
REFERENCE = OPTIONS.get("reference", REFERENCE_MODEL)
BLOCK = int(OPTIONS["block"]) if "block" in OPTIONS else None
# fresh processes per whole-model latency measurement, the profile's included (each process
# starts torch and ExecuTorch: 3-4 s)
MEASURE_PROCESSES = int(OPTIONS.get("measure-processes", 3))
# the page of the pruned model (mobileprune report): where the milliseconds go, per layer
REPORT = Path(OPTIONS.get("report", "demo-report.html"))
INT8 = "--int8" in sys.argv[1:]
VERBOSE = "--verbose" in sys.argv[1:]
RUNTIME = "executorch-int8" if INT8 else "executorch"  # what the profile, the budget and the measurement are of


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

def profile_of_this_machine(console) -> DeviceProfile:
    """A profile of this machine covering SPECS: shipped, cached, or measured now and cached."""
    from mobileprune.devices import HostRunner
    from mobileprune.devices.latency_table import default_profile_path
    from mobileprune.devices.measuring import ProfilingConfig
    from mobileprune.profiling import find_profile, profile_device

    runner = HostRunner()
    this = runner.identity()
    profile = find_profile(this, RUNTIME, 1, [CACHED, SHIPPED], covering=SPECS)
    if profile is not None and BLOCK is not None and profile.meta.block != BLOCK:
        console.print(f"{profile.path} is a profile of this machine at block {profile.meta.block}, not {BLOCK}: "
                      f"profiling this machine at block {BLOCK} into a cached profile.", soft_wrap=True)
        profile = None
    elif profile is not None and all(spec in profile.meta.overheads_ms for spec in SPECS):
        console.print(f"profile of this machine: {profile.path}", soft_wrap=True)  # a path unbroken, to copy
        return profile
    elif profile is None:
        shipped = sorted({DeviceProfile.load(p).meta.device_identity.describe() for p in SHIPPED.glob("*.json")})
        console.print(f"the shipped profiles describe {'; '.join(shipped)};\nthis machine is {this.describe()}.\n"
                      f"A latency table of another CPU does not predict this one: profiling this machine for "
                      f"{', '.join(SPECS)} (cached for the next run).")
    else:
        console.print(f"{profile.path} is a profile of this machine without {', '.join(SPECS)}: measuring its "
                      f"layers into a cached copy.", soft_wrap=True)
    out = default_profile_path(this, RUNTIME, 1, CACHED)
    if BLOCK is not None:  # a profile of this machine may be cached at another block
        out = out.with_name(f"{out.stem}-block{BLOCK}{out.suffix}")
    if profile is not None and Path(profile.path).resolve() != out.resolve():  # extend a copy, not the shipped file
        profile.save(out)
    start = time.perf_counter()
    config = ProfilingConfig(block=BLOCK, repeats=30, reference=REFERENCE, processes=MEASURE_PROCESSES,
                             runtime=RUNTIME)
    profile = profile_device(SPECS, out, runner, config, show_progress=False,
                             log=lambda line: console.print(f"  {line}"))
    console.print(f"profiled this machine in {time.perf_counter() - start:.0f} s: {profile.path} "
                  f"({len(profile.table)} rows, block {profile.meta.block})\n", soft_wrap=True)
    return profile


def main() -> None:
    if not VERBOSE:
        from mobileprune.quiet import quiet_third_party_logs

        quiet_third_party_logs()
    torch.manual_seed(0)
    # Training uses every core (about 1.6x faster on 2 cores than 1 thread). Latencies are
    # measured apart, in fresh processes of 1 thread each, never while this one trains.
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    console = Console(width=140)
    started = time.perf_counter()
    profile = profile_of_this_machine(console)
    spec = SPECS[0]
    shape = default_input_shape(spec)
    model = build(spec).eval()
    data = load_data("fashion-mnist", shape)
    before = top1(model, data.val, VAL_IMAGES)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "pruned"
        console.print(f"[bold]{spec}[/] {tuple(shape)}: {count(model):,} parameters, top-1 {100 * before:.1f}% on "
                      f"{VAL_IMAGES} held-out images; pruning to {BUDGET} of its latency on "
                      f"{profile.meta.device_identity.describe()} (fisher, latency cost)")
        result = mp.prune(model, torch.randn(shape), data, method="fisher",
                          target=mp.Target(budget=BUDGET, profile=profile),
                          training=mp.TrainConfig(steps=STEPS, batch_size=64, lr=1e-3),
                          output=mp.Output(out=out, spec=spec))
        pred = result.report["predicted"]
        after = top1(result.model, data.val, VAL_IMAGES)
        names, teachers = teacher_chain(console, spec, model)
        tuned = finetune(result.model, data, teachers, names, show=False,
                         config=FinetuneConfig(steps_per_epoch=FINETUNE_STEPS, eval_images=VAL_IMAGES)).model
        after_tuning = top1(tuned, data.val, VAL_IMAGES)
        mp.save(out, spec, result.plan, tuned, [tuple(shape)])  # the fine-tuned weights
        kept = [g for g in result.report["groups"] if g["kept"] < g["channels"]]
        console.print(f"  pruned {len(kept)} of {len(result.report['groups'])} prunable groups in blocks of "
                      f"{result.report['block']}: {count(model):,} -> {count(result.model):,} parameters in "
                      f"{result.report['seconds']:.0f} s; top-1 {100 * before:.1f}% -> {100 * after:.1f}% after "
                      f"pruning -> {100 * after_tuning:.1f}% after fine-tuning ({FINETUNE_STEPS} steps with each "
                      f"teacher: {' -> '.join(names)})")
        console.print(f"  budget {pred['budget']:.3f} ms ({BUDGET} of the predicted {pred['before']:.3f} ms); "
                      f"the plan's prediction {pred['after']:.3f} ms ({-pred['below_budget_pct']:+.1f}% of the budget)")
        latency_and_export(console, profile, out, pred["budget"], data)
    console.print(f"demo done in {time.perf_counter() - started:.0f} s")


def teacher_chain(console, spec: str, original: torch.nn.Module) -> tuple[list, list]:
    """ACPLI's chain of growing teachers: the unpruned original, then its larger sibling when one
    is trained here (a Fashion net's next width up); otherwise the original alone, said plainly."""
    names, teachers = [f"{spec} (original)"], [original]
    sibling = LARGER or fashion.larger_sibling(spec)
    if sibling and not fashion.untrained(sibling):
        names.append(sibling)
        teachers.append(build(sibling).eval())
    else:
        console.print(f"  no trained larger sibling of {spec}: fine-tuning with the original as the only teacher" +
                      (f" (train one: {fashion.untrained(sibling)})" if sibling else ""))
    return names, teachers


def latency_and_export(console, profile, saved: Path, budget_ms: float, data) -> None:
    """Reload the saved pruned model and export it (.pte and .tflite; with --int8, .int8.pte);
    then predicted vs measured ExecuTorch latency on this machine, against the budget: the
    original lowered for timing, the pruned model as the artifact just exported (what ships is
    what is measured, and it is not lowered twice)."""
    from mobileprune.devices import HostRunner, runtimes
    from mobileprune.devices.measuring import measure_artifact_for_profile
    from mobileprune.predict import ModelRef, predict, resolve

    ref = resolve(str(saved))  # rebuilt from the original's definition + plan + weights, no pickle
    prediction = predict(ref, profile)
    runner = HostRunner()
    with tempfile.TemporaryDirectory() as out:
        manifest = mp.export(ref.model, ref.example_inputs, out, ("pte-int8",) if INT8 else ("pte", "tflite"),
                             origin=mp.ModelOrigin(ref.spec, ref.plan, prediction), data=data)
        for a in manifest["artifacts"]:
            delegated = f", {100 * a['delegation']['delegated_share']:.0f}% of ops in XNNPACK" if a["delegation"] else ""
            against = "the fake-quantized model" if a["dtype"] == "int8" else "eager PyTorch"
            console.print(f"  pruned   {a['format']:8s} {a['size_bytes'] / 1e6:.2f} MB, parity rel. diff "
                          f"{a['parity']['rel_diff']:.1e} against {against} ({', '.join(a['checked_with'])})"
                          f"{delegated}")
            if a.get("top1"):
                console.print(f"           top-1 {100 * a['top1']['artifact']:.1f}% on {a['top1']['images']} held-out "
                              f"images (in float {100 * a['top1']['float_model']:.1f}%); top-1 agrees with the "
                              f"fake-quantized model on {100 * a['parity']['top1_agreement']:.1f}%")
        original = ModelRef(ref.spec, ref.original, ref.analysis, mp.PrunePlan.full(ref.analysis), ref.original)
        p = predict(original, profile, runner, measure=True, processes=MEASURE_PROCESSES)
        _print_latency(console, "original", p["runtime"], p["predicted_ms"], p["measurement"])
        runtime = runtimes.get(profile.meta.runtime)
        pte = Path(out) / next(a["path"] for a in manifest["artifacts"] if a["format"] == runtime.export_format)
        m = measure_artifact_for_profile(pte, runner, profile.meta, MEASURE_PROCESSES)
        _print_latency(console, "pruned  ", runtime.label, prediction["predicted_ms"], m,
                       f"; budget {budget_ms:.3f} ms, measured {100 * (m['ms'] / budget_ms - 1):+.1f}% of it")
        from mobileprune.report import model_report, write

        page = write(model_report(saved, profile=profile, export_dir=out, data=data, images=VAL_IMAGES), REPORT)
        console.print(f"  report: {page.resolve()} (open it in a browser: where the milliseconds go, per layer)",
                      soft_wrap=True)


def _print_latency(console, label: str, runtime_label: str, predicted_ms: float, m: dict, tail: str = "") -> None:
    error = 100 * (predicted_ms - m["ms"]) / m["ms"]
    console.print(f"  {label} {runtime_label}, 1 thread: predicted {predicted_ms:.3f} ms, measured {m['ms']:.3f} ms at "
                  f"the profile's speed ({error:+.1f}%; wall clock now {m['raw_ms']:.3f} ms){tail}")


if __name__ == "__main__":
    main()
