"""`mobileprune report`: the page of a pruned model holds the numbers the commands print
(predict --json, the export manifest), the page of a profile its probes and staircases, and
both render in a real browser (headless Chromium): every figure decodes, the text is there."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import torch

import mobileprune as mp
from mobileprune.spec import build

from conftest import TINY, TINY_SHAPE
from in_process import run_cli

SECTIONS = ("summary", "widths", "layers", "staircases", "export", "device")


@pytest.fixture(scope="module")
def pruned_tiny(tiny_profile, tmp_path_factory):
    """The tiny net pruned to 70% of its latency on the run's tiny profile, and its export."""
    d = tmp_path_factory.mktemp("report")
    mp.prune(build(TINY).eval(), torch.randn(TINY_SHAPE), method="l1",
             target=mp.Target(budget="70%", profile=tiny_profile.path),
             output=mp.Output(out=d / "pruned", spec=TINY, show=False))
    return d / "pruned", tiny_profile.path


def test_the_report_of_a_pruned_net_holds_the_numbers_of_predict_and_the_manifest(pruned_tiny, tmp_path, capsys):
    pruned, profile = pruned_tiny
    assert run_cli(capsys, "export", pruned, "--formats", "pte", "--out", tmp_path / "exp",
                   "--profile", profile).returncode == 0
    out = run_cli(capsys, "report", pruned, "--profile", profile, "--export", tmp_path / "exp", "--device", "host",
                  "--processes", "1", "--out", tmp_path / "r.html")
    assert out.returncode == 0, out.stderr
    page, report = (tmp_path / "r.html").read_text(), json.loads((tmp_path / "r.json").read_text())
    assert all(f'id="{s}"' in page for s in SECTIONS)

    predicted = run_cli(capsys, "predict", pruned, "--profile", profile, "--json")
    pruned_ms = json.loads(predicted.stdout)["predicted_ms"]
    original_ms = json.loads(run_cli(capsys, "predict", TINY, "--profile", profile, "--json").stdout)["predicted_ms"]
    assert report["latency"]["predicted"] == pytest.approx([original_ms, pruned_ms], rel=1e-9)
    assert f"{pruned_ms:.4f}" in page and f"{original_ms:.4f}" in page
    # Per layer: the prediction's layers, summing to its layers' share of the total.
    layers = json.loads(predicted.stdout)["by_layer"]
    assert [r["predicted_ms"][1] for r in report["layers"]] == pytest.approx([r["ms"] for r in layers], rel=1e-9)
    assert report["layers"][0]["module"] == "stem.0"  # layers named as the user's modules
    # Measured: whole models in turns with the reference, and ExecuTorch's per-op events, every
    # layer family of the tiny net mapped (conv, depthwise, SE multiply, add, pools, linear).
    assert all(ms > 0 for ms in report["latency"]["measured"])
    assert report["per_op"]["measured"] and report["per_op"]["unmapped"] == [[], []]
    mapped = [r for r in report["layers"] if r["measured_ms"][0] is not None]
    assert {r["op"] for r in mapped} >= {"conv", "dwconv", "mul", "add", "gap", "linear"}
    # (the SE's 1x1 convs on one pixel can read 0 in ETDump)
    assert all(ms >= 0 for r in mapped for ms in r["measured_ms"]) and all(min(r["measured_ms"]) > 0 for r in mapped
                                                                          if r["module"] in ("stem.0", "dw.0"))
    assert report["staircases"] and all(c["curve"] and c["points"] for c in report["staircases"])

    manifest = json.loads((tmp_path / "exp" / "manifest.json").read_text())
    for artifact in manifest["artifacts"]:
        assert artifact["path"] in page and f"{artifact['size_bytes']:,}" in page
        assert f"{artifact['parity']['rel_diff']:.6f}" in page
    groups = {g["group"]: g for g in report["groups"]}
    plan = json.loads((pruned / "model.json").read_text())["plan"]
    assert any(groups[int(gid)]["kept"] == len(kept) < groups[int(gid)]["channels"] for gid, kept in plan["keep"].items())
    for label in ("multiply-adds", "parameters"):
        assert label in page
    assert report["size"]["macs"][1] < report["size"]["macs"][0]


