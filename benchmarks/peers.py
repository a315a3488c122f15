"""Side by side with Torch-Pruning and uniform width: top-1 at equal *measured* latency, by construction.

    .venv/bin/python benchmarks/peers.py --profile device_profiles/<this machine's profile>.csv
    .venv/bin/python benchmarks/peers.py --profile ... --specs fashion:resnet_w0.5 --shares 0.3   # one part

Per Fashion-MNIST net (--specs, trained weights) and budget (--shares of the original's measured
.pte latency on this machine), seed by seed:
1. Plans, alone on the machine (pruning in this process; every latency the median of
   --processes fresh processes timed in turns with the profile's speed reference, each distinct
   architecture measured once):
   - Torch-Pruning 1.6.1's MagnitudePruner with group L2 magnitude and with group Taylor
     importance, ``round_to`` = our block, the classifier left whole: its ratio searched on the
     measured latency until it meets the budget (search_ratio); one shot from the trained weights;
   - uniform: the one width share that meets the budget (measured rounds), trained from scratch;
   - ours (--methods among gates, fisher, l1, all with our latency-aware selection): pruned to
     --margin under the *lowest measured latency of those contenders for this seed* (at most
     the budget), with measured rounds. ``--ours`` instead is pruned once per *latency group*
     of the contenders (latency_groups: contenders within twice --margin of the group's fastest;
     usually one, all contenders at one architecture), at --margin under the group's fastest,
     and timed in turns with each contender of its group (their program as the reference): a
     pair counts at equal latency only at a ratio of at most 1; while ours runs over the group's
     fastest or more than twice --margin under it, it is pruned again aimed by that ratio
     (--pair-tries). So ours meets each contender at that contender's latency, not at the
     lowest of all (at 30% of resnet_w0.5, 2026-12-07, uniform ran 4% under Torch-Pruning, and
     fisher, levelled with uniform, ran at 0.91-0.94 of Torch-Pruning's latency). Gates and
     fisher train while they prune (--prune-steps).
2. Fine-tuning, in --workers processes of one thread, no teacher (distillation has its own
   table: hierarchical_kd.py): every contender trains --prune-steps + --finetune-steps steps in
   all (ours have trained --prune-steps while pruning; the one-shot and from-scratch contenders
   fine-tune for both), Adam with a cosine-decaying learning rate, BatchNorm statistics
   re-estimated at the end. The learning rate is chosen per contender, net and budget by one
   rule: the best held-out (validation split) top-1 of seed 0 over --lrs; the other seeds use it.
3. Tables: measured latency, MACs, parameters, top-1 on the first --test-images test images
   (all 10,000 by default), mean and standard deviation over seeds; the paired difference
   ``--ours`` minus each contender, seed by seed, with its 95% t interval; then the issue's
   target: ``--ours`` (one method, named before the run) against the better of Torch-Pruning's
   two, and against uniform, where every pair is at equal measured latency.

A run is resumable: each place's plans and each fine-tuning's score are kept on disk
(resume.py) until the command completes. Time it from a one-seed run first (--seeds 1) and
split the whole scope with --specs / --shares into parts under 150 minutes.
"""
from __future__ import annotations

import argparse
import copy
import faulthandler
import multiprocessing
import pickle
import re
import statistics
import time
from pathlib import Path
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from measured import from_scratch, reachable_block, signature, this_machine
from resume import RetryingPool, RunState, forget

import mobileprune as mp
from mobileprune import fashion
from mobileprune.data import load_data, top1
from mobileprune.devices.measuring import timing_program
from mobileprune.devices.runner import ratios_in_turns
from mobileprune.finetune.batchnorm import reestimate_batchnorm
from mobileprune.prune.measured_rounds import aim_between, aim_per_ms
from mobileprune.prune.methods import METHODS
from mobileprune.spec import build, default_input_shape
from mobileprune.train.loop import TrainConfig, train

OURS = ("gates", "fisher", "l1")
TORCH_PRUNING = ("tp-magnitude", "tp-taylor")
CONTENDERS = (*OURS, *TORCH_PRUNING, "uniform")
TAYLOR_BATCHES = 4  # batches whose loss gradient Torch-Pruning's Taylor importance reads
TARGETS = {"tp": 0.005, "uniform": 0.01}  # the margins of top-1 at equal measured latency
BN_BATCHES = 16  # training batches the BatchNorm statistics are re-estimated on after fine-tuning


@dataclass(frozen=True)
class Contender:
    """A way to prune: ``method`` (ours, Torch-Pruning's or uniform) with our method's options
    and block (None: the place's)."""
    label: str
    method: str
    options: tuple = ()  # (key, value) pairs
    block: int | None = None


