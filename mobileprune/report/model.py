"""What the report of a pruned model shows, gathered as one JSON-able dict (report/page.py draws it).

Every latency here comes from the library's own functions, so the page says what the commands
say: predictions are ``predict.predict``'s (the numbers of ``mobileprune predict --json``),
measurements the export manifest's or, with a device, ``predict``'s whole-model measurement
(timed in turns with the profile's speed reference) and ExecuTorch's per-op ETDump events.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..devices import runtimes
from ..devices.latency_table import DeviceProfile
from ..devices.measuring import timing_program
from ..errors import MobilepruneError
from ..export.exporter import MANIFEST, plan_hash
from ..graph.kinds import kind
from ..graph.layers import SIGNATURE_FIELDS
from ..plan import PrunePlan
from ..predict import ModelRef, predict, resolve
from .per_op import map_events

STAIRCASES = 6  # layers whose staircase is drawn: those that did not get faster first, then the slowest
SLOWER_THAN_WORK = 0.9  # a layer "did not get faster" when its time kept >= 90% ...
WORK_CUT = 0.8  # ... while its work (channel product) fell to <= 80%,
MATTERS = 0.03  # ... and it took >= 3% of the original's layers' time (not a pool of a few microseconds)


class ReportError(MobilepruneError, ValueError):
    """A report asked of something that cannot give one."""


def model_report(saved_dir, *, profile: DeviceProfile | None = None, export_dir=None, runner=None,
                 data=None, images: int = 1000, processes: int = 3) -> dict:
    """The report of a saved pruned model (``mobileprune prune --out``): its widths, its
    latency per layer before and after (predicted from ``profile``; with a ``runner``, also
    measured there: whole models in ``processes`` fresh processes and ExecuTorch's per-op
    events), its size, the export manifest in ``export_dir``, and top-1 before and after on
    ``images`` held-out images of ``data`` (data.load_data's splits) or, without, what the prune
    run recorded."""
    saved_dir = Path(saved_dir)
    pruned = resolve(str(saved_dir))
    original = ModelRef(pruned.spec, pruned.original, pruned.analysis, PrunePlan.full(pruned.analysis), pruned.original)
    prune_run = _json(saved_dir / "report.json")
    report = {"kind": "model", "dir": str(saved_dir), "spec": pruned.spec, "block": pruned.plan.block,
              "method": (pruned.plan.meta or {}).get("method"), "budget": (prune_run or {}).get("budget"),
              "input_shape": list(pruned.example_inputs[0].shape),
              "size": _size(original, pruned), "groups": _groups(pruned), "latency": None, "layers": [],
              "staircases": [], "per_op": None, "export": None, "top1": None, "profile": None}
    if profile is not None:
        _latency(report, profile, original, pruned, runner, processes)
    if export_dir is not None:
        report["export"] = _export(Path(export_dir), pruned)
    report["top1"] = _top1(original, pruned, data, images, prune_run)
    return report


def _json(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def _size(original: ModelRef, pruned: ModelRef) -> dict:
    def macs(model):
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model.eval()(*pruned.example_inputs)
        return counter.get_total_flops() // 2  # FLOPs of multiply-adds count 2

    def params(model):
        return sum(p.numel() for p in model.parameters())

    return {"macs": [macs(original.model), macs(pruned.model)],
            "params": [params(original.model), params(pruned.model)]}


def _groups(ref: ModelRef) -> list[dict]:
    """Every group a plan could cut, with its width before and after."""
    return [{"group": g.id, "name": g.name(), "channels": g.channels, "kept": len(ref.plan.keep[g.id]) * g.unit
             if g.id in ref.plan.keep else g.channels} for g in ref.analysis.free_groups]


def _latency(report: dict, profile: DeviceProfile, original: ModelRef, pruned: ModelRef, runner, processes) -> None:
    measure = runner is not None
    before = predict(original, profile, runner, measure=measure, processes=processes)
    after = predict(pruned, profile, runner, measure=measure, processes=processes)
    report["profile"] = {"path": str(profile.path), "runtime": after["runtime"], "threads": after["threads"],
                         "device": after["profile_device"], "this_device": after["this_device"],
                         "device_match": after["device_match"], "device_note": after["device_note"],
                         "block": profile.meta.block, "tiles": dict(profile.meta.tiles)}
    report["latency"] = {"predicted": [before["predicted_ms"], after["predicted_ms"]],
                         "measured": [before["measured_ms"], after["measured_ms"]] if measure else None,
                         "device": runner.device if measure else None, "calibration": after["calibration"]}
    runtime = runtimes.get(profile.meta.runtime)
    per_op = None
    if measure and runtime.per_op_events:
        per_op = [_per_op(ref, runner, runtime, profile.meta.threads, before["by_layer"]) for ref in (original, pruned)]
    report["per_op"] = {"available": runtime.per_op_events, "measured": per_op is not None,
                        "unmapped": [m.unmapped for m in per_op] if per_op else None,
                        "other_ms": [m.other_ms for m in per_op] if per_op else None,
                        "total_ms": [m.total_ms for m in per_op] if per_op else None,
                        "why_not": None if runtime.per_op_events else
                        f"{runtime.label} gives no per-op times from Python (its interpreter has no profiler "
                        f"API there): measured whole models only"}
    report["layers"] = _layer_rows(before["by_layer"], after["by_layer"], per_op, _module_paths(original.analysis))
    report["staircases"] = _staircases(report["layers"], original, profile)


def _layer_rows(before: list, after: list, per_op, labels: dict) -> list[dict]:
    """One row per priced layer: its widths, predicted (and measured) time before and after, the
    share of its work and of its time it kept, and whether it did not get faster."""
    rows, layers_ms = [], sum(r["ms"] for r in before)
    for i, (b, a) in enumerate(zip(before, after)):
        two = kind(b["op"]).two_widths
        work = (a["cin"] * a["cout"]) / (b["cin"] * b["cout"]) if two else a["cout"] / b["cout"]
        row = {"index": i, "node": b["node"], "module": labels.get(b["node"], b["node"]), "op": b["op"],
               "cin": [b["cin"], a["cin"]], "cout": [b["cout"], a["cout"]], "tile": b["tile"],
               "predicted_ms": [b["ms"], a["ms"]], "work": work,
               "measured_ms": [per_op[0].ms[i], per_op[1].ms[i]] if per_op else None}
        kept = _kept_share(row)
        row["kept_time"] = kept
        row["not_faster"] = (kept is not None and work <= WORK_CUT and kept >= SLOWER_THAN_WORK
                             and b["ms"] >= MATTERS * layers_ms)
        rows.append(row)
    return rows


def _kept_share(row: dict) -> float | None:
    """The share of its time a layer kept: measured when it was, else predicted."""
    pair = row["measured_ms"] if row["measured_ms"] and None not in row["measured_ms"] else row["predicted_ms"]
    return pair[1] / pair[0] if pair[0] else None


def _per_op(ref: ModelRef, runner, runtime, threads: int, layer_rows: list):
    """ExecuTorch's per-op events of ``ref`` on ``runner``, mapped to the priced layers."""
    program = timing_program(ref.model, ref.example_inputs, runtime)
    m = runner.run(str(program), threads=threads, repeats=30, op_events=True)
    return map_events([r["op"] for r in layer_rows], m.events)


def _module_paths(analysis) -> dict:
    """Node name -> the module it was called in ('features.3.conv.0'), as users name layers."""
    out = {}
    for node in analysis.program.graph.nodes:
        stack = node.meta.get("nn_module_stack")
        if stack:
            out[node.name] = list(stack.values())[-1][0] or node.name
    return out


def _staircases(rows: list[dict], original: ModelRef, profile: DeviceProfile) -> list[dict]:
    """The table's staircase under the layers that did not get faster, then the slowest: its
    measured points at the grid input width nearest the pruned one, and the price LatencyCost
    gives every output width (cost/latency.py: staircase_prices), both before calibration."""
    from ..cost.latency import staircase_prices
    from ..graph.layers import layers

    layer_list = layers(original.analysis, runtimes.get(profile.meta.runtime).fused_activations)
    chosen = sorted(rows, key=lambda r: (not r["not_faster"], -r["predicted_ms"][0]))[:STAIRCASES]
    table, out = profile.table, []
    for row in chosen:
        layer = layer_list[row["index"]]
        sig = layer.signature()
        rows_of = table
        for f in SIGNATURE_FIELDS:
            rows_of = rows_of[rows_of[f] == sig[f]]
        if rows_of.empty:
            continue
        two = kind(layer.op).two_widths
        full = int(layer.cout.full)
        cin_now = row["cin"][1]
        if two:
            cins = sorted(set(int(c) for c in rows_of["cin"]))
            at = min(cins, key=lambda c: (abs(c - cin_now), -c))
            points = rows_of[rows_of["cin"] == at].sort_values("cout")
        else:
            at, points = None, rows_of[rows_of["cin"] == rows_of["cout"]].sort_values("cout")
        widths = list(range(1, full + 1))
        prices = staircase_prices(rows_of, two, row["tile"], cin_now, widths, full)
        out.append({"index": row["index"], "module": row["module"], "op": row["op"], "tile": row["tile"],
                    "widths": row["cout"], "points_cin": at, "points": [[int(c), float(ms)] for c, ms in
                                                                        zip(points["cout"], points["ms"])],
                    "curve": [[w, p] for w, p in zip(widths, prices) if p is not None],
                    "not_faster": row["not_faster"]})
    return out


def _export(export_dir: Path, pruned: ModelRef) -> dict:
    manifest = _json(export_dir / MANIFEST)
    if manifest is None:
        raise ReportError(f"{export_dir} holds no {MANIFEST}: give the directory `mobileprune export --out` wrote")
    # The plan's hash, not its fingerprint: the fingerprint names the architecture, which every
    # plan of one net shares; the hash tells this plan's export from another's.
    ours = {plan_hash(pruned.plan), plan_hash(pruned.plan if pruned.plan.keep else None)}  # (a plan that keeps all: none)
    if manifest["model"].get("plan_sha256") not in ours:
        raise ReportError(f"{export_dir / MANIFEST} is the export of another model or plan (plan sha256 "
                          f"{manifest['model'].get('plan_sha256')}, this one's {plan_hash(pruned.plan)})")
    return {"dir": str(export_dir), "passed": manifest["passed"], "device": manifest.get("device"),
            "predicted_latency_ms": manifest.get("predicted_latency_ms"),
            "artifacts": [{k: a.get(k) for k in ("format", "path", "status", "dtype", "size_bytes", "latency_ms",
                                                 "parity", "delegation", "top1", "error")}
                          for a in manifest["artifacts"]]}


def _top1(original: ModelRef, pruned: ModelRef, data, images: int, prune_run) -> dict | None:
    from ..data import top1

    if data is not None:
        n = min(images, len(data.val))
        return {"before": top1(original.model, data.val, n), "after": top1(pruned.model, data.val, n),
                "images": n, "split": f"{data.name} validation", "source": "measured for this report"}
    if prune_run and prune_run.get("top1"):
        return {**prune_run["top1"], "source": "recorded by the prune run"}
    return None
