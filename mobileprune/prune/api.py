"""``mobileprune.prune``: a model, data and a budget in; a slimmed model, its plan and a report out.

Order of work, so that bad input changes nothing: analyse, price, check the budget and the
output directory, then train (checkpointing into OUT/checkpoint.pt, resumed when the same run
is started again), select (and, with measured rounds, measure on the device and select again:
measured_rounds.py), slim (checked equal to the masked model), save, report.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..cost.registry import COSTS, CostError, CostInputs
from ..cost.registry import make as build_cost
from ..data import top1
from ..devices import runtimes
from ..devices.identity import compare, host_identity
from ..devices.latency_table import DeviceProfile
from ..devices.measuring import measure_for_profile, on_demand
from ..errors import MobilepruneError
from ..graph import Analysis
from ..plan import PrunePlan
from ..slim import analyze, slim
from ..train.loop import TrainConfig
from .blocks import Blocks, magnitude_order
from .budget import Budget, resolve
from .context import Context
from .measured_rounds import MeasuredRounds, meet_measured, selection_key
from .methods import METHODS, SHARED_OPTIONS
from .select import put_back, select, select_by_rank, smallest

DEFAULT_BLOCK = 8  # without a profile (FLOPs or memory budgets): a block most mobile kernels like
CHECKPOINT = "checkpoint.pt"
# Which positions make a block (option "blocks", blocks.py): the strongest channels first (the
# default), or contiguous positions (until 2026-12-04; fisher 1.5 points lower at block 32).
BLOCK_ORDERS = ("magnitude", "contiguous")


class PruneError(MobilepruneError, ValueError):
    """Pruning cannot start with these inputs."""


@dataclass(frozen=True)
class Target:
    """What to prune to. ``budget``: a share of the original's cost ("50%") or an absolute value
    in the cost's unit (ms for latency; see cost/). ``cost``: "latency" (priced by ``profile``, a
    DeviceProfile or its path), "flops" or "memory". ``block``: channels kept in multiples of it
    (default: the profile's block; 8 without one). ``device``: a Runner of the profile's device:
    layer widths the profile lacks are measured on it and added to the profile. ``measured``
    (latency budgets, with ``device``): a MeasuredRounds, e.g. ``MeasuredRounds(rounds=3)``:
    plans are lowered and measured on the device, the selection made again until one measures
    at or just under the budget (measured_rounds.py): from the same importance, or, for a trained
    method asked for a tighter plan than it trained towards, trained again at that aim
    (TrainedRuns). With measured rounds the budget is a measured latency: a share ("50%") is of
    the original's latency measured on the device, and the first plan is chosen at the same
    share of the original's predicted latency (the table may sum the whole net faster or slower
    than the device runs it). ``dtype``: what the shipped model computes in ("float32", "int8"):
    a latency budget is priced by a profile measured in it (an int8 model by a profile of the
    executorch-int8 runtime), and a profile of another dtype is refused; None: the profile's."""
    budget: str | float = "50%"
    cost: str = "latency"
    profile: object = None  # a DeviceProfile or the path of one
    block: int | None = None
    device: object = None  # a Runner
    measured: MeasuredRounds | None = None
    dtype: str | None = None


@dataclass(frozen=True)
class Method:
    """A pruning method by name (METHODS) with its options, e.g. ``Method("fisher", {"floor":
    0.5})``: each method's are in its module (fisher.OPTIONS, l1.OPTIONS, gates' DEFAULTS;
    "blocks", which positions make a block, is everyone's). An option a method does not have is
    refused."""
    name: str = "fisher"
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Output:
    """Where the result goes: ``out``, a directory to save the pruned model in (mobileprune.load
    takes it; a killed run resumes from its checkpoint there); ``spec``, how to rebuild the
    original there (default: the model's class, see storage.save), which as a model spec string
    also names the model in the profile's calibrations; ``show``: progress and tables;
    ``score_images``: top-1 before and after on this many images of the data's held-out split
    (data a DataSplits), in the report as "top1"."""
    out: object = None  # a directory path
    spec: object = None
    show: bool = True
    score_images: int = 0