@dataclass
class Pruned:
    """One contender's pruned net for one net, budget and seed (before any fine-tuning)."""
    spec: str
    share: float
    method: str  # the contender's label
    seed: int
    model: torch.nn.Module
    steps: int  # fine-tuning steps still to give it (the same total of training for everyone)
    note: str = ""
    reached: bool = True  # False: it could not be brought within its budget
    aim_ms: float | None = None  # the measured latency it was pruned to (ours: the contenders' lowest)
    measured_ms: float | None = None
    scores: dict = field(default_factory=dict)  # learning rate -> {"val": top-1, "test": top-1}
    lr: float | None = None  # the learning rate chosen for it (seed 0's choice for its contender)
    against: dict = field(default_factory=dict)  # contender -> this latency over its, timed in turns (Place.compare)
    levelled: str = ""  # the headline's net levelled with one latency group of several: its fastest contender

    @property
    def label(self) -> str:
        """The contender, and for the headline levelled with one of several latency groups, whose."""
        return f"{self.method} @{self.levelled}" if self.levelled else self.method

    @property
    def top1(self) -> float | None:
        return self.scores[self.lr]["test"] if self.lr in self.scores else None


def macs_params(model: torch.nn.Module, shape) -> tuple[int, int]:
    import torch_pruning as tp
    return tp.utils.count_ops_and_params(copy.deepcopy(model).eval(), torch.randn(shape))


# ---- Torch-Pruning ------------------------------------------------------------------------------
def tp_prune(original: torch.nn.Module, importance: str, ratio: float, round_to: int, shape, data, seed: int,
             batch_size: int) -> torch.nn.Module:
    """Torch-Pruning's own pruner on a copy of ``original``: MagnitudePruner (in 1.6.1 an alias of
    BasePruner) with group L2 magnitude or group Taylor importance, the classifier left whole."""
    import torch_pruning as tp

    model = copy.deepcopy(original).eval()
    example = torch.randn(shape)
    imp = tp.importance.GroupMagnitudeImportance(p=2) if importance == "tp-magnitude" else \
        tp.importance.GroupTaylorImportance()
    classifier = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1:]
    pruner = tp.pruner.MagnitudePruner(model, example, importance=imp, pruning_ratio=ratio, round_to=round_to,
                                       ignored_layers=classifier)
    if importance == "tp-taylor":  # Taylor reads weight x gradient of the task loss
        g = torch.Generator().manual_seed(seed)
        model.zero_grad()
        for _ in range(TAYLOR_BATCHES):
            idx = torch.randint(len(data.train), (batch_size,), generator=g).tolist()
            x, y = zip(*(data.train[i] for i in idx))
            F.cross_entropy(model(torch.stack(x)), torch.as_tensor(y)).backward()
    pruner.step()
    model.zero_grad(set_to_none=True)
    return model.eval()


RATIO_GRID = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # scanned before the bisection
QUICK_RATIO_GRID = (0.3, 0.6, 0.9)  # --quick: scan and bisection still both run, on fewer lowered nets


def search_ratio(prune_at, measure, budget_ms: float, steps: int, log,
                 grid=RATIO_GRID) -> tuple[float, torch.nn.Module, float]:
    """The smallest pruning ratio (the least pruning) whose pruned net's measured latency meets
    ``budget_ms``.

    Torch-Pruning's latency is not monotone in its ratio: with ``round_to``, a layer whose
    rounded share would be all its channels is skipped, so high ratios prune *less* (on
    fashion:mobilenet_w1 at round_to 32: ratio 0.5 measured 0.359 ms, 0.6 0.434 ms, 0.9 nothing
    pruned). So ``grid`` is scanned first; between the smallest grid ratio that meets the budget
    and the grid ratio below it latency falls with the ratio, and that interval is bisected
    ``steps`` times. If no grid ratio meets it, the fastest is kept (the table says so). The scan
    stops at the first grid ratio that meets the budget: the ratios above it would not change
    the interval, and each costs a lowering and a measurement."""
    tried = []
    for ratio in grid:
        model = prune_at(ratio)
        ms = measure(model)
        tried.append((ratio, ms, model))
        log(f"    ratio {ratio}: {ms:.3f} ms" + (" (meets the budget)" if ms <= budget_ms else ""))
        if ms <= budget_ms:
            break
    meeting = [t for t in tried if t[1] <= budget_ms]
    if not meeting:
        best_ratio, best_ms, best = min(tried, key=lambda t: t[1])
        log(f"    no ratio in {grid} meets the budget {budget_ms:.3f} ms: kept the fastest, {best_ratio} "
            f"({best_ms:.3f} ms)")
        return best_ratio, best, best_ms
    hi, best_ms, best = meeting[0]
    below = [t[0] for t in tried if t[0] < hi]
    lo, best_ratio = (below[-1] if below else 0.0), hi
    for _ in range(steps):
        mid = (lo + hi) / 2
        model = prune_at(mid)
        ms = measure(model)
        log(f"    ratio {mid:.4f}: {ms:.3f} ms")
        if ms <= budget_ms:
            hi, best, best_ms, best_ratio = mid, model, ms, mid
        else:
            lo = mid
    return best_ratio, best, best_ms