def test_per_op_events_align_with_layers_and_a_missing_operator_unmaps_only_its_layer():
    """The tiny net's ETDump as ExecuTorch 1.5.1 wrote it (a 1x1 conv is a Fully Connected GEMM,
    hardsigmoid is Add, Clamp, Divide); without the SE multiply's event, only that layer is left
    unmapped and the layers after it still get their own times."""
    from mobileprune.devices.runner import OpEvent
    from mobileprune.report.per_op import map_events

    run = [("Transpose (ND, X32) #1", 0.01), ("Convolution (NHWC, F32) IGEMM #1", 0.064),
           ("Convolution (NHWC, F32) DWConv #1", 0.032), ("Fully Connected (NC, F32) GEMM #1", 0.02),
           ("Mean (ND) Reduce2 #1", 0.003), ("Fully Connected (NC, F32) GEMM #2", 0.001),
           ("Fully Connected (NC, F32) GEMM #3", 0.002), ("Add (ND) #1", 0.0005), ("Clamp (NC) #1", 0.0006),
           ("Divide (ND) #1", 0.0007), ("Multiply (ND) #1", 0.009), ("Add (ND) #2", 0.003),
           ("Fully Connected (NC, F32) GEMM #4", 0.036), ("HardSwish (NC) #1", 0.007), ("Mean (ND) Reduce2 #2", 0.004),
           ("Static Reshape (NC) #1", 0.0), ("Fully Connected (NC, F32) GEMM #5", 0.0001)]
    ops = "conv dwconv conv gap conv conv hardsigmoid mul add conv hardswish gap linear".split()
    mapped = map_events(ops, [OpEvent(name, [ms]) for name, ms in run])
    assert mapped.unmapped == [] and mapped.other_ms == pytest.approx(0.01)
    assert mapped.ms == pytest.approx([0.064, 0.032, 0.02, 0.003, 0.001, 0.002, 0.0018, 0.009, 0.003, 0.036, 0.007,
                                       0.004, 0.0001])
    without_mul = map_events(ops, [OpEvent(name, [ms]) for name, ms in run if not name.startswith("Multiply")])
    assert without_mul.unmapped == [ops.index("mul")]
    assert [ms for i, ms in enumerate(without_mul.ms) if i != ops.index("mul")] == \
        [ms for i, ms in enumerate(mapped.ms) if i != ops.index("mul")]


def test_the_report_of_a_profile_draws_its_probes_and_staircases(tmp_path, capsys):
    profile = "device_profiles/host-amd-epyc-f25m1-executorch-1t.csv"
    assert run_cli(capsys, "report", profile, "--out", tmp_path / "p.html").returncode == 0
    page, report = (tmp_path / "p.html").read_text(), json.loads((tmp_path / "p.json").read_text())
    assert set(report["probes"]) == {"conv", "dwconv"} and page.count('alt="probe of') == 2
    assert report["configurations"] and all(c["curve"] for c in report["configurations"])
    assert "family 25 model 1" in page and f"{report['rows']} rows" in page
    # The priced curve is a staircase at the conv's tile: every width in a tile costs the same.
    conv = next(c for c in report["configurations"] if c["op"] == "conv" and c["tile"])
    prices = dict((w, p) for w, p in conv["curve"])
    tile = conv["tile"]
    assert all(prices[w] == prices[(w + tile - 1) // tile * tile] for w in prices if (w + tile - 1) // tile * tile in prices)
    bad = run_cli(capsys, "report", profile, "--device", "host", "--out", tmp_path / "q.html")
    assert bad.returncode == 2 and "describe a model" in bad.stderr
    missing = run_cli(capsys, "report", tmp_path / "nothing-here", "--out", tmp_path / "r.html")
    assert missing.returncode == 2 and "neither a saved pruned model" in missing.stderr
    assert not (tmp_path / "r.html").exists()


CHECK = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt);
  const out = document.createElement("pre");
  out.id = "browser-check";
  out.textContent = JSON.stringify({images: images.length, broken: broken, text: document.body.innerText});
  document.body.appendChild(out);
});
</script></body>"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Chromium is missing: `apt-get install chromium` (.ci/run installs it)"
    return found


def browse(page, tmp_path) -> dict:
    """``page`` opened in headless Chromium: a screenshot, and what the page's own script saw."""
    checked = tmp_path / (page.stem + "-checked.html")
    checked.write_text(page.read_text().replace("</body>", CHECK))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage",
             f"--user-data-dir={tmp_path / 'chromium'}", "--virtual-time-budget=10000"]
    subprocess.run([chromium(), *flags, "--window-size=1200,2400", f"--screenshot={tmp_path / (page.stem + '.png')}",
                    checked.as_uri()], check=True, capture_output=True, timeout=120)
    dom = subprocess.run([chromium(), *flags, "--dump-dom", checked.as_uri()], check=True, capture_output=True,
                         text=True, timeout=120).stdout
    start = dom.index('<pre id="browser-check">') + len('<pre id="browser-check">')
    import html

    return json.loads(html.unescape(dom[start:dom.index("</pre>", start)]))


def test_both_reports_render_in_a_real_browser(pruned_tiny, tmp_path, capsys):
    pruned, profile = pruned_tiny
    assert run_cli(capsys, "report", pruned, "--profile", profile, "--out", tmp_path / "model.html").returncode == 0
    assert run_cli(capsys, "report", profile, "--out", tmp_path / "profile.html").returncode == 0
    for name in ("model", "profile"):
        seen = browse(tmp_path / f"{name}.html", tmp_path)
        report = json.loads((tmp_path / f"{name}.json").read_text())
        assert seen["images"] >= 2 and seen["broken"] == [], seen
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
        if name == "model":
            assert f"{report['latency']['predicted'][1]:.4f}" in seen["text"]
            assert "Where the milliseconds go" in seen["text"]
        else:
            assert f"{report['rows']} rows" in seen["text"]
