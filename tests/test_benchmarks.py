"""The benchmarks' quick modes: the scripts run end to end on a small model and a real profile."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import TINY

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))


@pytest.mark.long
def test_budget_hit_quick(tiny_profile, capsys):
    import budget_hit

    rows = budget_hit.main(["--profile", str(tiny_profile.path), "--models", TINY, "--share", "0.85", "--quick"])
    assert [r["method"] for r in rows] == ["gates", "fisher", "l1", "uniform"]
    for r in rows:
        assert r["predicted"] <= r["budget"] < r["original"] and r["measured"] > 0
    out = capsys.readouterr().out
    assert "gated training step / plain training step" in out and "latency cost forward+backward" in out


@pytest.mark.long
def test_fashion_prune_quick(tiny_profile, capsys):
    import fashion_prune

    rows = fashion_prune.main(["--profile", str(tiny_profile.path), "--spec", TINY, "--share", "0.85", "--quick"])
    assert [r["method"] for r in rows] == ["gates", "fisher", "l1", "uniform"]
    for r in rows:
        assert r["predicted"] <= r["budget"] and 0 <= r["top1_mean"] <= 1 and r["measured"] > 0
    assert "fixed per-op cost" in capsys.readouterr().out


def test_latency_vs_flops_quick(tiny_profile, capsys):
    import latency_vs_flops

    rows = latency_vs_flops.main(["--profile", str(tiny_profile.path), "--models", TINY, "--share", "0.8", "--quick"])
    (row,) = rows
    for side in ("latency", "flops"):
        assert row[side]["kfpp"] <= row[side]["budget_kfpp"] and row[side]["measured"] > 0
    assert "latency normalisation is" in capsys.readouterr().out


def test_adb_push_quick(capsys):
    import adb_push

    result = adb_push.main(["--quick"])
    assert result["ours"] > 0 and result["stock"] > 0 and result["ratio"] > 0
    assert "stock / ours" in capsys.readouterr().out


def test_hierarchical_kd_quick(tiny_profile, capsys):
    import hierarchical_kd

    results = hierarchical_kd.main(["--profile", str(tiny_profile.path), "--spec", TINY, "--larger", TINY,
                                    "--shares", "0.85", "--quick"])
    (row,) = results.values()
    assert set(row) == {"pruned", *hierarchical_kd.SIDES} and all(0 <= mean <= 1 for mean, _ in row.values())
    assert "original -> larger" in capsys.readouterr().out


@pytest.mark.long
def test_peers_quick(tiny_profile, tmp_path, capsys):
    """Every contender (ours three, Torch-Pruning's two, uniform) over two seeds: gates and l1
    pruned to the lowest measured latency of the others in each seed, fisher levelled with each
    latency group of them, the learning rate chosen on seed 0's held-out top-1, the paired
    differences and the target."""
    import peers

    # A private copy: rows measured on demand are appended to it, not to the module's copy.
    from mobileprune.devices.latency_table import DeviceProfile

    DeviceProfile(tiny_profile.meta, tiny_profile.table.copy()).save(tmp_path / "tiny.csv")
    rows = peers.main(["--profile", str(tmp_path / "tiny.csv"), "--specs", TINY, "--shares", "0.85", "--quick",
                       "--plots", str(tmp_path / "plots")])
    out = capsys.readouterr().out
    assert_png(tmp_path / "plots" / "peers-tiny.py_make-85.png")
    # fisher (--ours' default): a row per latency group of the contenders, usually one ("fisher";
    # contenders measured more than 4% apart make two: "fisher @uniform", "fisher @tp-magnitude")
    methods = [r["method"].split(" @")[0] for r in rows]
    assert list(dict.fromkeys(methods)) == list(peers.CONTENDERS)
    assert all(methods.count(m) == 1 for m in peers.CONTENDERS if m != "fisher")
    ours_rows = [r for r in rows if r["method"].startswith("fisher")]
    assert sum(r["seeds"] for r in ours_rows) >= 2
    by = {r["method"]: r for r in rows}
    for r in rows:
        assert 0 <= r["top1_mean"] <= 1 and r["measured_ms"] > 0 and r["macs"] > 0 and r["params"] > 0
        assert (r["seeds"] == 2 or r in ours_rows) and r["lr"] in (1e-3, 3e-3)
        # Torch-Pruning bisected on the measured latency; ours and uniform chosen again on it
        # (measured rounds); or the table says it could not reach its budget. (Torch-Pruning
        # keeps the tiny net's 16-channel layers whole at round_to 8, even at ratio 0.9.)
        assert all(ms <= r["budget_ms"] * (1 + 1e-9) for ms in r["measured"]) or not r["reached"]
    assert all("(cannot reach its budget)" in out for r in rows if not r["reached"])
    theirs = [m for m in peers.CONTENDERS if m not in peers.OURS]
    for method in ("gates", "l1"):  # equal latency by construction, seed by seed
        for seed in range(2):
            aim = min([by[method]["budget_ms"]] + [by[m]["measured"][seed] for m in theirs])
            assert by[method]["measured"][seed] <= aim * (1 + 1e-9) or not by[method]["reached"]
    for r in rows:
        if r not in ours_rows:  # fisher's paired difference from each of the others, seed by seed
            pair = r["paired"]
            assert pair["n"] == 2 and pair["low"] <= pair["mean"] <= pair["high"]
            assert pair["mean"] == pytest.approx(sum(pair["diffs"]) / 2)
            if len(ours_rows) == 1:  # one group in every seed: fisher's one row minus this one
                assert pair["mean"] == pytest.approx(by["fisher"]["top1_mean"] - r["top1_mean"])
    assert "plan(s) measured" in out and "ratio " in out and "held-out top-1" in out
    # fisher (--ours' default) timed in turns with each contender of its seed, once: --quick
    # tries once (Place.level_with's retries are tested on their own below)
    assert out.count("timed in turns: ") == 2 * len(theirs)
    # The target against the better of Torch-Pruning's two and against uniform, met or not.
    assert out.count("\ntarget, ") == 1
    assert len([line for line in out.splitlines() if "(target +" in line]) == 2


def assert_png(path) -> None:
    """A figure a benchmark drew: a PNG that decodes to a picture of a readable size."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG" and image.width >= 400 and image.height >= 250


@pytest.mark.long
def test_ablations_quick(tiny_profile, tmp_path, capsys):
    """Each variant pruned at the profile's prediction, measured once, fine-tuned as peers.py
    does, with its paired difference from the method as we run it."""
    import ablations

    from mobileprune.devices.latency_table import DeviceProfile

    DeviceProfile(tiny_profile.meta, tiny_profile.table.copy()).save(tmp_path / "tiny.csv")
    rows = ablations.main(["--profile", str(tmp_path / "tiny.csv"), "--specs", TINY, "--shares", "0.85", "--quick"])
    assert [r["method"] for r in rows] == [c.label for c in ablations.QUICK]
    for r in rows:
        assert 0 <= r["top1_mean"] <= 1 and r["measured_ms"] > 0 and r["seeds"] == 1
        assert ("paired" in r) == (r["method"] not in ("fisher", "gates"))
    out = capsys.readouterr().out
    assert "plans chosen on the profile's prediction, measured once" in out
    assert "of its measured latency (plans chosen at 85% of its predicted latency)" in out


def test_an_ablation_part_keeps_its_reference_row_and_refuses_unknown_variants():
    """--variants splits a family's ablations into parts that each fit a session; every part
    keeps the reference row its variants are paired with, and a misspelt label is an error,
    not a silently empty table."""
    import ablations

    part = ablations.chosen(["fisher"], ["fisher, no floor", "fisher, block 1"])
    assert [c.label for c in part] == ["fisher", "fisher, no floor", "fisher, block 1"]
    assert [c.label for c in ablations.chosen(["fisher"], ["fisher, block 1"], quick=True)] == ["fisher"]
    assert len(ablations.chosen(["fisher", "gates"])) == len(ablations.ABLATIONS)
    with pytest.raises(SystemExit, match="unknown variants"):
        ablations.chosen(["fisher"], ["fisher, no flor"])
    assert ablations.plot_name(["fisher"], ["fisher, no floor", "fisher, block 1"]) == "ablations-fisher-no-floor-block-1"
    assert ablations.plot_name(["fisher", "gates"]) == "ablations-fisher-gates"


def test_each_architecture_is_measured_once_per_run_at_each_input_shape(tiny_profile, monkeypatch):
    """ThisMachine.measure (every benchmark's measurement): two nets of one architecture with
    other weights are one measurement, so methods that end at the same widths are compared at
    one figure; another width or another input shape is measured. (The measurement itself is
    counted here, not run: what is measured is tested in tests/test_devices.py.)"""
    from torch import nn

    import measured

    calls = []
    monkeypatch.setattr(measured, "measure_model", lambda model, inputs, *a, **k: calls.append(
        tuple(inputs[0].shape)) or {"ms": float(len(calls))})
    here = measured.ThisMachine(tiny_profile, processes=1)
    net = lambda width: nn.Sequential(nn.Conv2d(3, width, 3), nn.ReLU())  # noqa: E731
    first = here.measure(net(8), (1, 3, 16, 16))
    assert here.measure(net(8), (1, 3, 16, 16)) == first and len(calls) == 1  # other weights: the same figure
    here.measure(net(4), (1, 3, 16, 16))
    here.measure(net(8), (1, 3, 8, 8))
    assert calls == [(1, 3, 16, 16), (1, 3, 16, 16), (1, 3, 8, 8)]


def test_torch_pruning_ratio_search_survives_ratios_that_prune_less():
    """Torch-Pruning skips a layer whose rounded share would be all its channels, so its latency
    is not monotone in the ratio (fashion:mobilenet_w1 at round_to 32: 0.5 -> 0.359 ms, 0.6 ->
    0.434 ms, 0.9 prunes nothing): the search must find the least pruning that meets the budget
    below such a bump, and say when no ratio does."""
    import peers

    def latency(ratio):  # falls with the ratio up to 0.55, then rises again: layers skipped
        return 1.0 - ratio if ratio <= 0.55 else 0.45 + 2 * (ratio - 0.55)

    measured = []
    ratio, model, ms = peers.search_ratio(lambda r: r, lambda r: measured.append(r) or latency(r), 0.5, steps=8,
                                          log=lambda line: None)
    assert ms <= 0.5 and model == ratio and 0.5 <= ratio < 0.501  # bisected between 0.4 and 0.5
    # The scan stopped at the first grid ratio that met the budget (each costs a measurement).
    assert measured[:4] == [0.2, 0.3, 0.4, 0.5] and len(measured) == 4 + 8
    ratio, _, ms = peers.search_ratio(lambda r: r, latency, 0.4, steps=8, log=lambda line: None)
    assert ms == min(latency(r) for r in peers.RATIO_GRID) and ratio == 0.5  # out of reach: the fastest kept


def test_each_fine_tuning_trains_its_own_copy_of_the_pruned_net():
    """peers.py fine-tunes seed 0 of every pruned net at each learning rate in worker processes.
    A pool hands tensors over in shared memory: each task must train a copy of its own (once one
    task trained the very weights another then started from), and leave the pruned net here as
    it was. So a net's score from the pool is the one a fine-tuning alone gives; the learning
    rate kept is the one of the best held-out top-1, and the other seeds train at it alone."""
    import copy
    import pickle

    import peers
    import torch

    from mobileprune.spec import build

    args = peers.settle(_peers_args("--quick"))  # one worker: the tasks run one after the other
    torch.manual_seed(0)
    net = build(TINY).eval()
    weights = copy.deepcopy(net.state_dict())
    pruned = [peers.Pruned(TINY, 0.5, "uniform", seed, net if seed == 0 else copy.deepcopy(net), steps=3)
              for seed in (0, 1)]
    peers.fine_tune_all(pruned, args)
    assert all(torch.equal(weights[k], v) for k, v in net.state_dict().items())
    peers._worker_init(args)
    for lr in args.lrs:
        assert pruned[0].scores[lr] == peers.fine_tune(TINY, pickle.dumps(net), 3, lr, 0, args)
    assert pruned[0].lr == max(args.lrs, key=lambda lr: (pruned[0].scores[lr]["val"], -lr)) == pruned[1].lr
    assert set(pruned[1].scores) == {pruned[1].lr} and pruned[1].top1 == pruned[1].scores[pruned[1].lr]["test"]


def _peers_args(*extra):
    import argparse

    import peers

    parser = argparse.ArgumentParser()
    peers.add_arguments(parser)
    return parser.parse_args(["--profile", "unused.csv", "--specs", TINY, *extra])


@pytest.mark.long
def test_plan_shapes_quick(tiny_profile, capsys):
    """A variant of each kind, and Torch-Pruning, pruned, trained and measured."""
    import plan_shapes

    rows = plan_shapes.main(["--profile", str(tiny_profile.path), "--spec", TINY, "--share", "0.85", "--quick"])
    assert [r["variant"] for r in rows] == [*plan_shapes.QUICK, plan_shapes.TP]
    for r in rows:
        assert 0 <= r["top1_mean"] <= 1 and r["measured_ms"] > 0 and r["macs"] > 0 and r["widths"]
    assert "seed 0's conv widths" in capsys.readouterr().out


def _abort_once(marker: str | None, value: int) -> int:
    """A task whose first run kills its worker process as a native fault does (SIGABRT); every
    run when ``marker`` is None."""
    import os

    if marker is None or not os.path.exists(marker):
        if marker:
            open(marker, "w").close()
        os.abort()
    return 2 * value


def _worker_pid(_: int) -> int:
    import os

    return os.getpid()


_RESUME_IN_A_FRESH_PROCESS = """
import argparse, sys
sys.path.insert(0, {bench!r})
import resume
from mobileprune.spec import build
state = resume.RunState("fresh", argparse.Namespace(quick=True), ({spec!r},))
if {save}:
    state.data["net"] = build({spec!r})
    state.save()
else:
    print(type(state.data["net"]).__name__)
"""


def test_a_state_holding_a_model_of_a_file_resumes_in_a_fresh_process(tmp_path):
    """A run stopped by a fault resumes in a new process: its saved nets of a model file
    (path/to/file.py:factory) unpickle there, though no other code has imported that file yet."""
    import os
    import subprocess

    src = tmp_path / "net.py"
    src.write_text("import torch.nn as nn\nclass Net(nn.Sequential):\n    def __init__(self):\n"
                   "        super().__init__(nn.Conv2d(3, 4, 3))\ndef make():\n    return Net()\n")
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    bench = str(Path(__file__).parent.parent / "benchmarks")
    for save in (True, False):
        code = _RESUME_IN_A_FRESH_PROCESS.format(bench=bench, spec=f"{src}:make", save=save)
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "Net"


def test_fine_tunings_whose_worker_died_run_again_in_fresh_processes(tmp_path, capsys):
    """On 2026-12-05 a fine-tuning worker of peers.py died of "double free or corruption" 45
    minutes into a run, and the broken pool took the run with it. Tasks pending when a worker
    dies run again in a fresh pool; results already in are kept; a task that keeps killing its
    worker ends the run with its name, after the retries."""
    import multiprocessing

    import pytest
    import resume

    spawn = multiprocessing.get_context("spawn")
    got = {}
    tasks = {i: (str(tmp_path / f"marker{i}"), i) for i in range(3)}  # each kills its worker once
    resume.run_retrying(tasks, _abort_once, got.__setitem__, workers=1, retries=3, mp_context=spawn)
    assert got == {0: 0, 1: 2, 2: 4}
    assert capsys.readouterr().out.count("a worker process died") == 3
    with pytest.raises(SystemExit, match=r"died 2 times; tasks not done: \['a', 'b'\]"):  # b waits behind a
        resume.run_retrying({"a": (None, 5), "b": (str(tmp_path / "marker0"), 1)},
                            _abort_once, got.__setitem__, workers=1, retries=1, mp_context=spawn)


def test_a_retrying_pool_keeps_its_workers_across_stages_and_replaces_a_broken_one(tmp_path):
    """peers.py fine-tunes in two stages (every learning rate on seed 0, then the chosen one on
    the others) in one pool: its workers start once. A stage whose worker died runs its pending
    tasks in a fresh pool, and the next stage goes on in that one."""
    import multiprocessing

    import resume

    got = {}
    with resume.RetryingPool(1, 1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.run({0: (0,)}, _worker_pid, got.__setitem__)
        pool.run({1: (1,)}, _worker_pid, got.__setitem__)
        assert got[0] == got[1]  # the same worker process
        pool.run({2: (str(tmp_path / "marker"), 1)}, _abort_once, got.__setitem__)
        assert got[2] == 2
        pool.run({3: (3,)}, _worker_pid, got.__setitem__)
        assert got[3] != got[0]  # the broken pool's worker is gone


def test_paired_differences_are_seed_by_seed_with_a_t_interval_and_say_when_ours_was_slower():
    """The target is judged on ours minus a contender in the same seed (the same data order and
    the same starting weights), with a 95% t interval over seeds; a pair where ours measured
    slower than the contender is not at equal latency, and then no verdict can be 'met'."""
    import peers

    def entry(method, seed, top1, ms):
        p = peers.Pruned(TINY, 0.5, method, seed, None, steps=0, measured_ms=ms, scores={1e-3: {"test": top1}})
        p.lr = 1e-3
        return p

    ours = [entry("fisher", s, t, 1.0) for s, t in enumerate((0.83, 0.85, 0.87))]
    theirs = [entry("tp-magnitude", s, t, 1.0) for s, t in ((2, 0.84), (0, 0.82), (1, 0.83))]  # in any order
    pair = peers.paired(ours, theirs)
    assert pair["diffs"] == pytest.approx([0.01, 0.02, 0.03]) and pair["mean"] == pytest.approx(0.02)
    assert pair["high"] - pair["mean"] == pytest.approx(4.302653 * 0.01 / 3 ** 0.5, rel=1e-5)
    assert pair["equal_latency"] is None  # not timed together: latencies measured apart say nothing
    for p, ratio in zip(ours, (0.99, 1.0, 0.97)):  # timed in turns (Place.compare)
        p.against["tp-magnitude"] = ratio
    assert peers.paired(ours, theirs)["equal_latency"] is True
    ours[1].against["tp-magnitude"] = 1.004
    slower = peers.paired(ours, theirs)
    assert not slower["equal_latency"]
    rows = [{"spec": TINY, "share": 0.5, "method": "tp-magnitude", "top1_mean": 0.83, "paired": slower}]
    (verdict,) = peers.targets(rows, "fisher")
    assert not verdict["met"] and verdict["gain"] == pytest.approx(0.02)


def test_ours_is_pruned_again_until_level_with_the_fastest_contender_in_turns(capsys):
    """Place.level_with: ours is pruned at an aim, timed in turns with each contender, and pruned
    again while it runs over the fastest or more than twice the margin under it: at the aim scaled
    by its ratio, or, once tries lie on both sides, between them; the slowest try at a ratio of at
    most 1 is kept."""
    import argparse

    import peers

    def place(ratios):
        tried = []
        stand_in = argparse.Namespace(args=argparse.Namespace(pair_tries=3, margin=0.02))

        def prune(contender, seed, aim_ms):
            tried.append(aim_ms)
            return peers.Pruned(TINY, 0.3, contender.label, seed, None, steps=0, aim_ms=aim_ms)

        def compare(entry, theirs):  # the fastest contender decides: the other runs slower
            ratio = ratios[len(tried) - 1]
            entry.against = {"tp-taylor": ratio, "uniform": ratio - 0.05}

        stand_in.prune, stand_in.compare = prune, compare
        return stand_in, tried

    fisher = peers.Contender("fisher", "fisher")
    stand_in, tried = place([0.62, 0.97])  # far under, then within the window: done
    kept = peers.Place.level_with(stand_in, fisher, 0, 0.243, [])
    assert tried == pytest.approx([0.243, 0.243 * 0.98 / 0.62]) and kept.aim_ms == tried[1]
    stand_in, tried = place([0.80, 1.04, 0.93])  # over the fastest once: the slowest try under it is kept
    kept = peers.Place.level_with(stand_in, fisher, 0, 0.3, [])
    assert len(tried) == 3 and kept.aim_ms == tried[2]
    assert tried[1] == pytest.approx(0.3 * 0.98 / 0.80)  # no bracket yet: scaled by the ratio
    assert tried[2] == pytest.approx(tried[0] + (0.98 - 0.80) / (1.04 - 0.80) * (tried[1] - tried[0]))  # between
    stand_in, tried = place([1.10, 1.05, 1.02])  # never under: the last, which the table marks unequal
    assert peers.Place.level_with(stand_in, fisher, 0, 0.3, []).aim_ms == tried[2]


def test_ours_meets_each_latency_group_of_the_contenders_at_its_own_latency(capsys):
    """Where the contenders of a seed end at different latencies (uniform 4% under Torch-Pruning
    at 30% of resnet_w0.5, 2026-12-07), the headline is levelled with each group apart, so each
    contender is compared with a net of ours at its own latency, not at the lowest of all; a
    method of ours not timed with them is compared with the net at the lowest aim."""
    import argparse

    import peers

    def entry(method, ms, seed=0, aim=None):
        return peers.Pruned(TINY, 0.3, method, seed, None, steps=0, measured_ms=ms, aim_ms=aim)

    theirs = [entry("tp-magnitude", 1.468), entry("tp-taylor", 1.468), entry("uniform", 1.407)]
    groups = peers.latency_groups(theirs, margin=0.02)
    assert [[p.method for p in g] for g in groups] == [["uniform"], ["tp-magnitude", "tp-taylor"]]
    assert len(peers.latency_groups(theirs, margin=0.025)) == 1  # 1.468 is within 5% of 1.407
    assert len(peers.latency_groups([entry("a", 1.0), entry("b", 1.039), entry("c", 1.041)], 0.02)) == 2

    timed = []
    stand_in = argparse.Namespace(args=argparse.Namespace(pair_tries=3, margin=0.02))
    stand_in.prune = lambda contender, seed, aim_ms: peers.Pruned(TINY, 0.3, contender.label, seed, None, steps=0,
                                                                  aim_ms=aim_ms)

    def compare(net, group):  # within the window at once
        timed.append([p.method for p in group])
        net.against = {p.method: 0.99 for p in group}

    stand_in.compare = compare
    stand_in.level_with = lambda *a: peers.Place.level_with(stand_in, *a)
    nets = peers.Place.level_with_each(stand_in, peers.Contender("fisher", "fisher"), 0, 1.526, theirs)
    assert timed == [["uniform"], ["tp-magnitude", "tp-taylor"]]
    assert [n.aim_ms for n in nets] == pytest.approx([0.98 * 1.407, 0.98 * 1.468])
    assert [n.label for n in nets] == ["fisher @uniform", "fisher @tp-magnitude"]
    assert "levelled with tp-magnitude, tp-taylor (1.468 ms)" in capsys.readouterr().out
    for method, aim in (("tp-taylor", 1.468), ("uniform", 1.407), ("gates", 1.407)):
        (net,) = peers.headline_for(nets, method)
        assert net.aim_ms == pytest.approx(0.98 * aim)
    # the table: a row of ours per group, each contender paired with the net levelled with it
    from mobileprune.spec import build

    model = build(TINY)
    pruned = []
    for seed in (0, 1):
        for method, levelled, ms, top1, against in (("tp-magnitude", "", 1.468, 0.88, ()),
                                                    ("uniform", "", 1.407, 0.85, ()),
                                                    ("fisher", "uniform", 1.38, 0.86, ("uniform",)),
                                                    ("fisher", "tp-magnitude", 1.44, 0.89, ("tp-magnitude",))):
            p = peers.Pruned(TINY, 0.3, method, seed, model, steps=0, measured_ms=ms, levelled=levelled,
                             against={a: 0.99 for a in against},
                             scores={lr: {"val": top1 + seed / 100 + (lr == 3e-3) / 1000, "test": top1 + seed / 100}
                                     for lr in (1e-3, 3e-3)})
            pruned.append(p)
    pruned.append(peers.Pruned(TINY, 0.3, "fisher", 2, model, steps=0, measured_ms=1.4, levelled="",
                               against={"uniform": 1.0, "tp-magnitude": 0.97}, scores={1e-3: {"test": 0.87}}))
    peers.choose_lrs(pruned, (1e-3, 3e-3))
    assert {p.lr for p in pruned} == {3e-3}  # seed 2's one group takes seed 0's choice for fisher
    args = argparse.Namespace(measured_rounds=1, seeds=2, prune_steps=1, finetune_steps=1, batch_size=32)
    rows = peers.table(pruned[:-1], {(TINY, 0.3): {"budget_ms": 1.526, "original_ms": 5.0, "block": 4}},
                       [peers.Contender(m, m) for m in ("fisher", "tp-magnitude", "uniform")], args, headline="fisher")
    assert [r["method"] for r in rows] == ["fisher @tp-magnitude", "fisher @uniform", "tp-magnitude", "uniform"]
    by = {r["method"]: r for r in rows}
    assert by["tp-magnitude"]["paired"]["diffs"] == pytest.approx([0.01, 0.01])
    assert by["uniform"]["paired"]["diffs"] == pytest.approx([0.01, 0.01])
    assert by["uniform"]["paired"]["equal_latency"] is True

    # one group (the usual case): one net, named as the method alone, compared with everyone
    (net,) = peers.Place.level_with_each(stand_in, peers.Contender("fisher", "fisher"), 0, 1.3, theirs[:2])
    assert net.label == "fisher" and net.aim_ms == pytest.approx(1.3)  # the budget caps the aim


def test_a_run_stopped_by_a_fault_resumes_without_pruning_or_measuring_again(tiny_profile, tmp_path, monkeypatch,
                                                                           capsys):
    """peers.py keeps each net and budget's pruned nets, and each score, on disk until the
    command completes: run again after a fault, it fine-tunes the same nets without pruning or
    measuring anything again; a completed command leaves nothing behind (forget), and a state
    file left under an older source is deleted by the next run."""
    import peers
    import pytest
    import resume
    from measured import this_machine

    monkeypatch.setattr(resume, "runs_dir", lambda: tmp_path / "runs")
    args = peers.settle(_peers_args("--quick", "--profile", str(tiny_profile.path)))
    args.seeds = 1
    # a fault's state under an older source cannot resume: it goes; another command's stays
    (tmp_path / "runs").mkdir()
    older, other = (tmp_path / "runs" / f"peers-{'0' * 16}.pkl",
                    tmp_path / "runs" / f"peers-{resume._source_digest()[:8]}-{'0' * 8}.pkl")
    older.write_bytes(b""), other.write_bytes(b"")
    here = this_machine(args.profile, args.processes, "peers", args.threads)
    uniform = [peers.Contender("uniform", "uniform")]

    def fault(*_, **__):
        raise RuntimeError("the fault")

    with monkeypatch.context() as patched:
        patched.setattr(peers, "fine_tune_all", fault)
        with pytest.raises(RuntimeError, match="the fault"):
            peers.run(uniform, [TINY], [0.85], args, here, peers.Measured(here), headline="fisher")
    assert not older.exists() and other.exists()
    other.unlink()
    first = _saved_state(tmp_path / "runs")
    assert [p.method for p in first["pruned"]] == ["uniform"] and not first["pruned"][0].scores

    # Run again: nothing may be pruned or measured (each of these would raise).
    monkeypatch.setattr(peers.Place, "prune", fault)
    monkeypatch.setattr(peers, "reachable_block", fault)
    monkeypatch.setattr(here, "measure", fault)
    pruned, budgets = peers.run(uniform, [TINY], [0.85], args, here, peers.Measured(here), headline="fisher")
    assert "resumed from" in capsys.readouterr().out
    assert budgets == first["budgets"] and pruned[0].measured_ms == first["pruned"][0].measured_ms
    assert 0 <= pruned[0].top1 <= 1 and _saved_state(tmp_path / "runs")["pruned"][0].scores == pruned[0].scores
    resume.forget()
    assert not list((tmp_path / "runs").glob("*.pkl"))


def _saved_state(runs) -> dict:
    import pickle

    (path,) = runs.glob("peers-*.pkl")
    return pickle.loads(path.read_bytes())


@pytest.mark.long
def test_int8_budget_quick(shared_tiny_int8_profile, tiny_profile, tmp_path, capsys):
    """The three plans, each pruned, measured as int8, fine-tuned, quantized and scored."""
    import int8_budget

    rows = int8_budget.main(["--int8-profile", str(shared_tiny_int8_profile.path), "--float-profile",
                             str(tiny_profile.path), "--spec", TINY, "--share", "0.85", "--quick",
                             "--plot", str(tmp_path / "int8.png")])
    assert_png(tmp_path / "int8.png")
    assert [r["plan"] for r in rows] == ["int8 table", "float table", "FLOPs"]
    for r in rows:
        assert r["int8_ms"] > 0 and 0 <= r["int8_top1"] <= 1 and 0 <= r["float_top1"] <= 1 and r["macs"] > 0
    assert "int8 top-1" in capsys.readouterr().out
