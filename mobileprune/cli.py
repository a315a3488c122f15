"""The ``mobileprune`` command line.

Errors a user can cause (bad spec, model torch.export cannot capture, bad plan) print one
paragraph and exit 2; tracebacks are for bugs only.
"""
from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.table import Table


def main(argv=None) -> int:
    from .cost.calibrate import CALIBRATIONS
    from .devices.reference import REFERENCE_MODEL
    from .devices.runtimes import RUNTIMES
    from .errors import MobilepruneError
    from .prune.api import COSTS
    from .prune.methods import METHODS

    parser = argparse.ArgumentParser(prog="mobileprune", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("analyze", help="find the channel groups of a model")
    p.add_argument("model", help="torchvision:NAME or path/to/file.py:factory")
    p.add_argument("--input-shape", help="e.g. 1,3,224,224 (default: the model's usual size)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("profile", help="measure a latency table on a device")
    p.add_argument("--device", action="append", help="host (this machine, the default), adb:SERIAL (USB) or "
                   "adb:HOST:PORT (TCP); repeat it to profile several devices at once, one profile each")
    p.add_argument("--runtime", default="executorch", choices=list(RUNTIMES))
    p.add_argument("--model", action="append", help="model spec to cover (repeatable; default: the "
                   "torchvision mobile and ResNet families)")
    p.add_argument("--out", help="device_profiles/NAME.csv (resumes if it exists; default: named after the "
                   "device, runtime and threads, e.g. device_profiles/host-amd-epyc-f25m17-executorch-1t.csv)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--block", default="auto", help="channel block the device prefers (default: measured "
                   "by a probe, or the block of the profile being resumed)")
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--grid", default="0.5", help="fractions of each full width measured besides one "
                   "block and the full width, e.g. 0.25,0.5,0.75 for a denser grid")
    p.add_argument("--reference", default=REFERENCE_MODEL,
                   help="model spec of the speed reference every measurement is timed in turns with (default: "
                        "%(default)s; a smaller one where the device is slow, e.g. an emulator, or for tests)")
    _device_options(p)
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("predict", help="predict (and measure) a model's latency from a profile")
    p.add_argument("model", help="torchvision:NAME, path/to/file.py:factory, or a saved pruned model dir")
    p.add_argument("--profile", required=True)
    p.add_argument("--device", help="measure configurations missing from the profile on this device")
    p.add_argument("--measure", action="store_true", help="also measure the whole model on --device")
    p.add_argument("--calibration", default="scale", choices=CALIBRATIONS,
                   help="how table sums become whole-model latency (docs/latency.md)")
    p.add_argument("--json", action="store_true")
    _device_options(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="export .pte/.tflite artifacts with parity, delegation and latency checks")
    p.add_argument("model", help="torchvision:NAME, path/to/file.py:factory, or a saved pruned model dir")
    p.add_argument("--formats", default="pte,tflite", help="comma-separated: pte, tflite")
    p.add_argument("--out", required=True, help="directory for the artifacts and manifest.json")
    p.add_argument("--nhwc", action="store_true", help="the .tflite takes channels-last (NHWC) input")
    p.add_argument("--input-shape", help="e.g. 1,3,224,224 (default: the model's usual size)")
    p.add_argument("--profile", help="record the latency this profile predicts")
    p.add_argument("--device", help="also measure latency on this device (host, adb:SERIAL, adb:HOST:PORT)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="max |artifact - eager| / max |eager| (default 1e-4)")
    _device_options(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("prune", help="prune a model to a latency, FLOPs or memory budget and save it")
    p.add_argument("model", help="torchvision:NAME, pretrained:NAME or path/to/file.py:factory")
    p.add_argument("--profile", help="device profile (device_profiles/NAME.csv): prices latency budgets "
                   "and sets the default block")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--budget", default="50%", help="share of the original cost, e.g. 50%% (default), priced "
                        "by --cost")
    budget.add_argument("--budget-ms", type=float, help="absolute latency budget on the profile's device")
    budget.add_argument("--budget-kfpp", type=float, help="absolute FLOPs budget (thousand FLOPs per input pixel)")
    budget.add_argument("--budget-melems", type=float, help="absolute activation-memory budget (M elements)")
    p.add_argument("--cost", choices=COSTS, help="what --budget prices (default: latency with --profile, "
                   "else flops)")
    p.add_argument("--method", choices=list(METHODS), default="fisher")
    p.add_argument("--device", help="measure layer widths the profile lacks on this device (host; it must be "
                   "the profile's device)")
    p.add_argument("--measured-rounds", type=int, default=0, help="with --device: lower and measure up to N plans "
                   "on it, choosing again from the same importance until one measures at or just under the budget "
                   "(the profile's prediction of one pruned variant can be 10-20%% off)")
    p.add_argument("--data", help="fashion-mnist, mnist or path/to/file.py:factory (gates and fisher train)")
    p.add_argument("--data-dir", help="a directory with the four Fashion-MNIST idx files")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4, help="learning rate of the model's weights while pruning")
    p.add_argument("--block", type=int, help="keep channels in multiples of this (default: the profile's block)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--input-shape", help="e.g. 1,3,224,224 (default: the model's usual size)")
    p.add_argument("--eval-images", type=int, default=0, help="report top-1 before and after on this many "
                   "held-out images")
    p.add_argument("--out", required=True, help="directory for the pruned model (predict, export and load take "
                   "it); a killed run started again with the same arguments resumes from its checkpoint")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    _device_options(p)
    p.set_defaults(func=cmd_prune)

    p = sub.add_parser("finetune", help="fine-tune a pruned model with a chain of teachers (knowledge distillation)")
    p.add_argument("pruned", help="a saved pruned model dir (from mobileprune prune)")
    p.add_argument("--teacher", action="append", default=[], help="a teacher model spec (torchvision:NAME, "
                   "pretrained:NAME, file.py:factory, fashion:NAME or a saved dir); repeat it for a chain, smallest "
                   "first; none: plain fine-tuning")
    p.add_argument("--data", required=True, help="fashion-mnist, mnist or path/to/file.py:factory")
    p.add_argument("--data-dir", help="a directory with the four Fashion-MNIST idx files")
    p.add_argument("--epochs-per-teacher", type=int, default=1)
    p.add_argument("--kd-weight", type=float, default=5.0, help="loss = cross-entropy + W x distillation (5 as ACPLI)")
    p.add_argument("--temperature", type=float, default=4.0)
    p.add_argument("--batch-size", type=int, default=64, help="the global batch (split across torchrun's processes)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--decay", type=float, default=0.9, help="the learning rate's decay per epoch (Adam, exponential)")
    p.add_argument("--patience", type=int, default=2, help="epochs without a better held-out top-1 before a "
                   "stage stops early")
    p.add_argument("--steps-per-epoch", type=int, help="shorter epochs (default: the whole training split)")
    p.add_argument("--eval-images", type=int, help="score this many held-out images each epoch (default: all)")
    p.add_argument("--freeze-bn", action="store_true", help="keep BatchNorm statistics as they are")
    p.add_argument("--bn-batches", type=int, default=16, help="training batches BatchNorm's statistics are "
                   "re-estimated on after every epoch (0: as training leaves them)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="directory for the fine-tuned model (predict, export and load "
                   "take it); a killed run started again with the same arguments resumes")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("bench", help="measure an artifact's latency on a device")
    p.add_argument("artifact", help="a .pte or .tflite file")
    p.add_argument("--device", default="host", help="host, adb:SERIAL or adb:HOST:PORT")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--processes", type=int, default=5, help="fresh processes; reports the lowest of "
                   "their medians (VM neighbours only add time) and the spread")
    p.add_argument("--json", action="store_true")
    _device_options(p)
    p.set_defaults(func=cmd_bench)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except MobilepruneError as exc:
        print(f"mobileprune {args.command}: {exc}", file=sys.stderr)
        print(f"usage: see `{parser.prog} {args.command} --help`; MODEL is torchvision:NAME or "
              f"path/to/file.py:factory", file=sys.stderr)
        return 2


def cmd_analyze(args) -> int:
    import torch

    from .slim import analyze
    from .spec import build, default_input_shape, parse_shape

    shape = parse_shape(args.input_shape) if args.input_shape else default_input_shape(args.model)
    model = build(args.model).eval()
    analysis = analyze(model, (torch.randn(shape),))
    if args.json:
        print(json.dumps({"model": args.model, "input_shape": list(shape), **analysis.to_dict()}))
        return 0
    print_groups(analysis, title=f"{args.model} {tuple(shape)}")
    return 0


def _runner(device: str | None, args=None):
    from .devices import open_runner

    return open_runner(device, runner_binary=getattr(args, "runner", None),
                       remote_dir=getattr(args, "remote_dir", None))


def _device_options(p) -> None:
    """Where the on-device runner is, for --device adb:... (a phone or another ADB device)."""
    p.add_argument("--runner", help="the on-device runner built for the phone's ABI (android_runner/; default "
                   "$MOBILEPRUNE_ANDROID_RUNNER)")
    p.add_argument("--remote-dir", help="directory on the phone for the runner and programs (default "
                   "/data/local/tmp/mobileprune)")


def cmd_profile(args) -> int:
    from .devices import runtimes
    from .devices.measuring import ProfilingConfig
    from .profiling import DEFAULT_MODELS, profile_devices
    from .spec import SpecError

    try:
        fractions = tuple(float(f) for f in args.grid.split(","))
    except ValueError:
        raise SpecError(f"bad --grid {args.grid!r}: comma-separated fractions like 0.25,0.5,0.75") from None
    if args.block != "auto" and not (args.block.isdigit() and int(args.block) > 0):
        raise SpecError(f"bad --block {args.block!r}: a positive channel count or 'auto'")
    block = None if args.block == "auto" else int(args.block)
    config = ProfilingConfig(runtime=runtimes.get(args.runtime).name, threads=args.threads, block=block,
                             repeats=args.repeats, fractions=fractions, reference=args.reference)
    profiles = profile_devices(args.device or ["host"], args.model or DEFAULT_MODELS, config, out=args.out,
                               runner_binary=args.runner, remote_dir=args.remote_dir)
    for device, profile in profiles.items():
        print(f"{device}: {profile.path}: {len(profile.table)} rows, calibrated for "
              f"{len(profile.meta.overheads_ms)} models")
    return 0


def cmd_export(args) -> int:
    from .devices.latency_table import DeviceProfile
    from .export import FORMATS, ExportConfig, ModelOrigin, export
    from .predict import predict, resolve
    from .spec import SpecError

    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise SpecError(f"bad --formats {args.formats!r}: a comma-separated subset of {','.join(FORMATS)}")
    ref = resolve(args.model, args.input_shape)
    prediction = predict(ref, DeviceProfile.load(args.profile)) if args.profile else None
    runner = _runner(args.device, args) if args.device else None
    config = ExportConfig(nhwc=args.nhwc, tolerance=args.tolerance, threads=args.threads,
                          measure=args.device is not None, check=False)
    origin = ModelOrigin(ref.spec, ref.plan if ref.plan.keep else None, prediction)
    manifest = export(ref.model, ref.example_inputs, args.out, formats, config=config, runner=runner, origin=origin)
    table = Table(title=f"{args.model} -> {args.out}")
    for col in ("artifact", "status", "size MB", "rel diff", "delegated", "latency ms"):
        table.add_column(col, justify="left" if col in ("artifact", "status") else "right")
    for a in manifest["artifacts"]:
        par, dele = a["parity"] or {}, a["delegation"] or {}
        table.add_row(a["path"], a["status"] if a["status"] == "ok" else f"[red]{a['status']}[/]",
                      f"{a['size_bytes'] / 1e6:.2f}", f"{par.get('rel_diff', float('nan')):.2e}",
                      f"{100 * dele['delegated_share']:.1f}%" if dele else "-",
                      f"{a['latency_ms']:.3f}" if a["latency_ms"] is not None else "-")
    Console().print(table)
    if prediction is not None:
        print(f"predicted latency ({args.profile}): {prediction['predicted_ms']:.3f} ms on "
              f"{prediction['profile_device']}")
        if not prediction["device_match"]:
            print(f"note: {prediction['device_note']}")
    if not manifest["passed"]:
        for a in manifest["artifacts"]:
            if a["status"] != "ok":
                print(f"mobileprune export: {a['format']} artifact failed parity and was not shipped "
                      f"(kept as {a['path']}): {a['error'] or 'relative diff %.3g > tolerance %.3g' % (a['parity']['rel_diff'], args.tolerance)}",
                      file=sys.stderr)
        return 1
    return 0


def cmd_bench(args) -> int:
    from pathlib import Path

    from .devices import runtimes
    from .devices.runner import measure_artifact
    from .spec import SpecError

    runtimes.for_artifact(args.artifact)  # UnknownRuntime names the suffixes it knows
    if not Path(args.artifact).is_file():
        raise SpecError(f"{args.artifact}: no such file")
    runner = _runner(args.device, args)
    result = measure_artifact(runner, args.artifact, args.threads, args.processes, args.repeats)
    if args.json:
        print(json.dumps({"artifact": args.artifact, **result}))
    else:
        print(f"{args.artifact} on {result['device']} ({args.threads} thread(s)): {result['ms']:.3f} ms "
              f"(lowest per-process median; median {result['median']:.3f}, highest {result['max']:.3f} "
              f"over {result['processes']} processes)")
    return 0


def cmd_predict(args) -> int:
    from .devices.latency_table import DeviceProfile
    from .predict import predict, resolve

    if args.measure and not args.device:
        args.device = "host"
    profile = DeviceProfile.load(args.profile)
    runner = _runner(args.device, args) if args.device else None
    result = predict(resolve(args.model), profile, runner, measure=args.measure, calibration=args.calibration)
    if args.json:
        print(json.dumps({"model": args.model, **result}))
        return 0
    table = Table(title=f"{args.model} on {result['profile_device']} ({result['runtime']}, "
                        f"{result['threads']} thread(s))")
    table.add_column("layer kind")
    table.add_column("predicted ms", justify="right")
    for kind, ms in sorted(result["by_kind_ms"].items(), key=lambda kv: -kv[1]):
        table.add_row(kind, f"{ms:.3f}")
    table.add_row("[bold]total[/]", f"[bold]{result['predicted_ms']:.3f}[/]")
    Console().print(table)
    if not result["device_match"]:
        print(f"note: {result['device_note']}")
    m = result["measurement"]
    if m is not None:
        how = (f"at the profile's speed (x{m['ratio']:.4f} the reference's {m['reference_ms']:.3f} ms); "
               f"wall clock now {m['raw_ms']:.3f} ms" if m.get("normalized") else "wall clock, lowest process median")
        print(f"measured {m['ms']:.3f} ms ({how}); prediction error {result['error_pct']:+.1f}%")
    return 0


def cmd_finetune(args) -> int:
    from .finetune import FinetuneConfig
    from .finetune.saved import finetune_saved

    config = FinetuneConfig(epochs_per_teacher=args.epochs_per_teacher, kd_weight=args.kd_weight,
                            temperature=args.temperature, batch_size=args.batch_size, lr=args.lr, decay=args.decay,
                            patience=args.patience, steps_per_epoch=args.steps_per_epoch,
                            eval_images=args.eval_images, seed=args.seed, freeze_bn=args.freeze_bn,
                            bn_batches=args.bn_batches)
    done = finetune_saved(args.pruned, args.teacher, args.data, args.out, config=config, data_dir=args.data_dir,
                          show=not args.json)
    if done.rank != 0:
        return 0
    result, report = done.result, done.report
    if args.json:
        print(json.dumps(report))
        return 0
    table = Table(title=f"fine-tuning {args.pruned} -> {args.out}")
    for col in ("stage", "teacher", "epoch", "loss", "held-out top-1 %"):
        table.add_column(col)
    for row in result.history:
        table.add_row(str(row["stage"] + 1), row["teacher"], str(row["epoch"]), f"{row['loss']:.4f}",
                      f"{100 * row['val_top1']:.2f}")
    Console().print(table)
    top = report["top1"]
    print(f"held-out top-1 {100 * top['before']:.2f}% before fine-tuning -> {100 * top['after']:.2f}% after "
          f"({top['images']} images, {top['split']})")
    return 0


def cmd_prune(args) -> int:
    import torch

    from .data import load_data
    from .prune import MeasuredRounds, Output, Target, TrainConfig, prune
    from .spec import build, default_input_shape, parse_shape

    absolute = {"latency": args.budget_ms, "flops": args.budget_kfpp, "memory": args.budget_melems}
    given = [c for c, v in absolute.items() if v is not None]
    cost = given[0] if given else (args.cost or ("latency" if args.profile else "flops"))
    budget = absolute[cost] if given else args.budget
    shape = parse_shape(args.input_shape) if args.input_shape else default_input_shape(args.model)
    model = build(args.model).eval()
    data = load_data(args.data, shape, args.data_dir) if args.data else None
    target = Target(budget=budget, cost=cost, profile=args.profile, block=args.block,
                    device=_runner(args.device, args) if args.device else None,
                    measured=MeasuredRounds(rounds=args.measured_rounds) if args.measured_rounds else None)
    result = prune(model, torch.randn(shape), data, method=args.method, target=target,
                   training=TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed),
                   output=Output(out=args.out, spec=args.model, show=not args.json, score_images=args.eval_images))
    report = result.report
    if args.json:
        print(json.dumps({"model": args.model, "out": str(result.path), **report}, default=float))
        return 0
    table = Table(title=f"{args.model} pruned by {args.method} (block {report['block']})")
    for col in ("group", "layer", "channels", "kept"):
        table.add_column(col, justify="left" if col == "layer" else "right")
    for g in report["groups"]:
        table.add_row(str(g["group"]), g["name"], str(g["channels"]), str(g["kept"]) if g["kept"] != g["channels"]
                      else f"[dim]{g['kept']}[/]")
    Console().print(table)
    pred, unit = report["predicted"], report["budget"]["unit"]
    if "measured" in report:  # the budget is a measured latency: not compared with a prediction
        m = report["measured"]
        tried = ", ".join(f"{r['predicted']:.4g} -> {r['measured']:.4g}" for r in m["rounds"])
        print(f"predicted {pred['before']:.4g} -> {pred['after']:.4g} {unit} (the profile's table)")
        print(f"measured on the device: {m['original_ms']:.4g} -> {m['ms']:.4g} ms, budget {m['budget']:.4g} ms "
              f"{'met' if m['met'] else 'NOT met'} (plans tried, predicted -> measured ms: {tried})")
    else:
        print(f"predicted {pred['before']:.4g} -> {pred['after']:.4g} {unit} (budget {pred['budget']:.4g} {unit}, "
              f"{pred['below_budget_pct']:.1f}% below it)")
    if "top1" in report:
        print(f"top-1 on {report['top1']['images']} {report['top1']['split']} images: "
              f"{100 * report['top1']['before']:.1f}% -> {100 * report['top1']['after']:.1f}%")
    if report.get("profile") and not report["profile"]["device_match"]:
        print(f"note: {report['profile']['device_note']}")
    print(f"saved to {result.path} (mobileprune predict/export {result.path}; mobileprune.load)")
    return 0


