"""`mobileprune prune`: prune a model to a budget and save it (prune.prune)."""
from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from .common import device_options, runner_for


def add(sub) -> None:
    from ..cost.registry import COSTS
    from ..prune.methods import METHODS

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
    p.add_argument("--cost", choices=list(COSTS), help="what --budget prices (default: latency with --profile, "
                   "else flops)")
    p.add_argument("--dtype", choices=("float32", "int8"), help="what the shipped model computes in: a latency "
                   "budget needs a --profile measured in it (int8: `mobileprune profile --runtime executorch-int8`); "
                   "default: the profile's")
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
    device_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from ..data import load_data
    from ..prune import MeasuredRounds, Output, Target, TrainConfig, prune
    from ..spec import build, default_input_shape, parse_shape

    absolute = {"latency": args.budget_ms, "flops": args.budget_kfpp, "memory": args.budget_melems}
    given = [c for c, v in absolute.items() if v is not None]
    cost = given[0] if given else (args.cost or ("latency" if args.profile else "flops"))
    budget = absolute[cost] if given else args.budget
    shape = parse_shape(args.input_shape) if args.input_shape else default_input_shape(args.model)
    model = build(args.model).eval()
    data = load_data(args.data, shape, args.data_dir) if args.data else None
    target = Target(budget=budget, cost=cost, profile=args.profile, block=args.block,
                    device=runner_for(args.device, args) if args.device else None,
                    measured=MeasuredRounds(rounds=args.measured_rounds) if args.measured_rounds else None,
                    dtype=args.dtype)
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
