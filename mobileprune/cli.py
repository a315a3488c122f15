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




def _user_errors():
    from .graph import CaptureError
    from .plan import PlanError
    from .slim import SlimError
    from .spec import SpecError
    from .cost import MissingConfigs
    from .devices import RunnerError
    from .devices.profile import ProfileError
    from .storage import StorageError

    return (CaptureError, PlanError, SlimError, SpecError, StorageError, ProfileError, MissingConfigs,
            RunnerError)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="mobileprune", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("analyze", help="find the channel groups of a model")
    p.add_argument("model", help="torchvision:NAME or path/to/file.py:factory")
    p.add_argument("--input-shape", help="e.g. 1,3,224,224 (default: the model's usual size)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("profile", help="measure a latency table on a device")
    p.add_argument("--device", default="host", help="host (this machine)")
    p.add_argument("--runtime", default="executorch", choices=["executorch", "tflite"])
    p.add_argument("--model", action="append", help="model spec to cover (repeatable; default: the "
                   "torchvision mobile and ResNet families)")
    p.add_argument("--out", required=True, help="device_profiles/NAME.csv (resumes if it exists)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--block", type=int, default=8, help="channel block the device prefers")
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--grid", default="0.5", help="fractions of each full width measured besides one "
                   "block and the full width, e.g. 0.25,0.5,0.75 for a denser grid")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("predict", help="predict (and measure) a model's latency from a profile")
    p.add_argument("model", help="torchvision:NAME, path/to/file.py:factory, or a saved pruned model dir")
    p.add_argument("--profile", required=True)
    p.add_argument("--device", help="measure configurations missing from the profile on this device")
    p.add_argument("--measure", action="store_true", help="also measure the whole model on --device")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_predict)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except _user_errors() as exc:
        print(f"mobileprune {args.command}: {exc}", file=sys.stderr)
        print(f"usage: see `{parser.prog} {args.command} --help`; MODEL is torchvision:NAME or "
              f"path/to/file.py:factory", file=sys.stderr)
        return 2


def cmd_analyze(args) -> int:
    import torch

    from .graph import analyze
    from .spec import build, default_input_shape, parse_shape

    shape = parse_shape(args.input_shape) if args.input_shape else default_input_shape(args.model)
    model = build(args.model).eval()
    analysis = analyze(model, (torch.randn(shape),))
    if args.json:
        print(json.dumps({"model": args.model, "input_shape": list(shape), **analysis.to_dict()}))
        return 0
    print_groups(analysis, title=f"{args.model} {tuple(shape)}")
    return 0


def _runner(device: str | None):
    from .devices import HostRunner
    from .spec import SpecError

    if device in (None, "host"):
        return HostRunner()
    raise SpecError(f"unknown device {device!r}: only 'host' is available so far (ADB comes later)")


def cmd_profile(args) -> int:
    from .cost.calibrate import DEFAULT_MODELS, profile_models

    from .spec import SpecError

    runner = _runner(args.device)
    try:
        fractions = tuple(float(f) for f in args.grid.split(","))
    except ValueError:
        raise SpecError(f"bad --grid {args.grid!r}: comma-separated fractions like 0.25,0.5,0.75") from None
    profile = profile_models(args.model or DEFAULT_MODELS, args.out, runner, args.runtime, args.threads,
                             args.block, args.repeats, fractions)
    print(f"{profile.path}: {len(profile.table)} rows, overheads for {len(profile.meta.overheads_ms)} models")
    return 0


def cmd_predict(args) -> int:
    import torch

    from .cost import LatencyCost, fractions_from_plan
    from .cost.calibrate import measure_model, on_demand
    from .devices.profile import DeviceProfile
    from .graph import analyze
    from .plan import PrunePlan
    from .slim import slim
    from .spec import build, default_input_shape
    from .storage import is_saved, load

    if args.measure and not args.device:
        args.device = "host"
    profile = DeviceProfile.load(args.profile)
    if is_saved(args.model):
        pruned, meta = load(args.model)
        spec, shape = meta["spec"], tuple(meta["input_shapes"][0])
        original = build(spec).eval()
        analysis = analyze(original, (torch.randn(shape),))
        plan = PrunePlan.from_dict(meta["plan"])
        model = pruned
    else:
        spec, shape = args.model, default_input_shape(args.model)
        original = model = build(spec).eval()
        analysis = analyze(original, (torch.randn(shape),))
        plan = PrunePlan.full(analysis)
    runner = _runner(args.device) if args.device else None
    measure = on_demand(profile, runner, profile.meta.threads) if runner else None
    cost = LatencyCost(analysis, profile, model_key=spec, measure=measure)
    fractions = fractions_from_plan(analysis, plan)
    predicted = float(cost(fractions))
    by_kind: dict[str, float] = {}
    for layer, ms in cost.per_layer(fractions):
        by_kind[layer.op] = by_kind.get(layer.op, 0.0) + ms
    by_kind["overhead"] = cost.overhead_ms
    measured = None
    if args.measure:
        measured = measure_model(slim(original, analysis, plan, verify=False) if plan.keep else original,
                                 analysis.example_inputs, runner, profile.meta.runtime, profile.meta.threads)
    if args.json:
        print(json.dumps({"model": args.model, "predicted_ms": predicted, "measured_ms": measured,
                          "by_kind_ms": by_kind, "profile": str(profile.path)}))
        return 0
    table = Table(title=f"{args.model} on {profile.meta.device} ({profile.meta.runtime}, {profile.meta.threads} thread)")
    table.add_column("layer kind")
    table.add_column("predicted ms", justify="right")
    for kind, ms in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        table.add_row(kind, f"{ms:.3f}")
    table.add_row("[bold]total[/]", f"[bold]{predicted:.3f}[/]")
    Console().print(table)
    if measured is not None:
        print(f"measured {measured:.3f} ms; prediction error {100 * (predicted - measured) / measured:+.1f}%")
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
