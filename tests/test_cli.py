"""The `mobileprune analyze` command: once as a user runs it (a separate process, the console
entry), then its error paths through the same main() in this process (tests/in_process.py:
each separate process imports torch and the library again, 6 s on a 2-core AMD EPYC VM)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from conftest import TINY
from in_process import run_cli


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "mobileprune.cli", *args], capture_output=True, text=True,
                          timeout=300, env=env)


def test_analyze_table_and_json(capsys):
    table = run("analyze", "torchvision:resnet18", "--input-shape", "1,3,64,64")
    assert table.returncode == 0, table.stderr
    assert "13 groups, 12 prunable" in table.stdout and "network output" in table.stdout
    out = run_cli(capsys, "analyze", "torchvision:resnet18", "--json")
    data = json.loads(out.stdout)
    assert data["input_shape"] == [1, 3, 224, 224] and len(data["groups"]) == 13
    assert {"size", "producers", "consumers", "passthrough", "frozen", "reasons"} <= set(data["groups"][0])


def test_bad_spec_exits_nonzero_with_usage_not_traceback(capsys):
    out = run("analyze", "torchvision:nope")  # as a user sees it: the process's exit code and stderr
    assert out.returncode == 2 and "usage:" in out.stderr and "Traceback" not in out.stderr
    for spec in ("nonsense", "missing.py:make"):
        out = run_cli(capsys, "analyze", spec)
        assert out.returncode == 2
        assert "usage:" in out.stderr and "Traceback" not in out.stderr


def test_bad_input_shape(capsys):
    out = run_cli(capsys, "analyze", "torchvision:resnet18", "--input-shape", "1,3,x")
    assert out.returncode == 2 and "bad input shape" in out.stderr and "Traceback" not in out.stderr


def test_profile_refuses_zero_processes_before_measuring(capsys):
    out = run_cli(capsys, "profile", "--model", "torchvision:resnet18", "--processes", "0")
    assert out.returncode == 2 and "processes and repeats must be at least 1" in out.stderr
    assert "Traceback" not in out.stderr


def test_profile_pairs_input_shapes_with_models(capsys):
    out = run_cli(capsys, "profile", "--model", "torchvision:resnet18", "--model", "torchvision:mobilenet_v2",
                  "--input-shape", "1,3,64,64", "--input-shape", "1,3,96,96", "--input-shape", "1,3,32,32")
    assert out.returncode == 2 and "3 --input-shape for 2 --model" in out.stderr and "Traceback" not in out.stderr


def test_bench_refuses_a_file_that_is_not_the_artifact_its_name_says(capsys, tmp_path):
    for name, what in (("model.pte", "ExecuTorch-XNNPACK (.pte)"), ("model.int8.tflite", "LiteRT int8 (.int8.tflite)")):
        (tmp_path / name).write_bytes(b"\x00\xffnot a flatbuffer at all")
        out = run_cli(capsys, "bench", str(tmp_path / name))
        assert out.returncode == 2 and "Traceback" not in out.stderr
        assert f"is not an artifact of {what}" in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    out = run_cli(capsys, "bench", str(tmp_path / "missing.pte"))
    assert out.returncode == 2 and "no such file" in out.stderr


def test_the_cli_prints_no_log_lines_of_torch_tensorflow_or_absl(tmp_path):
    """A .tflite export as a user runs it (its own process, so TensorFlow loads after the CLI
    quieted it): torch's pytree notice, absl's banner and the converter's op count were printed
    between our lines; --verbose keeps them."""
    from mobileprune.quiet import ENV, ENV_FLAG

    env = {k: v for k, v in os.environ.items() if k not in (ENV_FLAG, *ENV)}  # as from a user's shell
    out = run("export", TINY, "--formats", "tflite", "--out", str(tmp_path / "quiet"), env=env)
    assert out.returncode == 0, out.stderr
    noise = re.compile(r"_pytree|absl|InitializeLog|flatbuffer_export|^[IWEF]\d{4} ")
    assert not [line for line in (out.stdout + out.stderr).splitlines() if noise.search(line)], out.stderr
    # (--verbose keeps torch's line, which a .pte export, quicker than a .tflite one, prints too)
    verbose = run("export", TINY, "--formats", "pte", "--out", str(tmp_path / "verbose"), "--verbose", env=env)
    assert verbose.returncode == 0 and noise.search(verbose.stderr), verbose.stderr