@dataclass
class PruneResult:
    model: nn.Module  # slimmed, eval mode, plain torch
    plan: PrunePlan
    report: dict
    analysis: Analysis = field(repr=False, default=None)
    path: Path | None = None


def make_cost(kind: str, analysis: Analysis, profile: DeviceProfile | None, model_key: str | None, runner=None,
              block: int = 1):
    """The cost model ``kind`` (a name in cost/registry.py) of ``analysis``; with a ``runner``,
    latency rows the profile lacks are measured on its device (which must be the profile's) and
    appended to the profile, at multiples of the pruning ``block``."""
    entry = COSTS.get(kind)
    measure = on_demand(profile, runner) if runner is not None and entry and entry.needs_profile else None
    try:
        return build_cost(kind, analysis, CostInputs(profile, model_key, measure, block))
    except CostError as e:
        raise PruneError(str(e)) from None


def default_loss(output, target):
    return F.cross_entropy(output, target)


def prune(model: nn.Module, example_inputs, data=None, *, target: Target | None = None,
          method: str | Method = "fisher", training: TrainConfig | None = None, output: Output | None = None,
          loss_fn=None) -> PruneResult:
    """Prune ``model`` to ``target`` (default Target(): 50% of its latency, which needs a
    profile) and slim it, e.g. ``prune(model, x, data, target=Target("50%",
    profile="device_profiles/NAME.csv"), method="fisher")``.

    ``data``: a training Dataset of (input, target), or a DataSplits (its train split is used);
    not needed by ``l1`` and ``uniform``. ``method``: a name or a Method with options.
    ``training``: how a method that trains does (default TrainConfig(): 100 steps at 1e-4;
    BatchNorm frozen where the method's registry entry says so, whatever it says). ``output``:
    where the result goes and whether progress shows (Output). ``loss_fn``: (output, target) ->
    loss, cross-entropy by default.
    """
    from ..storage import save, spec_of

    started = time.perf_counter()
    target, output = target or Target(), output or Output()
    chosen = method if isinstance(method, Method) else Method(method)
    method, options = chosen.name, dict(chosen.options)
    budget, cost, profile, block, device, measured = (target.budget, target.cost, target.profile, target.block,
                                                      target.device, target.measured)
    out, spec, show = output.out, output.spec, output.show
    training = training or TrainConfig()
    steps, seed = training.steps, training.seed
    if method not in METHODS:
        raise PruneError(f"unknown method {method!r}: one of {', '.join(METHODS)}")
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    dataset = getattr(data, "train", data)
    entry = METHODS[method]
    unknown = sorted(set(options or {}) - set(entry.options) - set(SHARED_OPTIONS))
    if unknown:
        raise PruneError(f"method {method!r} has no option {', '.join(map(repr, unknown))}: its options are "
                         f"{', '.join(entry.options + SHARED_OPTIONS)}")
    if entry.trains and dataset is None:
        raise PruneError(f"method {method!r} trains: give data (e.g. --data fashion-mnist)")
    if entry.trains and steps < 1:
        raise PruneError(f"method {method!r} needs steps >= 1")
    held_out = getattr(data, "val", None)
    if output.score_images and held_out is None:
        raise PruneError("scoring top-1 before and after needs data with a held-out split (a DataSplits, e.g. "
                         "--data fashion-mnist)")
    out = Path(out) if out is not None else None
    spec = spec_of(spec if spec is not None else model) if out is not None else spec
    if isinstance(profile, (str, Path)):
        profile = DeviceProfile.load(profile)
    if target.dtype is not None and profile is None:
        raise PruneError(f"dtype={target.dtype!r} says which profile prices a latency budget; a {cost} budget with "
                         f"no profile counts the same in any dtype: leave dtype out, or price latency by a "
                         f"{target.dtype} profile")
    if target.dtype is not None and profile is not None and profile.meta.dtype != target.dtype:
        raise PruneError(_other_dtype(profile, target.dtype))

    work = copy.deepcopy(model).eval()
    analysis = analyze(work, tuple(example_inputs))
    model_key = spec if isinstance(spec, str) else None
    block = int(block or (profile.meta.block if profile is not None else DEFAULT_BLOCK))
    cost_model = make_cost(cost, analysis, profile, model_key, device, block)
    order = (options or {}).get("blocks", BLOCK_ORDERS[0])
    if order not in BLOCK_ORDERS:
        raise PruneError(f"unknown block order {order!r}: one of {', '.join(BLOCK_ORDERS)} (blocks.py)")
    blocks = Blocks(analysis, block, magnitude_order(work, analysis) if order == "magnitude" else None)
    if not blocks.groups:
        raise PruneError(_nothing_to_prune(analysis, block))
    with torch.no_grad():
        original = float(cost_model())
        least = float(cost_model(blocks.fractions(smallest(blocks))))
    if measured is not None and (cost != "latency" or device is None):
        raise PruneError("measured rounds measure the plan's latency on the profile's device: they need a "
                         "latency budget and a device (--device host)")
    if out is not None and (out / "model.json").exists():
        raise PruneError(f"{out} already holds a saved model: choose another --out (nothing was changed)")
    before = top1(model, held_out, output.score_images) if output.score_images else None
    # With measured rounds the budget is a measured latency, and the floor only the profile's
    # prediction of the smallest plan: a device running faster than its table today can meet a
    # budget under it. So it is not refused: the method trains towards the floor, and the
    # rounds measure the plans from there (the report says whether the budget was met).
    # The budget is refused or accepted on the scale it is given in: a measured budget against
    # the original's measurement, not its prediction (a table summing to 0.56 ms for a net that
    # measured 1.50 ms refused a budget of 1.28 ms as "already fits").
    def on_device(net: nn.Module) -> float:  # as the profile's rows were measured
        return measure_for_profile(net, tuple(example_inputs), device, profile.meta, measured.processes)["ms"]

    measured_original = None
    if measured is not None:
        measured_original = measured.original_ms if measured.original_ms is not None else on_device(work)
    the_budget = resolve(budget, cost_model.unit, measured_original or original, 0.0 if measured else least)
    first_aim = measured.first_aim if measured is not None else None
    # a measured budget's share of the original, on the prediction's scale
    aim = first_aim or (the_budget.share * original if measured else the_budget.value)
    trained_to = dataclasses.replace(the_budget, value=max(aim, least))

    torch.manual_seed(seed)
    config = dataclasses.replace(training, freeze_bn=entry.freeze_bn)
    # (a measured original varies from run to run: a killed run's checkpoint resumes on the budget as asked)
    run_key = {"method": method, "budget": {"measured": the_budget.asked} if measured else the_budget.to_dict(),
               "cost": cost, "block": block,
               "fingerprint": analysis.fingerprint(), "options": options or {}, "data": len(dataset or []),
               **({"first_aim": first_aim} if first_aim else {})}  # a checkpoint resumes the same aim only
    options = dict(options or {})
    normalise = options.get("normalise")  # fisher: price savings with another cost model, or "none"
    saving_cost = make_cost(normalise, analysis, profile, model_key, device, block) \
        if normalise and normalise not in (cost, "none") else None
    ctx = Context(work, blocks, cost_model, trained_to, config, dataset, loss_fn or default_loss,
                  out / CHECKPOINT if out is not None and entry.trains else None, run_key, show, options,
                  saving_cost)
    outcome = entry.run(ctx)
    measured_report = None
    if measured is not None:
        runs = TrainedRuns(method, ctx, model, outcome, least, seed)

        def measure(sel: dict) -> float:
            return on_device(slim(runs.run_of(sel)[0], analysis, blocks.plan(sel)).eval())

        selection, rounds = meet_measured(runs.select, ctx.price, measure, the_budget.value, measured.rounds,
                                          first_aim=aim)
        work, outcome = runs.run_of(selection)
        measured_report = {**rounds.to_dict(), "original_ms": measured_original, "trained_aims": runs.aims()}
    else:
        selection = _reselect(method, outcome, ctx, trained_to)(the_budget.value)
    plan = blocks.plan(selection, {"method": method, "budget": the_budget.to_dict(), "cost": cost})
    slimmed = slim(work, analysis, plan).eval()
    report = _report(analysis, blocks, selection, cost_model, original, the_budget, method, outcome, profile, block,
                     time.perf_counter() - started)
    if measured_report is not None:
        report["measured"] = measured_report
    if before is not None:
        report["top1"] = {"before": before, "after": top1(slimmed, held_out, output.score_images),
                          "images": min(output.score_images, len(held_out)), "split": f"{data.name} validation"}
    result = PruneResult(slimmed, plan, report, analysis)
    if out is not None:
        save(out, spec, plan, slimmed, [tuple(x.shape) for x in example_inputs])
        (out / "report.json").write_text(json.dumps(report, indent=1, default=float))
        (out / CHECKPOINT).unlink(missing_ok=True)
        result.path = out
    return result


