"""`mobileprune predict`: predict (and measure) a model's latency from a profile (predict.predict)."""
from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from .common import device_options, runner_for


def add(sub) -> None:
    from ..cost.calibrate import CALIBRATIONS
    from ..cost.registry import COSTS

    p = sub.add_parser("predict", help="predict (and measure) a model's latency from a profile")
    p.add_argument("model", help="torchvision:NAME, path/to/file.py:factory, or a saved pruned model dir")
    p.add_argument("--input-shape", help="e.g. 1,3,224,224 (default: the model's usual size; a saved pruned "
                   "model keeps the shape it was pruned at)")
    p.add_argument("--profile", help="the device's latency table (a latency cost needs one)")
    p.add_argument("--cost", default="latency", choices=list(COSTS),
                   help="what to price: latency on the profile's device (default), or another cost model")
    p.add_argument("--device", help="measure configurations missing from the profile on this device")
    p.add_argument("--measure", action="store_true", help="also measure the whole model on --device")
    p.add_argument("--calibration", default="scale", choices=CALIBRATIONS,
                   help="how table sums become whole-model latency (docs/latency.md)")
    p.add_argument("--json", action="store_true")
    device_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..devices.latency_table import DeviceProfile
    from ..predict import predict, resolve

    if args.measure and not args.device:
        args.device = "host"
    profile = DeviceProfile.load(args.profile) if args.profile else None
    runner = runner_for(args.device, args) if args.device else None
    result = predict(resolve(args.model, args.input_shape), profile, runner, measure=args.measure,
                     calibration=args.calibration, cost=args.cost)
    if args.json:
        print(json.dumps({"model": args.model, **result}))
        return 0
    if args.cost != "latency":
        print(f"{args.model}: {result['predicted']:.4g} {result['unit']} ({args.cost}; the original "
              f"{result['original']:.4g}, {100 * result['predicted'] / result['original']:.1f}%)")
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