# ---- the run -----------------------------------------------------------------------------------
def add_arguments(parser) -> None:
    """The options peers.py and ablations.py share."""
    parser.add_argument("--profile", required=True)
    parser.add_argument("--specs", nargs="*", default=["fashion:mobilenet_w1", "fashion:resnet_w0.5"])
    parser.add_argument("--shares", type=float, nargs="*", default=[0.5, 0.3])
    parser.add_argument("--prune-steps", type=int, default=300,
                        help="training steps of ours while they prune (gates need about 300 to reach a budget)")
    parser.add_argument("--finetune-steps", type=int, default=400)
    parser.add_argument("--lrs", type=float, nargs="*", default=[1e-3, 3e-3],
                        help="the fine-tuning learning rates each contender's is chosen from (validation, seed 0)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--room", type=float, default=0.8,
                        help="the block: the profile's, halved until one block per group reaches this share of the "
                             "budget (where it only just reaches it, every method ends at that one plan)")
    parser.add_argument("--margin", type=float, default=0.02,
                        help="ours aim this share under the lowest measured latency of the contenders: timed in turns "
                             "with them, a plan at their measured latency ran 0.4%% slower (peers.py, 2026-12-06)")
    parser.add_argument("--pair-tries", type=int, default=5,
                        help="times --ours is pruned again, aimed by its latency ratio in turns with the fastest "
                             "contender of its latency group, until it is within twice --margin under it "
                             "(Place.level_with)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--bisect-steps", type=int, default=4)
    parser.add_argument("--processes", type=int, default=5,
                        help="fresh processes per latency measurement (its median, in turns with the reference)")
    parser.add_argument("--measured-rounds", type=int, default=6,
                        help="ours and uniform: plans measured at most until one meets its measured budget (0: the "
                             "plan the profile predicts within the budget, unmeasured until the table)")
    parser.add_argument("--workers", type=int, default=2, help="processes for the fine-tunings (1 thread each)")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads for pruning in this process (latencies are measured in fresh processes "
                             "of 1 thread, never while it trains)")
    parser.add_argument("--test-images", type=int, default=10000, help="the first N test images (all by default)")
    parser.add_argument("--val-images", type=int, default=5000, help="held-out images the learning rate is chosen on")
    parser.add_argument("--retries", type=int, default=2,
                        help="fine-tunings run again in fresh processes after their worker process died")
    parser.add_argument("--fresh", action="store_true",
                        help="start over even if an earlier run of this command stopped half-way (its pruned nets "
                             "and scores are kept until it completes, and it resumes from them by default)")
    parser.add_argument("--plots", help="also draw each place's table in this directory: top-1 against measured "
                        "latency per contender, with its spread over seeds and the budget (PNG)")
    parser.add_argument("--quick", action="store_true",
                        help="CI: one net, one budget, two seeds, 2+2 steps, 200 images (checks that it runs)")


def settle(args, quick_seeds: int = 2):
    """--quick's tiny settings (``quick_seeds`` seeds: two give a paired interval), and a
    refusal of nets without trained weights."""
    if args.quick:
        args.specs, args.shares, args.seeds = args.specs[:1], args.shares[:1], quick_seeds
        args.prune_steps = args.finetune_steps = 2
        # one measured round and one bisection step: each measurement lowers a net and starts
        # fresh processes; a second round's choice is tested in tests/test_prune.py
        args.bisect_steps, args.processes, args.workers, args.threads = 1, 1, 1, 1
        args.test_images = args.val_images = 200
        args.measured_rounds = min(args.measured_rounds, 1)
        args.pair_tries = 1  # the retries cost a pruning each (their aiming is tested apart: test_benchmarks)
        args.room = 1.0  # a smaller block's rows are measured on demand: minutes of lowering on the tiny net
    args.ratio_grid = QUICK_RATIO_GRID if args.quick else RATIO_GRID
    for spec in args.specs:
        if fashion.untrained(spec):
            raise SystemExit(f"{spec} has no trained weights: {fashion.untrained(spec)}")
    return args


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--methods", nargs="*", default=list(CONTENDERS), choices=CONTENDERS)
    parser.add_argument("--ours", default="fisher", choices=OURS,
                        help="the one method of ours the target is judged on (named before the run)")
    args = settle(parser.parse_args(argv))
    if args.ours not in args.methods:
        parser.error(f"--ours {args.ours} is not among --methods")
    started = time.perf_counter()
    here = this_machine(args.profile, args.processes, "peers", args.threads)
    contenders = [Contender(m, m) for m in args.methods]
    pruned, budgets = run(contenders, args.specs, args.shares, args, here, Measured(here), headline=args.ours)
    rows = table(pruned, budgets, contenders, args, headline=args.ours)
    if args.plots:
        plot(rows, args.plots, "peers")
    targets(rows, args.ours)
    forget()
    print(f"\nall done in {(time.perf_counter() - started) / 60:.1f} min")
    return rows


