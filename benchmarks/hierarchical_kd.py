"""Fine-tuning after pruning: no teacher, one teacher (the original), and the chain original ->
larger sibling (ACPLI's hierarchical distillation), same total epochs, side by side from one run.

    .venv/bin/python benchmarks/hierarchical_kd.py --profile device_profiles/host-amd-epyc-f25m17-executorch-1t.csv

The middle Fashion-MNIST net (--spec, fashion:mobilenet_w1) is pruned by fisher to each --shares
of its predicted latency on the profile's device (one pruned net per seed and share; in the
profile's block, or half of it as often as the budget needs); each is
then fine-tuned three ways from the same pruned weights, 2 x --epochs epochs in all:
(a) no teacher, (b) the original as the only teacher, (c) the original for --epochs, then the
larger sibling (--larger, fashion:mobilenet_w1.5) for --epochs. Printed per share: top-1 on the
test split (mean +- half the range over --seeds), the pruned net's before fine-tuning.
"""
from __future__ import annotations

import argparse
import copy
import statistics

import torch
from measured import reachable_block, this_machine

import mobileprune as mp
from mobileprune import fashion
from mobileprune.data import load_data, top1
from mobileprune.finetune import FinetuneConfig, finetune
from mobileprune.spec import build, default_input_shape

SIDES = ("no teacher", "original", "original -> larger")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", required=True)
    parser.add_argument("--spec", default="fashion:mobilenet_w1")
    parser.add_argument("--larger", default="fashion:mobilenet_w1.5")
    parser.add_argument("--shares", type=float, nargs="*", default=[0.5, 0.3])
    parser.add_argument("--prune-steps", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=1, help="epochs per teacher (the chain has two teachers)")
    parser.add_argument("--steps-per-epoch", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--test-images", type=int, default=10000)
    parser.add_argument("--eval-images", type=int, default=2000, help="held-out images scored each epoch")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for training (latency is not measured)")
    parser.add_argument("--quick", action="store_true", help="a few steps, one seed, 100 test images")
    args = parser.parse_args(argv)
    if args.quick:
        args.prune_steps, args.steps_per_epoch, args.seeds, args.test_images, args.eval_images = 3, 3, 1, 100, 50
    for spec in (args.spec, args.larger):
        if fashion.untrained(spec):
            raise SystemExit(f"{spec} has no trained weights: {fashion.untrained(spec)}")
    here = this_machine(args.profile, 1, "hierarchical_kd", args.threads)
    shape = default_input_shape(args.spec)
    data = load_data("fashion-mnist", shape)
    original, larger = build(args.spec).eval(), build(args.larger).eval()
    print(f"{args.spec}: top-1 {100 * top1(original, data.test, args.test_images):.2f}%; {args.larger}: "
          f"{100 * top1(larger, data.test, args.test_images):.2f}% (test split)")
    results, blocks = {}, {}
    for share in args.shares:
        scores = {side: [] for side in ("pruned", *SIDES)}
        budget = f"{100 * share:g}%"
        blocks[share] = reachable_block(original, args.spec, shape, here.profile, budget, here.runner)
        print(f"budget {budget} of the predicted latency: block {blocks[share]}", flush=True)
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            pruned = mp.prune(original, torch.randn(shape), data, method="fisher",
                              target=mp.Target(budget=budget, profile=here.profile, block=blocks[share],
                                               device=here.runner),
                              training=mp.TrainConfig(steps=args.prune_steps, batch_size=args.batch_size, lr=1e-3,
                                                      seed=seed),
                              output=mp.Output(spec=args.spec, show=False)).model
            scores["pruned"].append(top1(pruned, data.test, args.test_images))
            chains = {"no teacher": [], "original": [original], "original -> larger": [original, larger]}
            for side in SIDES:
                student = copy.deepcopy(pruned)
                # Same total epochs: without the chain, its two stages' epochs run as one.
                epochs = args.epochs if len(chains[side]) == 2 else 2 * args.epochs
                config = FinetuneConfig(epochs_per_teacher=epochs, batch_size=args.batch_size,
                                        steps_per_epoch=args.steps_per_epoch, eval_images=args.eval_images, seed=seed)
                result = finetune(student, data, chains[side], config=config, show=False)
                scores[side].append(top1(result.model, data.test, args.test_images))
                print(f"  {100 * share:g}% seed {seed} {side:20s}: top-1 {100 * scores[side][-1]:.2f}%", flush=True)
        results[share] = {side: (statistics.mean(v), (max(v) - min(v)) / 2) for side, v in scores.items()}
    print(f"\n{args.spec} pruned by fisher, fine-tuned {2 * args.epochs} epochs of {args.steps_per_epoch} steps "
          f"(batch {args.batch_size}) each way; {args.seeds} seed(s); top-1 % on {args.test_images} test images")
    print(f"{'budget':>7s} {'block':>5s} {'pruned':>14s} " + " ".join(f"{side:>20s}" for side in SIDES))
    for share, row in results.items():
        cells = [f"{100 * row[s][0]:6.2f} +- {100 * row[s][1]:4.2f}" for s in ("pruned", *SIDES)]
        print(f"{100 * share:6g}% {blocks[share]:5d} {cells[0]:>14s} " + " ".join(f"{c:>20s}" for c in cells[1:]))
    return results


if __name__ == "__main__":
    main()
