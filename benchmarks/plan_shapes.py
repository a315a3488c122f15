"""What decides top-1 at equal latency: the importance, the pruning schedule or the plan's shape?

    .venv/bin/python benchmarks/plan_shapes.py --profile device_profiles/NAME.csv

peers.py shows Torch-Pruning ahead of fisher at equal measured latency. This script asks why,
on one net (--spec, trained weights) at one budget (--share of its measured .pte latency): every
variant below starts from the trained weights, prunes to the budget as the profile predicts it
(no measured rounds: the question is the plan, not landing), and then trains for the rest of
the same total steps (--prune-steps + --finetune-steps, no teacher), --seeds seeds:
- fisher as peers.py runs it, then with longer removal intervals (more batches of evidence per
  removal, fewer removals), one removal round at the end, only 4 training steps before the cut,
  not normalised by cost, normalised by FLOPs;
- L1 magnitude, one shot (our baseline: no data, per-group normalised);
- uniform width with the trained weights (each group's strongest blocks);
- fisher at finer blocks than the profile's;
- fisher and uniform with blocks of contiguous positions (option "blocks": "contiguous", the
  default until 2026-12-04) instead of blocks of the strongest channels (prune/blocks.py);
- Torch-Pruning's magnitude pruner, its ratio bisected on measured latency as in peers.py.
Printed: per variant, the .pte's measured latency (mean over the seeds' architectures), the
profile's prediction, MACs, top-1 (mean +- half the range) and seed 0's kept widths per group.
Trainings run in --workers processes of one thread; latencies are measured in this process
before and after them, never while they run.
"""
from __future__ import annotations

import argparse
import copy
import multiprocessing
import pickle
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

import torch
from measured import this_machine
from peers import Measured, macs_params, search_ratio, tp_prune

import mobileprune as mp
from mobileprune.data import load_data, top1
from mobileprune.spec import build, default_input_shape

TP = "tp-magnitude"
# label, our method, its options, block (None: the profile's), training steps before the cut
# (None: --prune-steps; "interval": None in the options means one removal round at the end)
VARIANTS = (
    ("fisher", "fisher", {}, None, None),
    ("fisher, interval 5", "fisher", {"interval": 5}, None, None),
    ("fisher, interval 10", "fisher", {"interval": 10}, None, None),
    ("fisher, one round at the end", "fisher", {"interval": None}, None, None),
    ("fisher, 4 steps", "fisher", {}, None, 4),
    ("fisher, not normalised", "fisher", {"normalise": "none"}, None, None),
    ("fisher, FLOPs-normalised", "fisher", {"normalise": "flops"}, None, None),
    ("l1, one shot", "l1", {}, None, 0),
    ("uniform, trained weights", "uniform", {}, None, 0),
    ("fisher, block 16", "fisher", {}, 16, None),
    ("fisher, block 8", "fisher", {}, 8, None),
    ("fisher, contiguous blocks", "fisher", {"blocks": "contiguous"}, None, None),
    ("uniform, trained, contiguous", "uniform", {"blocks": "contiguous"}, None, 0),
)

QUICK = ("fisher", "l1, one shot", "uniform, trained weights")  # --quick: one of each kind

_DATA: dict = {}


def _init(spec: str) -> None:
    torch.set_num_threads(1)
    build(spec)  # a file.py:factory net: loads the module its pruned copies are unpickled from
    _DATA[spec] = load_data("fashion-mnist", default_input_shape(spec))


def prune_and_train(variant, seed: int, spec: str, profile, budget: str, args, pruned: bytes | None = None):
    """One variant and seed: pruned to ``budget`` (a share of the profile's prediction of the
    original: on a quiet machine the measured budget, and not refused when a measurement beside
    other work made the original slower than its prediction) (or Torch-Pruning's net, given as
    ``pruned``), then trained for the rest of the steps. Returns the net as bytes, its
    prediction and top-1."""
    from mobileprune.finetune import FinetuneConfig, finetune

    label, method, options, block, steps = variant
    data = _DATA[spec]
    total = args.prune_steps + args.finetune_steps
    torch.manual_seed(seed)
    predicted, before = None, 0
    if pruned is not None:
        model = pickle.loads(pruned)
    else:
        steps = args.prune_steps if steps is None else steps
        options = dict(options)
        if "interval" in options and options["interval"] is None:
            options["interval"] = max(1, steps)
        result = mp.prune(build(spec).eval(), torch.randn(default_input_shape(spec)), data,
                          method=mp.Method(method, options),
                          target=mp.Target(budget=budget, profile=profile, block=block or profile.meta.block),
                          training=mp.TrainConfig(steps=max(1, steps), batch_size=args.batch_size, lr=1e-3, seed=seed),
                          output=mp.Output(spec=spec, show=False))
        model, predicted = result.model, result.report["predicted"]["after"]
        before = result.report["method_info"].get("steps", steps) if method == "fisher" else 0
    config = FinetuneConfig(batch_size=args.batch_size, steps_per_epoch=max(1, total - before), eval_images=500,
                            seed=seed)
    trained = finetune(model, data, [], config=config, show=False, log=lambda *a, **k: None)
    return label, seed, pickle.dumps(trained.model), predicted, top1(trained.model, data.test, args.test_images)