def run(contenders: list[Contender], specs, shares, args, here, measure, headline: str | None,
        name="peers") -> tuple[list, dict]:
    """Prune with every contender and measure every distinct architecture (this process, alone),
    then fine-tune each pruned net (--workers processes). ``headline``: the method of ours the
    target is judged on; given, ours are pruned to --margin under the lowest measured latency of
    the other contenders of their seed and the headline is timed in turns with each (None: ours
    pruned to the budget, nothing timed together: the ablations).
    Each place's pruned nets, and each score, are kept on disk as they come (resume.py): a run
    stopped by a fault resumes where it was."""
    started = time.perf_counter()
    state = RunState(name, args, tuple(contenders), tuple(specs), tuple(shares), headline)
    pruned: list[Pruned] = state.data.setdefault("pruned", [])
    budgets: dict[tuple, dict] = state.data.setdefault("budgets", {})
    plans: dict = state.data.setdefault("plans", {})  # seed-independent plans, once per place
    aims: dict = state.data.setdefault("aims", {})  # where a method's measured rounds met a budget (Place)
    for spec in specs:
        if all((spec, share) in budgets for share in shares):
            continue  # pruned and measured before a fault stopped an earlier run
        shape = default_input_shape(spec)
        data = load_data("fashion-mnist", shape)
        original = build(spec).eval()
        original_ms = measure(original, shape)
        macs, params = macs_params(original, shape)
        print(f"{spec}: measured {original_ms:.3f} ms, {macs / 1e6:.1f} M MACs, {params / 1e3:.0f} k parameters",
              flush=True)
        for share in shares:
            if (spec, share) in budgets:
                continue
            budget_ms = share * original_ms
            block = reachable_block(original, spec, shape, here.profile, f"{100 * share:g}%", here.runner,
                                    args.room)
            print(f"  budget {100 * share:g}%: {budget_ms:.3f} ms; block {block}" +
                  (f" (with the profile's {here.profile.meta.block}, one block per group does not reach "
                   f"{100 * args.room:g}% of the budget)" if block != here.profile.meta.block else ""), flush=True)
            place = Place(spec, share, shape, data, original, original_ms, block, here, measure, args, plans, aims)
            ours = [c for c in contenders if c.method in OURS]
            theirs = [c for c in contenders if c.method not in OURS]
            entries = []
            for seed in range(args.seeds):
                done = [place.prune(c, seed, budget_ms) for c in theirs]
                aim = min([budget_ms] + [(1 - args.margin) * p.measured_ms for p in done]) if headline \
                    else budget_ms
                mine = [net for c in ours for net in (place.level_with_each(c, seed, budget_ms, done)
                                                      if c.method == headline else [place.prune(c, seed, aim)])]
                entries += done + mine
            pruned.extend(entries)  # the place is kept whole or not at all (a fault midway prunes it again)
            budgets[(spec, share)] = {"budget_ms": budget_ms, "original_ms": original_ms, "block": block}
            state.save()
    print(f"pruned and measured in {time.perf_counter() - started:.0f} s; fine-tuning {len(pruned)} nets at "
          f"{len(args.lrs)} learning rate(s) for seed 0 in {args.workers} process(es)", flush=True)
    fine_tune_all(pruned, args, state)
    return pruned, budgets


