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