def widths(model: torch.nn.Module) -> list[int]:
    return [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)]


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", required=True)
    parser.add_argument("--spec", default="fashion:mobilenet_w1")
    parser.add_argument("--share", type=float, default=0.5)
    parser.add_argument("--prune-steps", type=int, default=40)
    parser.add_argument("--finetune-steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=2, help="fresh processes per latency measurement")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--test-images", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="CI: 1 seed, 2+2 steps, three variants and Torch-Pruning")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.prune_steps, args.finetune_steps, args.processes, args.workers = 1, 2, 2, 1, 1
        args.test_images = 200
    started = time.perf_counter()
    here = this_machine(args.profile, args.processes, "plan_shapes")
    measure = Measured(here)
    spec, shape = args.spec, default_input_shape(args.spec)
    data = load_data("fashion-mnist", shape)
    original = build(spec).eval()
    original_ms = measure(original, shape)
    budget_ms = args.share * original_ms
    print(f"{spec}: measured {original_ms:.3f} ms; budget {100 * args.share:g}%: {budget_ms:.3f} ms; "
          f"{args.prune_steps}+{args.finetune_steps} steps of batch {args.batch_size}, {args.seeds} seed(s)", flush=True)
    variants = [v for v in VARIANTS if not args.quick or v[0] in QUICK]
    theirs = {}
    for seed in range(args.seeds):  # measured here, before any training starts
        ratio, model, ms = search_ratio(
            lambda r: tp_prune(original, TP, r, here.profile.meta.block, shape, data, seed, args.batch_size),
            lambda m: measure(m, shape), budget_ms, 2 if args.quick else 4, log=lambda line: None)
        theirs[seed] = pickle.dumps(model)
        print(f"  {TP} seed {seed}: ratio {ratio:.3f}, measured {ms:.3f} ms", flush=True)
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.workers, mp_context=spawn, initializer=_init, initargs=(spec,)) as pool:
        share = f"{100 * args.share:g}%"
        futures = [pool.submit(prune_and_train, v, seed, spec, here.profile, share, args)
                   for v in variants for seed in range(args.seeds)]
        futures += [pool.submit(prune_and_train, (TP, None, {}, None, 0), seed, spec, here.profile, share, args,
                                theirs[seed]) for seed in range(args.seeds)]
        results = [f.result() for f in futures]
    print(f"trained in {(time.perf_counter() - started) / 60:.1f} min; measuring", flush=True)
    rows = []
    print(f"\n{'variant':30s} {'measured ms':>11s} {'predicted':>9s} {'M MACs':>7s} {'top-1 %':>15s}  seed 0's conv widths")
    for label in [v[0] for v in variants] + [TP]:
        mine = [r for r in results if r[0] == label]
        models = [pickle.loads(r[2]) for r in mine]
        ms = statistics.mean(measure(m, shape) for m in models)
        predicted = [r[3] for r in mine if r[3] is not None]
        macs = statistics.mean(macs_params(m, shape)[0] for m in models)
        scores = [r[4] for r in mine]
        mean, spread = statistics.mean(scores), (max(scores) - min(scores)) / 2
        rows.append({"variant": label, "measured_ms": ms, "budget_ms": budget_ms, "macs": macs, "top1_mean": mean,
                     "top1_spread": spread, "widths": widths(models[0])})
        print(f"{label:30s} {ms:11.3f} " + (f"{statistics.mean(predicted):9.3f}" if predicted else f"{'-':>9s}")
              + f" {macs / 1e6:7.2f} {100 * mean:8.2f} +- {100 * spread:4.2f}  {widths(models[0])}")
    print(f"\nall done in {(time.perf_counter() - started) / 60:.1f} min")
    return rows


if __name__ == "__main__":
    main()
