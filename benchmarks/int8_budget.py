"""Does pruning against the int8 table matter? One net pruned to one int8 latency budget three
ways, from one run.

    .venv/bin/python benchmarks/int8_budget.py \
        --float-profile device_profiles/<this machine>-executorch-1t.csv \
        --int8-profile device_profiles/<this machine>-executorch-int8-1t.csv

Apps ship int8, and int8 kernels do not speed up in the proportions float ones do (depthwise and
1x1 convs, tiles, the layers no width changes). The budget is --share of the original's measured
int8 latency (its .int8.pte timed in turns with the int8 profile's speed reference, 1 thread).
Three plans of --method from the trained weights of --spec, --prune-steps of training while
pruning, each at the budget as its table can state it:
- "int8 table": the budget in int8 ms, priced by the int8 profile;
- "float table": what a user who has only a float table does, the same share of the float
  latency (a float table cannot price an int8 ms: the share is what carries over);
- "FLOPs": the same share of the original's FLOPs.
Each pruned net is fine-tuned --finetune-steps in float (cosine rate, BatchNorm re-estimated),
then quantized as export quantizes it (PT2E, XNNPACK's quantizer, --calibration-images training
images). Printed per plan: its int8 latency measured here (and as a share of the budget), the
int8 top-1 (the fake-quantized model on --test-images test images: the artifact agrees with it
on at least 99% of images, tests/test_int8.py) beside the float top-1, MACs and parameters.
Latencies are measured in this process before any training, never while a training runs.
"""
from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from measured import this_machine
from peers import macs_params

import mobileprune as mp
from mobileprune.data import load_data, top1
from mobileprune.devices.quantize import int8_xnnpack
from mobileprune.export.parity import batches
from mobileprune.finetune.batchnorm import reestimate_batchnorm
from mobileprune.spec import build, default_input_shape
from mobileprune.train.loop import TrainConfig, train

EVAL_BATCH = 16  # a quantized graph is captured at one batch size: calibration and scoring use it


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--float-profile", required=True, help="a float32 profile of this machine (runtime executorch)")
    p.add_argument("--int8-profile", required=True, help="an int8 profile of this machine (runtime executorch-int8)")
    p.add_argument("--spec", default="fashion:mobilenet_w1")
    p.add_argument("--share", type=float, default=0.5)
    p.add_argument("--method", default="fisher")
    p.add_argument("--prune-steps", type=int, default=300)
    p.add_argument("--finetune-steps", type=int, default=400)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--calibration-images", type=int, default=256)
    p.add_argument("--test-images", type=int, default=10_000)
    p.add_argument("--processes", type=int, default=5)
    p.add_argument("--threads", type=int, default=2, help="torch threads for pruning and training")
    p.add_argument("--plot", help="also draw the table as a PNG here: int8 top-1 against measured int8 latency")
    p.add_argument("--quick", action="store_true", help="CI: a few steps and images, one measuring process")
    args = p.parse_args(argv)
    if args.quick:
        args.prune_steps, args.finetune_steps, args.test_images, args.processes = 8, 4, 64, 1
        args.calibration_images = 32
    started = time.perf_counter()
    int8 = this_machine(args.int8_profile, args.processes, "int8_budget.py", args.threads)
    floats = this_machine(args.float_profile, args.processes, "int8_budget.py", args.threads)
    for here, dtype in ((int8, "int8"), (floats, "float32")):
        if here.profile.meta.dtype != dtype:
            raise SystemExit(f"int8_budget.py: {here.profile.path} is a {here.profile.meta.dtype} profile, "
                             f"not {dtype}")
    shape = default_input_shape(args.spec)
    original = build(args.spec).eval()
    data = load_data("fashion-mnist", shape)
    original_ms = int8.measure(original, shape)["ms"]
    budget_ms = args.share * original_ms
    share = f"{100 * args.share:g}%"
    print(f"{args.spec}: int8 {original_ms:.3f} ms measured here; budget {budget_ms:.3f} ms ({share}); "
          f"{args.method}, {args.prune_steps}+{args.finetune_steps} steps", flush=True)
    targets = {"int8 table": mp.Target(budget=budget_ms, profile=int8.profile, device=int8.runner, dtype="int8"),
               "float table": mp.Target(budget=share, profile=floats.profile, device=floats.runner),
               "FLOPs": mp.Target(budget=share, cost="flops")}
    pruned = {}
    for label, target in targets.items():  # pruned and measured first: nothing trains beside a measurement
        result = mp.prune(original, torch.randn(shape), data, method=args.method, target=target,
                          training=mp.TrainConfig(steps=args.prune_steps, batch_size=args.batch_size, lr=args.lr),
                          output=mp.Output(spec=args.spec, show=False))
        pruned[label] = (result.model, int8.measure(result.model, shape)["ms"])
        print(f"  {label:12s} pruned: int8 {pruned[label][1]:.3f} ms measured", flush=True)
    print(f"{'plan':12s} {'int8 ms':>8s} {'of budget':>9s} {'int8 top-1':>10s} {'float top-1':>11s} "
          f"{'M MACs':>7s} {'k params':>8s}")
    calibration = [(x,) for x, _ in batches(data.train, args.calibration_images, EVAL_BATCH)]
    rows = []
    for label, (model, ms) in pruned.items():
        model = copy.deepcopy(model)
        config = TrainConfig(steps=args.finetune_steps, batch_size=args.batch_size, lr=args.lr, schedule="cosine")
        train(model, data.train, F.cross_entropy, config, show=False)
        reestimate_batchnorm(model, data.train, 16, args.batch_size, 0)
        model.eval()
        quantized = int8_xnnpack(model, (torch.randn(EVAL_BATCH, *shape[1:]),), calibration)
        test = torch.utils.data.Subset(data.test, range(args.test_images // EVAL_BATCH * EVAL_BATCH))
        macs, params = macs_params(model, shape)
        rows.append({"plan": label, "int8_ms": ms, "budget_ms": budget_ms, "int8_top1": _top1(quantized, test),
                     "float_top1": top1(model, test), "macs": macs, "params": params})
        r = rows[-1]
        print(f"{label:12s} {ms:8.3f} {100 * ms / budget_ms:8.1f}% {100 * r['int8_top1']:9.2f}% "
              f"{100 * r['float_top1']:10.2f}% {macs / 1e6:7.2f} {params / 1e3:8.1f}", flush=True)
    if args.plot:
        from mobileprune.report.plots import accuracy_vs_latency

        points = [{"name": r["plan"], "ms": r["int8_ms"], "top1": 100 * r["int8_top1"]} for r in rows]
        Path(args.plot).write_bytes(accuracy_vs_latency(points, [budget_ms], f"{args.spec} int8 at {share} (one seed)"))
        print(f"plot: {args.plot}")
    print(f"(one seed; {time.perf_counter() - started:.0f} s)")
    return rows


def _top1(quantized, dataset) -> float:
    """top-1 of a fake-quantized graph (captured at EVAL_BATCH images, so no partial batch)."""
    right = 0
    with torch.no_grad():
        for x, y in torch.utils.data.DataLoader(dataset, batch_size=EVAL_BATCH):
            right += int((quantized(x).argmax(-1) == y).sum())
    return right / len(dataset)


if __name__ == "__main__":
    main()
