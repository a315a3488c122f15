"""Export every model of the matrix, unpruned and with a random 40% plan, to .pte and .tflite.

    .venv/bin/python benchmarks/export_matrix.py [--models torchvision:resnet18 ...] [--block 32]

Per model and variant: export time, artifact size, parity (max |artifact - eager| relative to the
output's scale, over random inputs and ImageNet sample images; target <= 1e-4), the share of
compute ops XNNPACK runs in the .pte (target >= 95%), and host latency (1 thread, the lowest
per-process median over 5 fresh processes, then the median and highest) of original vs pruned
per format.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path

import torch

import mobileprune as mp
from mobileprune.spec import build, default_input_shape

MODELS = ["torchvision:resnet18", "torchvision:mobilenet_v2", "torchvision:mobilenet_v3_small",
          "torchvision:efficientnet_b0", "torchvision:shufflenet_v2_x1_0", "torchvision:squeezenet1_1"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="*", default=MODELS)
    parser.add_argument("--ratio", type=float, default=0.4)
    parser.add_argument("--block", type=int, default=32, help="channel block of the pruned plans "
                        "(32: what the block probe measured on this host, see device_profiles/)")
    parser.add_argument("--json", help="also write all manifests to this file")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    rows, manifests = [], {}
    header = (f"{'model':28s} {'variant':9s} {'params':>7s} {'fmt':6s} {'export s':>8s} {'MB':>6s} "
              f"{'rel diff':>9s} {'top1':>5s} {'delegated':>9s} {'latency ms (med/max)':>21s}")
    print(header, flush=True)
    with tempfile.TemporaryDirectory(prefix="export-matrix-") as tmp:
        for spec in args.models:
            model = build(spec).eval()
            x = torch.randn(default_input_shape(spec))
            analysis = mp.analyze(model, x)
            plan = mp.PrunePlan.random(analysis, args.ratio, args.block, seed=0)
            variants = [("original", model, None), (f"-{int(args.ratio * 100)}%", mp.slim(model, analysis, plan), plan)]
            for variant, net, p in variants:
                out = Path(tmp) / spec.split(":")[-1] / variant
                try:
                    manifest = mp.export(net, (x,), out, ("pte", "tflite"), config=mp.ExportConfig(measure=True),
                                         origin=mp.ModelOrigin(spec, p))
                except mp.ExportError as exc:
                    manifest = exc.manifest
                manifests[f"{spec} {variant}"] = manifest
                params = sum(t.numel() for t in net.parameters()) / 1e6
                for a in manifest["artifacts"]:
                    lat = a["latency"]
                    lat_s = (f"{lat['ms']:8.3f} ({lat['median']:.2f}/{lat['max']:.2f})" if lat else "-")
                    dele = f"{100 * a['delegation']['delegated_share']:8.1f}%" if a["delegation"] else f"{'-':>9s}"
                    par = a["parity"] or {}
                    print(f"{spec.split(':')[-1]:28s} {variant:9s} {params:6.2f}M {a['format']:6s} "
                          f"{a['export_s']:8.1f} {a['size_bytes'] / 1e6:6.2f} {par.get('rel_diff', float('nan')):9.1e} "
                          f"{par.get('top1_agreement') or 0:5.2f} {dele} {lat_s:>21s}"
                          + ("" if a["status"] == "ok" else f"  FAILED: {a['error'] or 'parity'}"), flush=True)
                    rows.append((spec, variant, a))
    print("\nspeed-up of the pruned model (original / pruned latency, lowest process median):")
    for spec in args.models:
        for fmt in ("pte", "tflite"):
            lat = {v: a["latency_ms"] for s, v, a in rows if s == spec and a["format"] == fmt and a["latency_ms"]}
            if len(lat) == 2:
                orig, pruned = lat["original"], [v for k, v in lat.items() if k != "original"][0]
                print(f"  {spec.split(':')[-1]:28s} {fmt:6s} {orig:8.3f} -> {pruned:8.3f} ms  x{orig / pruned:.2f}")
    parities = [a["parity"]["rel_diff"] for *_, a in rows if a["parity"]]
    shares = [a["delegation"]["delegated_share"] for *_, a in rows if a["delegation"]]
    print(f"\n{len(rows)} artifacts, {sum(a['status'] == 'ok' for *_, a in rows)} passed parity; "
          f"worst relative diff {max(parities):.1e} (target <= 1e-4); lowest .pte delegated share "
          f"{100 * min(shares):.1f}% (target >= 95%)")
    if args.json:
        Path(args.json).write_text(json.dumps(manifests, indent=1))


if __name__ == "__main__":
    main()