def _other_dtype(profile: DeviceProfile, dtype: str) -> str:
    runtime = runtimes.get(profile.meta.runtime)
    theirs = [r.name for r in runtimes.RUNTIMES.values() if r.dtype == dtype]
    how = (f"profile this device with `mobileprune profile --runtime {theirs[0]} ...` and give that profile"
           if theirs else f"no registered runtime computes in {dtype}")
    return (f"{profile.path} is a {profile.meta.dtype} table ({runtime.label}): the latency of a model shipped in "
            f"{dtype} is priced and measured by a {dtype} profile, never one of another dtype; {how}")


def _reselect(method: str, outcome, ctx: Context, budget: Budget):
    """aim -> the method's selection for that predicted budget, without training again: from
    the learned importance, or (uniform scaling, which has none) by the method itself. Both
    give the smallest plan for an aim under the floor (measured rounds on a fast device)."""
    if outcome.importance is not None:
        def at(aim: float) -> dict:
            selection = select_by_rank(ctx.blocks, outcome.importance, ctx.cost, aim) if outcome.by_rank else \
                select(ctx.blocks, outcome.importance, ctx.cost, aim, rank_cost=ctx.saving_cost, floor=outcome.floor)
            return put_back(ctx.blocks, selection, outcome.removed, ctx.cost, aim) if outcome.removed else selection
        return at
    if METHODS[method].trains:
        raise AssertionError(f"{method} returned no importance")
    run = METHODS[method].run
    return lambda aim: run(dataclasses.replace(ctx, budget=dataclasses.replace(budget, value=aim))).selection


