"""The benchmarks' quick modes: the scripts run end to end on a small model and a real profile."""
from __future__ import annotations

import sys
from pathlib import Path

from conftest import TINY

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))


def test_budget_hit_quick(tiny_profile, capsys):
    import budget_hit

    rows = budget_hit.main(["--profile", str(tiny_profile.path), "--models", TINY, "--share", "0.85", "--quick"])
    assert [r["method"] for r in rows] == ["gates", "fisher", "l1", "uniform"]
    for r in rows:
        assert r["predicted"] <= r["budget"] < r["original"] and r["measured"] > 0
    out = capsys.readouterr().out
    assert "gated training step / plain training step" in out and "latency cost forward+backward" in out


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