@dataclass
class Place:
    """One net at one budget: what pruning a contender there needs."""
    spec: str
    share: float
    shape: tuple
    data: object
    original: torch.nn.Module
    original_ms: float
    block: int
    here: object
    measure: "Measured"
    args: object
    plans: dict
    aims: dict

    def prune(self, contender: Contender, seed: int, aim_ms: float) -> Pruned:
        """``contender``'s pruned net for ``seed`` at ``aim_ms`` (measured), measured."""
        began = time.perf_counter()
        torch.manual_seed(seed)
        entry = self._pruned(contender, seed, aim_ms, contender.block or self.block)
        entry.aim_ms, entry.measured_ms = aim_ms, self.measure(entry.model, self.shape)
        # Judged on the figure the table shows: an architecture keeps its first measurement
        # (Measured.remember), so a plan whose own round met the aim can share the architecture
        # of another contender's plan measured above it (test_peers_quick failed so, beside a
        # parallel suite: ours "reached" at a latency over the contenders').
        entry.reached = entry.reached and entry.measured_ms <= aim_ms * (1 + 1e-9)
        print(f"    {contender.label:26s} seed {seed}: {entry.note}, measured {entry.measured_ms:.3f} ms "
              f"for {aim_ms:.3f} ms ({time.perf_counter() - began:.0f} s)", flush=True)
        return entry

    def level_with_each(self, contender: Contender, seed: int, budget_ms: float, theirs: list[Pruned]
                        ) -> list[Pruned]:
        """The headline levelled with each latency group of ``theirs`` (latency_groups): one net
        per group, pruned at --margin under the group's fastest (at most the budget) and timed in
        turns with the group's contenders only; named by the group's fastest contender when there
        is more than one group."""
        groups = latency_groups(theirs, self.args.margin)
        nets = []
        for group in groups:
            aim = min(budget_ms, (1 - self.args.margin) * group[0].measured_ms)
            if len(groups) > 1:
                print(f"    {contender.label}, seed {seed}: levelled with "
                      f"{', '.join(p.method for p in group)} ({group[0].measured_ms:.3f} ms)", flush=True)
            net = self.level_with(contender, seed, aim, group)
            net.levelled = group[0].method if len(groups) > 1 else ""
            nets.append(net)
        return nets

    def level_with(self, contender: Contender, seed: int, aim_ms: float, theirs: list[Pruned]) -> Pruned:
        """The headline pruned at ``aim_ms`` and timed in turns with each contender; while it runs
        over the fastest of them (ratio > 1) or more than twice --margin under it, pruned again at
        an aim from the ratios so far (measured_rounds.aim_between: at 30% of resnet_w0.5
        the ratio went 0.744 -> 1.250 for aims 0.292 -> 0.385 ms, and scaling the last aim alone
        would step back past the middle), up to --pair-tries times. Kept: the slowest try
        at a ratio of at most 1 (else the last). Why: a latency measured alone (in turns with the
        profile's reference) and the same plans timed against each other disagreed by up to 26%: at
        30% of fashion:resnet_w0.5 fisher measured 0.207 ms alone against uniform's 0.248 (0.83),
        and 0.662 of it in turns (2026-12-06); aimed by the lone measurements, fisher ran at
        0.62-0.79 of the contenders' latency, pruned far deeper than equal latency asks."""
        kept, tried = None, []  # tried: (aim, ratio)
        for attempt in range(self.args.pair_tries):
            entry = self.prune(contender, seed, aim_ms)
            self.compare(entry, theirs)
            ratio = max(entry.against.values(), default=1.0)
            tried.append((aim_ms, ratio))
            if ratio <= 1 and (kept is None or ratio > max(kept.against.values(), default=1.0)):
                kept = entry
            if 1 - 2 * self.args.margin <= ratio <= 1:
                break
            aim_ms = aim_between(tried, 1 - self.args.margin, 1.0)
            if attempt + 1 < self.args.pair_tries:
                print(f"    {contender.label}, seed {seed}: {ratio:.3f} of the fastest contender in turns: "
                      f"pruned again at {aim_ms:.3f} ms", flush=True)
        return kept or entry

    def compare(self, ours: Pruned, theirs: list[Pruned]) -> None:
        """Ours' latency over each contender's, timed against each other: in each of --processes fresh
        processes ours is loaded once and each contender's program timed in turns with it. Why not the
        two latencies measured apart: one architecture measured 0.344 and 0.365 ms in two such
        measurements minutes apart (peers.py, 2026-12-06), more than the margin between a plan and its
        aim; in turns, the drift of the machine cancels out."""
        for other, ratio in zip(theirs, self.measure.ratios(ours.model, [o.model for o in theirs], self.shape)):
            ours.against[other.method] = ratio
            print(f"    {ours.method} / {other.method}, seed {ours.seed}, timed in turns: "
                  f"{ours.against[other.method]:.3f}", flush=True)

    def _pruned(self, contender: Contender, seed: int, aim_ms: float, block: int) -> Pruned:
        args, method, shape = self.args, contender.method, self.shape
        total = args.prune_steps + args.finetune_steps
        key = (self.spec, aim_ms, block, contender.label)
        if key in self.plans:  # a plan no seed changes (uniform's, Torch-Pruning's magnitude)
            first = self.plans[key]
            model = from_scratch(first.model) if method == "uniform" else copy.deepcopy(first.model)
            return Pruned(self.spec, self.share, contender.label, seed, model, total,
                          f"the plan of seed {first.seed} (its plan does not depend on the seed)", first.reached)
        if method in TORCH_PRUNING:
            ratio, model, ms = search_ratio(
                lambda r: tp_prune(self.original, method, r, block, shape, self.data, seed, args.batch_size),
                lambda m: self.measure(m, shape), aim_ms, args.bisect_steps,
                log=lambda line: print(line, flush=True), grid=args.ratio_grid)
            entry = Pruned(self.spec, self.share, contender.label, seed, model, total, f"ratio {ratio:.3f}",
                           reached=ms <= aim_ms)
            if method == "tp-magnitude":  # magnitude reads the trained weights only: the same plan every seed
                self.plans[key] = entry
            return entry
        return self._ours_or_uniform(contender, seed, aim_ms, block, total, key)

    def _ours_or_uniform(self, contender, seed, aim_ms, block, total, key) -> Pruned:
        """mp.prune with the aim as a measured budget and measured rounds: the plan is lowered and
        measured here, and chosen again (trained again when tighter than the plan trained towards)
        until it measures within it. Without measured rounds (ablations) the plan is chosen on the
        prediction alone, at the budget's share of the original's *predicted* latency: a measured
        ms compared with a prediction would mix two scales."""
        args, method = self.args, contender.method
        budget = aim_ms if args.measured_rounds else f"{100 * aim_ms / self.original_ms}%"
        start = self.original if method != "uniform" else from_scratch(self.original)
        # A later seed starts its rounds at the aim per ms where the last one met its budget (the
        # profile's prediction of a method's plans is often off the device by much the same factor).
        calibrated = self.aims.get((self.spec, block, contender.label)) if args.measured_rounds else None
        rounds = mp.MeasuredRounds(rounds=args.measured_rounds, processes=args.processes,
                                   first_aim=calibrated * aim_ms if calibrated else None,
                                   original_ms=self.original_ms) if args.measured_rounds else None
        result = mp.prune(start, torch.randn(self.shape), self.data, method=mp.Method(method, dict(contender.options)),
                          target=mp.Target(budget=budget, profile=self.here.profile, block=block,
                                           device=self.here.runner, measured=rounds),
                          training=mp.TrainConfig(steps=args.prune_steps, batch_size=args.batch_size, lr=1e-3,
                                                  seed=seed),
                          output=mp.Output(spec=self.spec, show=False))
        measured = result.report.get("measured", {})
        if calibration := aim_per_ms(measured):
            self.aims[(self.spec, block, contender.label)] = calibration
        rounds = measured.get("rounds", [])
        if rounds:  # measured as Measured measures (same processes, same reference): not again
            self.measure.remember(result.model, self.shape, measured["ms"])
        trained = result.report["method_info"].get("steps", args.prune_steps) if METHODS[method].trains else 0
        # Uniform trains from scratch: its architecture initialised at its own width (a slice of a
        # full-width initialisation would keep the full width's fan-in scale).
        model = from_scratch(result.model) if method == "uniform" else result.model
        entry = Pruned(self.spec, self.share, contender.label, seed, model, total - trained,
                       reached=measured.get("met", True),
                       note=f"predicted {result.report['predicted']['after']:.3f} ms" +
                       (f" ({len(rounds)} plan(s) measured: "
                        + ", ".join(f"{r['measured']:.3f}" for r in rounds) + " ms)" if rounds else ""))
        if method == "uniform":
            self.plans[key] = entry
        return entry