LOOSER = 0.025  # an aim this share over a run's own is looser than it: chosen from it, or trained again


class TrainedRuns:
    """The measured rounds' selections, and the trained weights each belongs to.

    A trained method's ranking is learnt while the net trains at the budget's aim: a selection
    at a *looser* aim puts back blocks it had removed as the least useful, but one at a *tighter*
    aim cuts blocks the net had trained with until the end. That step cost fisher 19 points at
    50% of fashion:mobilenet_w1 (docs/results.md, 2026-12-04: its first plans measured 1-12%
    over the budget; those chosen again under it kept 59-72% top-1, plans chosen on the
    prediction alone 83%). So an aim tighter than every run so far is trained for again, from
    the user's weights with the same seed; any other aim is chosen from the run trained at the
    nearest aim under it (fisher puts back the blocks it removed while training, the last removed
    first: select.put_back), unless that run cannot answer it (the plan it gives is the run's own:
    not one block it removed fits back), which is trained for too.
    Methods that do not train (l1, uniform) choose again as before.

    Only the first run is checkpointed (OUT/checkpoint.pt): the later runs' aims come from
    measurements, which a restarted run makes again, so a killed run trains them again.
    """

    def __init__(self, method: str, ctx: Context, original: nn.Module, outcome, least: float, seed: int) -> None:
        self.method, self.ctx, self.original, self.least, self.seed = method, ctx, original, least, seed
        self.runs = [(ctx.budget.value, ctx.model, outcome)]  # (trained aim, weights, outcome)
        self.by_key: dict = {}  # selection key -> index into runs

    def select(self, aim: float) -> dict:
        aim = max(aim, self.least)
        under = [i for i, (trained, _, _) in enumerate(self.runs) if trained <= aim * (1 + 1e-9)]
        if not METHODS[self.method].trains:
            i = 0
        elif under:
            i = max(under, key=lambda j: self.runs[j][0])
        else:
            i = self._train(aim)
        selection = self._select_from(i, aim)
        trained = self.runs[i][0]
        if METHODS[self.method].trains and aim > trained * (1 + LOOSER) and \
                selection_key(selection) == selection_key(self._select_from(i, trained)):
            # The run cannot answer a looser aim: no block it removed fits back, so the plan stays
            # where that run stopped (before put_back, at 30% of fashion:resnet_w0.5 fisher's rounds
            # ended at 0.84-0.86 of Torch-Pruning's latency after two plans, 2026-12-06). Trained
            # again at this aim, as a tighter one is.
            i = self._train(aim)
            selection = self._select_from(i, aim)
        self.by_key[selection_key(selection)] = i
        return selection

    def _select_from(self, i: int, aim: float) -> dict:
        trained, model, outcome = self.runs[i]
        ctx = dataclasses.replace(self.ctx, model=model)
        return _reselect(self.method, outcome, ctx, dataclasses.replace(ctx.budget, value=trained))(aim)

    def _train(self, aim: float) -> int:
        ctx = dataclasses.replace(self.ctx, model=copy.deepcopy(self.original).eval(), checkpoint=None,
                                  budget=dataclasses.replace(self.ctx.budget, value=aim))
        torch.manual_seed(self.seed)
        self.runs.append((aim, ctx.model, METHODS[self.method].run(ctx)))
        return len(self.runs) - 1

    def run_of(self, selection: dict) -> tuple:
        """(weights, outcome) of the run ``selection`` was chosen from."""
        return self.runs[self.by_key[selection_key(selection)]][1:]

    def aims(self) -> list[float]:
        return [trained for trained, _, _ in self.runs]


