"""Does every method hit a latency budget, predicted and measured? And what does pruning cost per step?

    .venv/bin/python benchmarks/budget_hit.py --profile device_profiles/host-amd-epyc-f25m17-executorch-1t.csv

For each model (default: torchvision mobilenet_v2 and resnet18 at 224) and method (gates,
fisher, l1, uniform): prune to --share (50%) of the model's predicted latency on the profile's
device, training on Fashion-MNIST resized to the model's input (budget mechanics, not accuracy),
then lower the slimmed model to a .pte and measure it as latency_truth does (1 thread, in turns
with the profile's speed reference in fresh processes, normalised to the profile's speed).
Printed per row: the final plan's predicted latency vs the budget (target [-3%, 0]) and the
measured latency vs the budget (target +-10%).

Then, for the first model: the latency cost's forward+backward time per call, and the gated
training step (ACPLI gates: masks, predictors, budget and entropy losses) over a plain training
step of the same model and batch, timed in alternating rounds in this one process (target <= 1.3).

``--quick`` (used by the test suite) runs two steps per method, one measuring process, and skips
nothing else.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from measured import model_arguments, parse_model_arguments, this_machine
from torch.utils.data import DataLoader, Subset

import mobileprune as mp
from mobileprune.cost import LatencyCost
from mobileprune.data import load_data
from mobileprune.prune.blocks import Blocks
from mobileprune.prune.budget import Budget
from mobileprune.prune.context import Context
from mobileprune.train.loop import TrainConfig, freeze_batchnorm
from mobileprune.prune.methods.gates import attach
from mobileprune.spec import build, default_input_shape, parse_shape

MODELS = ["torchvision:mobilenet_v2", "torchvision:resnet18"]
METHODS = ["gates", "fisher", "l1", "uniform"]


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_arguments(parser, MODELS, steps=20)
    parser.add_argument("--methods", nargs="*", default=METHODS)
    args = parse_model_arguments(parser, argv)
    here = this_machine(args.profile, args.processes, "budget_hit")
    profile = here.profile
    rows = []
    for spec in args.models:
        shape = parse_shape(args.input_shape) if args.input_shape else default_input_shape(spec)
        data = load_data("fashion-mnist", shape)
        train = Subset(data.train, range(64 if args.quick else 2000))
        for method in args.methods:
            torch.manual_seed(0)
            model = build(spec).eval()
            result = mp.prune(model, torch.randn(shape), train, method=method,
                              target=mp.Target(budget=f"{100 * args.share:g}%", profile=profile),
                              training=mp.TrainConfig(steps=args.steps, batch_size=args.batch_size),
                              output=mp.Output(spec=spec, show=False))
            pred = result.report["predicted"]
            m = here.measure(result.model, shape)
            row = {"model": spec.split(":")[-1], "method": method, "original": pred["before"], "budget": pred["budget"],
                   "predicted": pred["after"], "measured": m["ms"], "spread": m.get("ratio_spread", float("nan")),
                   "seconds": result.report["seconds"]}
            row["predicted_gap"] = 100 * (row["predicted"] / row["budget"] - 1)
            row["measured_gap"] = 100 * (row["measured"] / row["budget"] - 1)
            rows.append(row)
            ok = ("ok" if -3 <= row["predicted_gap"] <= 0 else "OUT") + "/" + ("ok" if abs(row["measured_gap"]) <= 10 else "OUT")
            print(f"{row['model']:14s} {method:8s} original {row['original']:7.3f} ms  budget {row['budget']:7.3f}  "
                  f"predicted {row['predicted']:7.3f} ({row['predicted_gap']:+5.1f}%)  measured {row['measured']:7.3f} "
                  f"({row['measured_gap']:+5.1f}%, spread x{row['spread']:.3f})  {ok}  [{row['seconds']:.0f} s]",
                  flush=True)
    hit_pred = sum(-3 <= r["predicted_gap"] <= 0 for r in rows)
    hit_meas = sum(abs(r["measured_gap"]) <= 10 for r in rows)
    print(f"\npredicted within [-3%, 0] of the budget: {hit_pred}/{len(rows)}; measured within +-10%: "
          f"{hit_meas}/{len(rows)}  ({profile.meta.runtime}, {profile.meta.threads} thread, {args.processes} "
          f"processes, steps {args.steps}, profile {args.profile})")
    spec = args.models[0]
    shape = parse_shape(args.input_shape) if args.input_shape else default_input_shape(spec)
    per_call, ratio = step_costs(spec, shape, profile, args.batch_size, rounds=2 if args.quick else 5)
    print(f"{spec}: latency cost forward+backward {per_call * 1e3:.2f} ms per call; gated training step / plain "
          f"training step = {ratio:.2f} (batch {args.batch_size}, target <= 1.3)")
    return rows


def step_costs(spec, shape, profile, batch_size, rounds=5, steps=3) -> tuple[float, float]:
    """(seconds per latency-cost forward+backward, gated step time / plain step time)."""
    model = build(spec).eval()
    analysis = mp.analyze(model, torch.randn(shape))
    cost = LatencyCost(analysis, profile, model_key=spec)
    blocks = Blocks(analysis, profile.meta.block)
    probs = torch.full((blocks.total,), 0.8, dtype=torch.float64, requires_grad=True)
    cost(blocks.soft_fractions(probs)).backward()  # fill the bracket cache as a loop's first step does
    t = time.perf_counter()
    for _ in range(50):
        cost(blocks.soft_fractions(probs)).backward()
    per_call = (time.perf_counter() - t) / 50

    data = load_data("fashion-mnist", shape)
    x, y = next(iter(DataLoader(Subset(data.train, range(batch_size)), batch_size=batch_size)))
    full = float(cost())
    config = TrainConfig(steps=100, batch_size=batch_size, lr=1e-3, freeze_bn=True)
    ctx = Context(model, blocks, cost, Budget(0.5 * full, "ms", full, "50%"), config)
    gates, masks = attach(ctx, {})
    plain_opt = torch.optim.Adam(model.parameters(), lr=1e-5)
    gated_opt = torch.optim.Adam(list(model.parameters()) + list(gates.predictors.parameters()), lr=1e-5)

    def plain_step():
        model.train()
        freeze_batchnorm(model)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        plain_opt.zero_grad()
        loss.backward()
        plain_opt.step()

    def gated_step(step):
        model.train()
        freeze_batchnorm(model)
        with masks:
            loss = torch.nn.functional.cross_entropy(model(x), y) + gates.extra_loss(step, x, None)
            gated_opt.zero_grad()
            loss.backward()
            gated_opt.step()
            gates.after_step(step)

    plain_step()
    gated_step(0)  # warm-up both
    plain, gated = [], []
    for r in range(rounds):  # alternate, so a slow spell of the VM hits both
        t = time.perf_counter()
        for _ in range(steps):
            plain_step()
        plain.append(time.perf_counter() - t)
        t = time.perf_counter()
        for s in range(steps):
            gated_step(s)
        gated.append(time.perf_counter() - t)
    return per_call, statistics.median(gated) / statistics.median(plain)


if __name__ == "__main__":
    main()