def latency_groups(theirs: list[Pruned], margin: float) -> list[list[Pruned]]:
    """The contenders of one seed grouped by measured latency, fastest first: each group's members
    within twice ``margin`` of its fastest, so one net of ours levelled with the fastest (within
    twice the margin under it) is at most four margins under any of them. Usually one group: the
    contenders of a place often end at one architecture (one measurement)."""
    groups: list[list[Pruned]] = []
    for p in sorted(theirs, key=lambda p: p.measured_ms):
        if groups and p.measured_ms <= groups[-1][0].measured_ms * (1 + 2 * margin):
            groups[-1].append(p)
        else:
            groups.append([p])
    return groups


class Measured:
    """The .pte latency of a net on this machine, each distinct architecture measured once."""

    def __init__(self, here) -> None:
        self.here, self.cache = here, {}

    def remember(self, model: torch.nn.Module, shape, ms: float) -> None:
        """A latency measured elsewhere the same way (mp.prune's measured rounds), unless this
        architecture was measured already: the first measurement stays, so every contender with
        it is compared at one figure. (It was overwritten: at 50% of fashion:resnet_w0.5 fisher's
        plan had Torch-Pruning's widths and measured 0.463 then 0.417 ms against its 0.493, and
        the later seeds' Torch-Pruning rows and aims took those, 2026-12-06.)"""
        self.cache.setdefault((tuple(shape), signature(model)), ms)

    def __call__(self, model: torch.nn.Module, shape) -> float:
        key = (tuple(shape), signature(model))
        if key not in self.cache:
            self.cache[key] = self.here.measure(model, shape)["ms"]
        return self.cache[key]

    def ratios(self, model: torch.nn.Module, others: list, shape) -> list[float]:
        """``model``'s latency over each of ``others``': the median over fresh processes of the
        programs timed in turns, ``model``'s loaded once per process (runner.ratios_in_turns;
        1.0 for the same architecture, untimed)."""
        here, inputs = self.here, (torch.randn(shape),)
        mine = signature(model)
        programs = {signature(o): timing_program(o.eval(), inputs, here.runtime) for o in others
                    if signature(o) != mine}  # one program per distinct architecture
        measured = dict(zip(programs, ratios_in_turns(
            here.runner, timing_program(model.eval(), inputs, here.runtime), list(programs.values()),
            here.profile.meta.threads, here.processes))) if programs else {}
        return [measured.get(signature(o), 1.0) for o in others]


# ---- fine-tuning -------------------------------------------------------------------------------
def fine_tune_all(pruned: list[Pruned], args, state: RunState | None = None) -> None:
    """Every pruned net fine-tuned (--workers processes), scores into ``.scores``, saved in
    ``state`` as each task ends (a net scored before a fault is not trained again). First seed 0
    of every contender at each of --lrs, then, with each contender's learning rate chosen on
    seed 0's held-out top-1, its other seeds."""
    def scored(key, score) -> None:
        i, lr = key
        pruned[i].scores[lr] = score
        p = pruned[i]
        print(f"  {p.spec} {100 * p.share:g}% {p.label:26s} seed {p.seed} lr {lr:g}: held-out top-1 "
              f"{100 * score['val']:.2f}%, test top-1 {100 * score['test']:.2f}%", flush=True)
        if state:
            state.save()

    def tasks(wanted) -> dict:
        return {(i, lr): (p.spec, pickle.dumps(p.model), p.steps, lr, p.seed, args)
                for i, p in enumerate(pruned) for lr in wanted(p) if lr not in p.scores}

    # Fresh (spawned) processes: no thread pool inherited from this one. A worker that dies of a
    # native fault breaks the pool: its tasks run again in a fresh one (resume.RetryingPool).
    # Each task gets its net as bytes (a copy of its own: a pool passes tensors in shared memory,
    # so a worker training in place would train this process's net). One pool for both stages.
    spawn = multiprocessing.get_context("spawn")
    with RetryingPool(args.workers, args.retries, mp_context=spawn, initializer=_worker_init,
                      initargs=(args,)) as pool:
        pool.run(tasks(lambda p: args.lrs if p.seed == 0 else ()), fine_tune, scored)
        choose_lrs(pruned, args.lrs)
        pool.run(tasks(lambda p: (p.lr,)), fine_tune, scored)