def print_groups(analysis, title: str = "", console: Console | None = None) -> None:
    console = console or Console(width=max(120, Console().width))
    table = Table(title=title or None, show_lines=False)
    for col, just in (("group", "right"), ("size", "right"), ("unit", "right"),
                      ("producers", "left"), ("consumers", "left"), ("frozen because", "left")):
        table.add_column(col, justify=just, overflow="fold")
    for g in analysis.groups:
        table.add_row(str(g.id), str(g.size), str(g.unit), _members(g.producers),
                      _members(g.consumers), "; ".join(g.reasons[:2]) if g.frozen else "")
    console.print(table)
    free = analysis.free_groups
    console.print(f"{len(analysis.groups)} groups, {len(free)} prunable "
                  f"({sum(g.channels for g in free)} channels); torch.export "
                  f"{analysis.export_seconds:.2f} s, analysis {analysis.analysis_seconds:.3f} s")
    if analysis.unknown_ops:
        console.print(f"unknown ops (froze their channels): {', '.join(analysis.unknown_ops)}")


def _members(names: list, limit: int = 3) -> str:
    """Layers by their weights ("layer1.0.conv1[0]"); biases only if nothing else is there."""
    names = [n.replace(".weight", "") for n in names if ".weight[" in n] or names
    shown = ", ".join(names[:limit])
    return shown + (f" +{len(names) - limit}" if len(names) > limit else "")


if __name__ == "__main__":
    sys.exit(main())
