"""Predicted vs measured latency on this machine, for whole models and randomly pruned variants.

    .venv/bin/python benchmarks/latency_truth.py --profile device_profiles/host-executorch-1t.csv

For each model: the profile's prediction, the measured latency (the lowest per-process median
over --processes fresh processes, 1 thread: see devices.runner.measure_artifact) and the
error. An unpruned model is predicted with the
calibration of the *other* models (its own would make its prediction circular); a pruned variant
uses its original's calibration, as a user pruning that model does. Both calibrations (scale,
the default, and offset) are printed, and a FLOPs-proportional baseline (one GFLOP/s constant,
leave-one-out) beside them. For pruned variants, a drift-corrected error is printed too: the
prediction times (the original measured now / the original measured at calibration), which
separates the table's error from this VM's speed changing between calibration and now.
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
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--models", nargs="*", help="model specs (default: every model the profile "
                        "calibrated)")
    parser.add_argument("--block", type=int, help="block of the random plans (default: the profile's)")
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
                plan = mp.PrunePlan.random(analysis, ratio, args.block or profile.meta.block, seed)
                cases.append((f"{spec.split(':')[-1]} -{int(ratio * 100)}%", spec, model, analysis, plan))
    rows, drift = [], {}
    for label, spec, model, analysis, plan in cases:
        pruned = bool(plan.keep)
        # An unpruned model is predicted from the *other* models' calibration (its own is circular).
        exclude = () if pruned else (spec,)
        costs = {mode: LatencyCost(analysis, profile, model_key=spec, calibration=mode, exclude=exclude)
                 for mode in ("scale", "offset")}
        fractions = fractions_from_plan(analysis, plan)
        predicted = {mode: float(c(fractions)) for mode, c in costs.items()}
        flops = float(FlopsCost(analysis)(fractions)) * np.prod(default_input_shape(spec)[-2:]) * 1e3
        net = mp.slim(model, analysis, plan, verify=False) if pruned else model
        measured = measure_model(net, analysis.example_inputs, runner, profile.meta.runtime,
                                 profile.meta.threads, processes=args.processes)
        if not pruned:
            drift[spec] = measured / profile.meta.measured_ms[spec] if spec in profile.meta.measured_ms else None
        elif drift.get(spec):  # the machine's speed now vs at calibration, from the original just measured
            predicted["drift-corrected"] = predicted["scale"] * drift[spec]
        rows.append((label, pruned, predicted, measured, flops))
        corrected = predicted.get("drift-corrected")
        print(f"{label:32s} predicted {predicted['scale']:8.3f} ms  measured {measured:8.3f} ms  "
              f"error {100 * (predicted['scale'] - measured) / measured:+6.1f}%  "
              f"(offset calibration {100 * (predicted['offset'] - measured) / measured:+6.1f}%"
              + (f", drift-corrected {100 * (corrected - measured) / measured:+6.1f}%" if corrected else "")
              + ")", flush=True)
    # FLOPs baseline: latency = FLOPs / rate, the rate fit on the other models (leave-one-out).
    rates = np.array([f / m for *_, m, f in rows])
    flops_err = np.array([(f / np.median(np.delete(rates, i)) - m) / m for i, (*_, m, f) in enumerate(rows)])
    print(f"\n{len(rows)} models ({sum(r[1] for r in rows)} pruned variants), {profile.meta.runtime}, "
          f"{profile.meta.threads} thread, plans in blocks of {args.block or profile.meta.block}, profile {args.profile}")
    results = [(f"table, {mode} calibration", np.array([(p[mode] - m) / m for _, _, p, m, _ in rows]))
               for mode in ("scale", "offset")] + [("FLOPs-proportional", flops_err)]
    corrected = [(p["drift-corrected"] - m) / m for _, _, p, m, _ in rows if "drift-corrected" in p]
    if corrected:
        results.append((f"pruned, drift-corrected ({len(corrected)})", np.array(corrected)))
    for name, err in results:
        within = float(np.mean(np.abs(err) <= 0.10))
        print(f"{name:28s}: within +-10%: {100 * within:.0f}%   median |error|: "
              f"{100 * statistics.median(np.abs(err)):.1f}%   max |error|: {100 * np.max(np.abs(err)):.1f}%")

if __name__ == "__main__":
    main()
