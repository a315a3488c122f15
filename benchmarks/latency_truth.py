"""Predicted vs measured latency on this machine, for whole models and randomly pruned variants.

    .venv/bin/python benchmarks/latency_truth.py --profile device_profiles/host-executorch-1t.csv

For each model: the profile's prediction, the measured latency (median of per-process medians
over --processes fresh processes, 1 thread) and the error. An unpruned model is predicted with the
median overhead of the *other* models (its own calibrated overhead would make its prediction
circular); a pruned variant uses its original's calibrated overhead, as a user pruning that
model does. A FLOPs-proportional baseline (one GFLOP/s constant, leave-one-out) is printed beside.
"""
from __future__ import annotations

import argparse
import statistics
import warnings

import numpy as np
import torch

import mobileprune as mp
from mobileprune.cost import FlopsCost, LatencyCost, fractions_from_plan
from mobileprune.cost.calibrate import DEFAULT_MODELS, measure_model
from mobileprune.devices import HostRunner
from mobileprune.devices.profile import DeviceProfile
from mobileprune.spec import build, default_input_shape

PRUNED_FROM = ["torchvision:mobilenet_v2", "torchvision:mobilenet_v3_large", "torchvision:resnet18"]
RATIOS = [0.25, 0.4, 0.55]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", required=True)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--models", nargs="*", help="model specs (default: every model the profile "
                        "calibrated)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    profile = DeviceProfile.load(args.profile)
    runner = HostRunner()
    overheads = profile.meta.overheads_ms
    args.models = args.models or list(overheads) or DEFAULT_MODELS
    cases = []  # (label, spec, model, analysis, plan)
    for spec in args.models:
        model = build(spec).eval()
        analysis = mp.analyze(model, torch.randn(default_input_shape(spec)))
        cases.append((spec.split(":")[-1], spec, model, analysis, mp.PrunePlan.full(analysis)))
        if spec in PRUNED_FROM:
            for seed, ratio in enumerate(RATIOS):
                plan = mp.PrunePlan.random(analysis, ratio, profile.meta.block, seed)
                cases.append((f"{spec.split(':')[-1]} -{int(ratio * 100)}%", spec, model, analysis, plan))
    rows = []
    for label, spec, model, analysis, plan in cases:
        cost = LatencyCost(analysis, profile, model_key=spec)
        pruned = bool(plan.keep)
        if not pruned:  # leave this model's own overhead out
            others = [v for k, v in overheads.items() if k != spec]
            cost.overhead_ms = float(np.median(others)) if others else 0.0
        fractions = fractions_from_plan(analysis, plan)
        predicted = float(cost(fractions))
        flops = float(FlopsCost(analysis)(fractions)) * np.prod(default_input_shape(spec)[-2:]) * 1e3
        net = mp.slim(model, analysis, plan, verify=False) if pruned else model
        measured = measure_model(net, analysis.example_inputs, runner, profile.meta.runtime,
                                 profile.meta.threads, processes=args.processes)
        rows.append((label, pruned, predicted, measured, flops))
        print(f"{label:32s} predicted {predicted:8.3f} ms  measured {measured:8.3f} ms  "
              f"error {100 * (predicted - measured) / measured:+6.1f}%", flush=True)
    errors = np.array([(p - m) / m for _, _, p, m, _ in rows])
    # FLOPs baseline: latency = FLOPs / rate, the rate fit on the other models (leave-one-out).
    rates = np.array([f / m for *_, m, f in rows])
    flops_err = np.array([(f / np.median(np.delete(rates, i)) - m) / m for i, (*_, m, f) in enumerate(rows)])
    print(f"\n{len(rows)} models ({sum(r[1] for r in rows)} pruned variants), {profile.meta.runtime}, "
          f"{profile.meta.threads} thread, profile {args.profile}")
    for name, err in (("latency table", errors), ("FLOPs-proportional", flops_err)):
        within = float(np.mean(np.abs(err) <= 0.10))
        print(f"{name:20s}: within +-10%: {100 * within:.0f}%   median |error|: "
              f"{100 * statistics.median(np.abs(err)):.1f}%   max |error|: {100 * np.max(np.abs(err)):.1f}%")


if __name__ == "__main__":
    main()