def choose_lrs(pruned: list[Pruned], lrs) -> None:
    """Each net's learning rate: the best held-out top-1 of seed 0's net of its row (contender,
    net, budget; the headline per latency group), ties to the smaller rate. A headline net
    levelled with a group seed 0 did not have takes seed 0's choice for the same method."""
    chosen = {}  # (spec, share, method) -> {levelled: learning rate}
    for p in pruned:
        if p.seed == 0:
            chosen.setdefault((p.spec, p.share, p.method), {})[p.levelled] = max(
                lrs, key=lambda lr: (p.scores[lr]["val"], -lr))
    for p in pruned:
        of_method = chosen[(p.spec, p.share, p.method)]
        p.lr = of_method.get(p.levelled, next(iter(of_method.values())))


_DATA: dict = {}  # per worker: spec -> data splits


def _worker_init(args) -> None:
    """One thread; each net's data loaded before any task arrives (building a ``file.py:factory``
    net also loads the module its pruned copies are unpickled from). A native fault prints the
    Python stack it happened in (faulthandler), for the log."""
    faulthandler.enable()
    torch.set_num_threads(1)
    for spec in args.specs:
        _DATA[spec] = load_data("fashion-mnist", default_input_shape(spec))
        build(spec)


def fine_tune(spec, net: bytes, steps, lr, seed, args) -> dict:
    """One pruned net (as bytes) trained for ``steps`` steps at ``lr``, cosine-decayed, its
    BatchNorm statistics re-estimated; its held-out and test top-1. The training loop itself,
    not mobileprune.finetune: that one decays its rate per epoch and stops early on the held-out
    split, while every contender here gets one fixed schedule, and the held-out split chooses
    only the learning rate."""
    data, model = _DATA[spec], pickle.loads(net)
    if steps > 0:
        config = TrainConfig(steps=steps, batch_size=args.batch_size, lr=lr, seed=seed, schedule="cosine")
        train(model, data.train, F.cross_entropy, config, show=False)
    reestimate_batchnorm(model, data.train, BN_BATCHES, args.batch_size, seed)
    return {"val": top1(model, data.val, args.val_images), "test": top1(model, data.test, args.test_images)}


# ---- the tables --------------------------------------------------------------------------------
def table(pruned: list[Pruned], budgets: dict, contenders: list[Contender], args, headline: str | None = None
          ) -> list[dict]:
    """One table per place: each contender's measured latency, MACs, parameters, chosen
    learning rate and test top-1 over seeds; with ``headline``, the paired difference of that
    contender minus each other one, seed by seed, and whether every pair is at equal latency."""
    rows = []
    for (spec, share), b in budgets.items():
        shape = default_input_shape(spec)
        aim = "" if args.measured_rounds else f" (plans chosen at {100 * share:g}% of its predicted latency)"
        print(f"\n{spec} at {100 * share:g}% of its measured latency{aim}: budget {b['budget_ms']:.3f} ms of "
              f"{b['original_ms']:.3f} ms, block {b['block']}; {args.seeds} seed(s), {args.prune_steps}+"
              f"{args.finetune_steps} training steps of batch {args.batch_size} for every contender"
              + (f"; ours = {headline}" if headline else ""))
        print(f"{'method':26s} {'measured ms':>11s} {'of budget':>9s} {'M MACs':>7s} {'k params':>8s} {'lr':>7s} "
              f"{'top-1 %':>15s}" + (f"  {headline} minus it (95% interval), at equal latency" if headline else ""))
        place = [p for p in pruned if (p.spec, p.share) == (spec, share)]
        ours = [p for p in place if p.method == headline]
        here: dict[str, list[Pruned]] = {}  # row label -> its entries, by seed (the headline: a row per group)
        for c in contenders:
            for p in sorted((p for p in place if p.method == c.label), key=lambda p: (p.levelled, p.seed)):
                here.setdefault(p.label, []).append(p)
        for label, entries in here.items():
            ms = statistics.mean(p.measured_ms for p in entries)
            counts = [macs_params(p.model, shape) for p in entries]
            macs, params = (statistics.mean(c[i] for c in counts) for i in (0, 1))
            scores = [p.top1 for p in entries]
            mean, sd = statistics.mean(scores), statistics.stdev(scores) if len(scores) > 1 else 0.0
            row = {"spec": spec, "share": share, "method": label, "measured_ms": ms, "budget_ms": b["budget_ms"],
                   "macs": macs, "params": params, "lr": entries[0].lr, "top1_mean": mean, "top1_sd": sd,
                   "seeds": len(scores), "reached": all(p.reached for p in entries), "top1": scores,
                   "measured": [p.measured_ms for p in entries]}
            line = (f"{label:26s} {ms:11.3f} {100 * ms / b['budget_ms']:8.1f}% {macs / 1e6:7.2f} {params / 1e3:8.1f} "
                    f"{entries[0].lr:7.0e} {100 * mean:8.2f} +- {100 * sd:4.2f}")
            if ours and entries[0].method != headline:
                row["paired"] = paired(headline_for(ours, label), entries)
                line += "  " + describe_pair(row["paired"])
            if not row["reached"]:
                line += "  (cannot reach its budget)"
            rows.append(row)
            print(line, flush=True)
    return rows