def _nothing_to_prune(analysis: Analysis, block: int) -> str:
    frozen = [g for g in analysis.groups if g.frozen]
    small = [g for g in analysis.groups if not g.frozen and not g.prunable(block)]
    reasons = sorted({r.split(":")[0] for g in frozen for r in g.reasons})[:4]
    return (f"nothing to prune: of {len(analysis.groups)} channel groups, {len(frozen)} are frozen"
            + (f" ({'; '.join(reasons)})" if reasons else "")
            + f" and {len(small)} are no larger than one block of {block} channels"
            + ("; try a smaller --block" if small else ""))


def _report(analysis, blocks: Blocks, selection, cost_model, original: float, budget: Budget, method, outcome,
            profile, block, seconds) -> dict:
    with torch.no_grad():
        fractions = blocks.fractions(selection)
        after = float(cost_model(fractions))
    scores = blocks.split(outcome.importance) if outcome.importance is not None else {}
    groups = [{"group": gb.group.id, "name": _layer_name(gb.group), "channels": gb.group.channels,
               "kept": blocks.widths(selection)[gb.group.id], "blocks_kept": selection[gb.group.id].tolist(),
               "importance": np.asarray(scores[gb.group.id]).tolist() if gb.group.id in scores else None}
              for gb in blocks.groups]
    report = {
        "method": method, "cost": cost_model.unit, "block": block, "budget": budget.to_dict(),
        "predicted": {"before": original, "after": after, "budget": budget.value,
                      "below_budget_pct": 100 * (1 - after / budget.value)},
        "groups": groups, "method_info": _jsonable(outcome.info), "seconds": seconds,
    }
    if hasattr(cost_model, "per_layer"):
        report["layers"] = [{"node": lay.node, "op": lay.op, "before": b, "after": a}
                            for (lay, b), (_, a) in zip(cost_model.per_layer(), cost_model.per_layer(fractions))]
    if profile is not None:
        match = compare(profile.meta.device_identity, host_identity())
        report["profile"] = {"path": str(profile.path), "runtime": runtimes.get(profile.meta.runtime).label,
                             "device": match.profile_device.describe(), "device_match": match.matches,
                             "device_note": None if match.matches else match.warning()}
    return report


def _layer_name(group) -> str:
    """A group by the first layer whose weight produces it ("layer1.0.conv1[0]")."""
    weights = [p for p in group.producers if ".weight[" in p]
    return (weights[0] if weights else group.name()).replace(".weight", "")


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.generic, np.ndarray)):
        return v.tolist()
    return v
