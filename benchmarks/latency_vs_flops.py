"""At equal FLOPs, does normalising Group Fisher by latency give a faster model than by FLOPs?

    .venv/bin/python benchmarks/latency_vs_flops.py --profile device_profiles/host-amd-epyc-f25m17-executorch-1t.csv

For each model (default: torchvision mobilenet_v2, mobilenet_v3_large, efficientnet_b0 at 224),
fisher prunes to the same FLOPs budget (--share, 50%) twice: once dividing each block's Fisher
importance by the *latency* its removal saves (from the profile), once by the *FLOPs* it saves
(as the paper does). Both slimmed models are lowered to .pte and measured in the same run (1
thread, normalised to the profile's speed, as latency_truth measures it); printed side by side
with their FLOPs. The profile must cover the models' layers (`mobileprune profile --model ...`).
Training data: Fashion-MNIST resized to 3x224 (only the ranking matters here, not accuracy).
"""
from __future__ import annotations

import argparse

import torch
from measured import model_arguments, parse_model_arguments, this_machine
from torch.utils.data import Subset

import mobileprune as mp
from mobileprune.data import load_data
from mobileprune.spec import build, default_input_shape, parse_shape

MODELS = ["torchvision:mobilenet_v2", "torchvision:mobilenet_v3_large", "torchvision:efficientnet_b0"]


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_arguments(parser, MODELS, steps=30)
    args = parse_model_arguments(parser, argv)
    here = this_machine(args.profile, args.processes, "latency_vs_flops")
    profile = here.profile
    rows = []
    for spec in args.models:
        shape = parse_shape(args.input_shape) if args.input_shape else default_input_shape(spec)
        train = Subset(load_data("fashion-mnist", shape).train, range(64 if args.quick else 2000))
        row = {"model": spec.split(":")[-1]}
        for normalise in ("latency", "flops"):
            torch.manual_seed(0)
            result = mp.prune(build(spec).eval(), torch.randn(shape), train,
                              method=mp.Method("fisher", {"normalise": normalise}),
                              target=mp.Target(budget=f"{100 * args.share:g}%", cost="flops", profile=profile),
                              training=mp.TrainConfig(steps=args.steps, batch_size=args.batch_size),
                              output=mp.Output(spec=spec, show=False))
            m = here.measure(result.model, shape)
            row[normalise] = {"measured": m["ms"], "kfpp": result.report["predicted"]["after"],
                              "budget_kfpp": result.report["predicted"]["budget"],
                              "original_kfpp": result.report["predicted"]["before"]}
        lat, flo = row["latency"], row["flops"]
        row["speedup_pct"] = 100 * (flo["measured"] / lat["measured"] - 1)
        rows.append(row)
        print(f"{row['model']:20s} FLOPs budget {lat['budget_kfpp']:.2f} kFPP of {lat['original_kfpp']:.2f}: "
              f"latency-normalised {lat['measured']:.3f} ms ({lat['kfpp']:.2f} kFPP), FLOPs-normalised "
              f"{flo['measured']:.3f} ms ({flo['kfpp']:.2f} kFPP): latency normalisation is "
              f"{row['speedup_pct']:+.1f}% faster", flush=True)
    return rows


if __name__ == "__main__":
    main()