def plot(rows: list[dict], out_dir, name: str) -> list[Path]:
    """Each place's table as a figure, ``out_dir/NAME-SPEC-SHARE.png``: every contender's mean
    top-1 against its mean measured latency, bars spanning its seeds (latency: lowest to
    highest; top-1: one standard deviation), and the budget as a line."""
    from mobileprune.report.plots import accuracy_vs_latency

    out_dir, written = Path(out_dir), []
    out_dir.mkdir(parents=True, exist_ok=True)
    for (spec, share) in dict.fromkeys((r["spec"], r["share"]) for r in rows):
        here = [r for r in rows if (r["spec"], r["share"]) == (spec, share)]
        points = [{"name": r["method"], "ms": r["measured_ms"], "top1": 100 * r["top1_mean"],
                   "ms_err": [[r["measured_ms"] - min(r["measured"])], [max(r["measured"]) - r["measured_ms"]]],
                   "top1_err": 100 * r["top1_sd"]} for r in here]
        path = out_dir / f"{name}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', spec.split('/')[-1])}-{100 * share:g}.png"
        path.write_bytes(accuracy_vs_latency(points, [here[0]["budget_ms"]],
                                             f"{spec} at {100 * share:g}% of its measured latency"))
        written.append(path)
        print(f"plot: {path}")
    return written


def headline_for(ours: list[Pruned], method: str) -> list[Pruned]:
    """The headline's net of each seed that ``method``'s is compared with: the one levelled with
    its latency group (timed in turns with it); for a method it was not timed with (ours' other
    methods, pruned to the lowest latency of the contenders), the one at the lowest aim."""
    by_seed: dict[int, Pruned] = {}
    for p in sorted(ours, key=lambda p: -(p.aim_ms or 0.0)):  # the lowest aim last: it stays
        by_seed[p.seed] = p
    for p in ours:
        if method in p.against:
            by_seed[p.seed] = p
    return [by_seed[seed] for seed in sorted(by_seed)]


def paired(ours: list[Pruned], theirs: list[Pruned]) -> dict:
    """Ours minus theirs, seed by seed: mean, 95% t interval, and whether ours ran at or under
    theirs in every seed (the comparison at equal latency)."""
    from scipy import stats

    pairs = [(a, b) for a in ours for b in theirs if a.seed == b.seed]
    diffs = [a.top1 - b.top1 for a, b in pairs]
    mean = statistics.mean(diffs)
    half = (stats.t.ppf(0.975, len(diffs) - 1) * statistics.stdev(diffs) / len(diffs) ** 0.5
            if len(diffs) > 1 else float("nan"))
    # at equal latency: ours timed in turns with theirs at or under it (Place.compare); None for
    # pairs not timed together (two of ours, the ablations): latencies measured apart differ by
    # more than the margin between them (Place.compare), so they say nothing either way
    ratios = [a.against.get(b.method) for a, b in pairs]
    equal = None if None in ratios else all(r <= 1 + 1e-9 for r in ratios)
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": len(diffs), "diffs": diffs,
            "equal_latency": equal, "ratios": ratios}


def describe_pair(pair: dict) -> str:
    equal = pair["equal_latency"]
    return (f"{100 * pair['mean']:+6.2f} [{100 * pair['low']:+.2f}, {100 * pair['high']:+.2f}] over "
            f"{pair['n']} seed(s), " + ("not timed together" if equal is None else
                                        ("yes" if equal else "NO: ours ran slower in a seed")
                                        + f" (latency ratio in turns {', '.join(f'{r:.3f}' for r in pair['ratios'])})"))


def targets(rows: list[dict], ours: str) -> list[dict]:
    """The issue's target per place: ``ours`` minus the better (by mean top-1) of Torch-Pruning's
    two by at least TARGETS["tp"], and minus uniform by TARGETS["uniform"] (mean paired
    difference), every pair at equal measured latency. Printed met or not; returned."""
    verdicts = []
    for spec, share in dict.fromkeys((r["spec"], r["share"]) for r in rows):
        here = [r for r in rows if (r["spec"], r["share"]) == (spec, share)]
        print(f"\ntarget, {spec} at {100 * share:g}% ({ours}):")
        for against, methods in (("tp", TORCH_PRUNING), ("uniform", ("uniform",))):
            theirs = [r for r in here if r["method"] in methods and "paired" in r]
            if not theirs:
                continue
            best = max(theirs, key=lambda r: r["top1_mean"])
            pair = best["paired"]
            met = pair["equal_latency"] is True and pair["mean"] >= TARGETS[against]
            verdicts.append({"spec": spec, "share": share, "against": best["method"], "gain": pair["mean"],
                             "low": pair["low"], "high": pair["high"], "equal_latency": pair["equal_latency"],
                             "met": met})
            print(f"  vs {best['method']}: {describe_pair(pair)} (target {100 * TARGETS[against]:+g}): "
                  f"{'met' if met else 'NOT met'}")
    return verdicts


if __name__ == "__main__":
    main()
