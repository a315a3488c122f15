"""Predicted vs measured latency on this machine, for whole models and randomly pruned variants.

    .venv/bin/python benchmarks/latency_truth.py --profile device_profiles/host-executorch-1t.csv

For each model: the profile's prediction, the measured latency and the error. Measured: timed in
turns with the profile's speed reference in --processes fresh processes, 1 thread, and turned
into ms at the speed the device had when the profile was made (devices/reference.py; the median
of the per-process ratios times the reference's stored latency). The wall-clock latency (lowest
per-process median) is printed beside it, with the error a prediction would show against it.
Every model is predicted as a user gets it: with its own calibration when the profile measured
it (the issue's design: a calibrated per-model term), which for an unpruned model checks only
that the calibration still holds now; a pruned variant with its original's, which checks the
table's response to the widths. The stricter figure for unpruned models is printed too: each
predicted from the *other* models' calibration only (leave-one-out: a model the profile never
saw). Every calibration (scale, per-layer, offset; cost.latency.calibrate) is printed, and a
FLOPs-proportional baseline (one GFLOP/s constant, leave-one-out).
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import warnings

import numpy as np
import torch

import mobileprune as mp
from mobileprune.cost import FlopsCost, LatencyCost, fractions_from_plan
from mobileprune.cost.calibrate import CALIBRATIONS
from mobileprune.devices import HostRunner, runtimes
from mobileprune.devices.identity import compare
from mobileprune.devices.latency_table import DeviceProfile
from mobileprune.devices.builds import cache_dir
from mobileprune.devices.measuring import measure_model
from mobileprune.devices.reference import speed_reference
from mobileprune.profiling import DEFAULT_MODELS
from mobileprune.spec import build, default_input_shape

PRUNED_FROM = ["torchvision:mobilenet_v2", "torchvision:mobilenet_v3_large", "torchvision:resnet18"]
RATIOS = [0.25, 0.4, 0.55]
NO_FIXED = "scale without fixed share"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", required=True)
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--models", nargs="*", help="model specs (default: every model the profile "
                        "calibrated)")
    parser.add_argument("--block", type=int, help="block of the random plans (default: the profile's)")
    parser.add_argument("--pruned-from", nargs="*", default=PRUNED_FROM,
                        help="the models whose random prunings are predicted and measured too")
    parser.add_argument("--ratios", nargs="*", type=float, default=RATIOS,
                        help="the pruning ratios of the random plans, one plan each per --pruned-from model")
    parser.add_argument("--calibration", default="scale", choices=CALIBRATIONS, help="the one printed first")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    profile = DeviceProfile.load(args.profile)
    runner = HostRunner()
    match = compare(profile.meta.device_identity, runner.identity())
    if not match.matches:  # errors against another device's latencies mean nothing
        raise SystemExit(f"latency_truth: {match.warning()} Run it with a profile of this machine "
                         f"(mobileprune profile --device host ...).")
    overheads = profile.meta.overheads_ms
    args.models = args.models or list(overheads) or DEFAULT_MODELS
    cases = []  # (label, spec, model, analysis, plan)
    for spec in args.models:
        model = build(spec).eval()
        analysis = mp.analyze(model, torch.randn(default_input_shape(spec)))
        cases.append((spec.split(":")[-1], spec, model, analysis, mp.PrunePlan.full(analysis)))
        if spec in args.pruned_from:
            for seed, ratio in enumerate(args.ratios):
                plan = mp.PrunePlan.random(analysis, ratio, args.block or profile.meta.block, seed)
                cases.append((f"{spec.split(':')[-1]} -{int(ratio * 100)}%", spec, model, analysis, plan))
    without_fixed = DeviceProfile(dataclasses.replace(profile.meta, fixed_shares={}), profile.table)
    runtime = runtimes.get(profile.meta.runtime)
    reference = speed_reference(profile.meta, cache_dir(runtime))
    rows = []
    for label, spec, model, analysis, plan in cases:
        pruned = bool(plan.keep)
        fractions = fractions_from_plan(analysis, plan)
        predicted = {mode: float(LatencyCost(analysis, profile, model_key=spec, calibration=mode)(fractions))
                     for mode in CALIBRATIONS}
        # the scale as it was before fixed shares (cost/calibrate.py): what they change
        predicted[NO_FIXED] = float(LatencyCost(analysis, without_fixed, model_key=spec)(fractions))
        unseen = {} if pruned else {  # as if the profile had never measured this model
            mode: float(LatencyCost(analysis, profile, calibration=mode, exclude=(spec,))(fractions))
            for mode in CALIBRATIONS}
        flops = float(FlopsCost(analysis)(fractions)) * np.prod(default_input_shape(spec)[-2:]) * 1e3
        net = mp.slim(model, analysis, plan, verify=False) if pruned else model
        m = measure_model(net, analysis.example_inputs, runner, runtime, profile.meta.threads,
                          processes=args.processes, reference=reference)
        measured, wall = m["ms"], m.get("raw_ms", m["ms"])
        rows.append(dict(label=label, pruned=pruned, predicted=predicted, unseen=unseen, measured=measured,
                         flops=flops, wall=wall))
        err = {mode: 100 * (v - measured) / measured for mode, v in predicted.items()}
        print(f"{label:28s} predicted {predicted[args.calibration]:8.3f} ms  measured {measured:8.3f} ms  "
              f"error {err[args.calibration]:+6.1f}%  ("
              + ", ".join(f"{mode} {e:+6.1f}%" for mode, e in err.items() if mode != args.calibration)
              + (f"; unseen {100 * (unseen[args.calibration] - measured) / measured:+6.1f}%" if unseen else "")
              + f"; wall clock {wall:7.3f} ms, {100 * (predicted[args.calibration] - wall) / wall:+6.1f}%; "
              f"ratio spread x{m.get('ratio_spread', float('nan')):.3f})", flush=True)
    # FLOPs baseline: latency = FLOPs / rate, the rate fit on the other models (leave-one-out).
    rates = np.array([r["flops"] / r["measured"] for r in rows])
    flops_err = np.array([(r["flops"] / np.median(np.delete(rates, i)) - r["measured"]) / r["measured"]
                          for i, r in enumerate(rows)])
    print(f"\n{len(rows)} models ({sum(r['pruned'] for r in rows)} pruned variants), {profile.meta.runtime}, "
          f"{profile.meta.threads} thread, plans in blocks of {args.block or profile.meta.block}, profile {args.profile}")

    def errors(key, mode, which=lambda r: True, against="measured"):
        return np.array([(r[key][mode] - r[against]) / r[against] for r in rows if which(r) and mode in r[key]])

    results = []
    for mode in (*CALIBRATIONS, NO_FIXED):
        results += [(f"{mode} calibration", errors("predicted", mode)),
                    ("  pruned variants only", errors("predicted", mode, lambda r: r["pruned"])),
                    ("  unpruned, leave-one-out", errors("unseen", mode, lambda r: not r["pruned"]))]
    results += [("FLOPs-proportional", flops_err),
                (f"{args.calibration}, vs wall clock", errors("predicted", args.calibration, against="wall"))]
    for name, err in results:
        if not len(err):  # (no leave-one-out figure without fixed shares: an unseen model has none)
            continue
        within = float(np.mean(np.abs(err) <= 0.10))
        print(f"{name:30s}: within +-10%: {100 * within:3.0f}% ({int(np.sum(np.abs(err) <= 0.10))}/{len(err)})   "
              f"median |error|: {100 * statistics.median(np.abs(err)):4.1f}%   max |error|: {100 * np.max(np.abs(err)):5.1f}%")


if __name__ == "__main__":
    main()
