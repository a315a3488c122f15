"""Fine-tuning with a chain of teachers: distributed (torchrun, gloo) equals one process, a
killed run resumes to the same weights, misfit teachers are refused, and the CLI path."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from mobileprune.finetune import FinetuneError, check_teachers, kd_loss

JOB = Path(__file__).parent / "finetune_job.py"
BRANCHES = str(Path(__file__).parent / "models" / "branches.py") + ":make"


def _job(out: Path, *extra: str, processes: int = 1) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if processes == 1:
        cmd = [sys.executable, str(JOB), str(out), *extra]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               str(JOB), str(out), *extra]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=600)


def _weights(out: Path) -> dict:
    return torch.load(out / "final.pt", weights_only=True)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one")
    done = _job(out)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_kd_loss_is_zero_for_the_teachers_own_logits():
    logits = torch.randn(4, 10)
    assert float(kd_loss(logits, logits, 4.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(kd_loss(torch.randn(4, 10), logits, 4.0)) > 0


def test_two_processes_under_torchrun_match_one_process(one_process, tmp_path):
    """gloo, 2 ranks x 8 images vs 1 process x 16 images, same seed: every weight within 1e-5
    (the sums of the gradient all-reduce run in another order; BatchNorm statistics are frozen,
    which DDP would otherwise keep per rank)."""
    done = _job(tmp_path, processes=2)
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = _weights(one_process), _weights(tmp_path)
    assert one.keys() == two.keys()
    worst = max(float((one[k].float() - two[k].float()).abs().max()) for k in one)
    assert worst <= 1e-5, f"largest difference {worst:.2e}"
    assert any(float((one[k].float() - _initial()[k].float()).abs().max()) > 1e-3 for k in one), "nothing trained"
    report = json.loads((tmp_path / "finetune.json").read_text())
    assert report["processes"] == 2 and [r["teacher"] for r in report["history"]] == ["small"] * 2 + ["large"] * 2


def _initial() -> dict:
    sys.path.insert(0, str(JOB.parent))
    import finetune_job

    return finetune_job.net(8, 3).state_dict()


def test_a_run_killed_mid_chain_resumes_to_the_same_weights(one_process, tmp_path):
    killed = _job(tmp_path, "--stop-after-epoch", "3")  # in the second teacher's stage
    assert killed.returncode == 3, killed.stderr[-3000:]
    assert not (tmp_path / "final.pt").exists()
    resumed = _job(tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "stage 1/2" not in resumed.stdout  # the first stage is not run again
    one, again = _weights(one_process), _weights(tmp_path)
    assert all(torch.equal(one[k], again[k]) for k in one)
    history = json.loads((tmp_path / "finetune.json").read_text())["history"]
    assert [(r["stage"], r["epoch"]) for r in history] == [(0, 1), (0, 2), (1, 1), (1, 2)]


def test_a_teacher_is_left_as_given_and_can_be_pruned_next():
    """The original is the chain's first teacher and, in a benchmark, the next seed's pruning
    source: fine-tuning must neither change its weights nor freeze it (a frozen original once
    made the next pruning train nothing)."""
    from torch.utils.data import TensorDataset

    import mobileprune as mp
    from mobileprune.data import DataSplits
    from mobileprune.finetune import FinetuneConfig, finetune
    from mobileprune.train.loop import LoopError, TrainConfig, train

    torch.manual_seed(0)
    x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,))
    data = DataSplits("toy", TensorDataset(x, y), TensorDataset(x[:16], y[:16]))
    teacher = nn.Sequential(nn.Conv2d(1, 16, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 36, 10))
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 36, 10))
    finetune(student, data, [teacher], config=FinetuneConfig(steps_per_epoch=3, batch_size=8), show=False)
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert all(p.requires_grad for p in teacher.parameters())
    # Both trained and ran channels-last (layout.py) and came back in the layout they came in.
    assert all(p.is_contiguous() for net in (teacher, student) for p in net.parameters())
    pruned = mp.prune(teacher, x[:1], data, method="fisher", target=mp.Target(budget="60%", cost="flops", block=8),
                      training=mp.TrainConfig(steps=4, batch_size=8), output=mp.Output(show=False))
    assert pruned.report["predicted"]["after"] <= pruned.report["predicted"]["budget"]
    for p in teacher.parameters():  # a frozen model is refused by the loop, not trained silently
        p.requires_grad_(False)
    with pytest.raises(LoopError, match="no trainable parameters"):
        train(teacher, data.train, nn.functional.cross_entropy, TrainConfig(steps=1, batch_size=8), show=False)


def test_channels_last_layout_changes_speed_not_results_and_is_undone_even_on_error():
    """Training and evaluation run in channels-last layout on CPU (layout.py). What a user
    saves, exports or compares afterwards must be the model as it was: the same outputs (up to
    the order of float sums), contiguous weights, also when the work inside raised."""
    from mobileprune.layout import channels_last

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 16, 3, groups=16),
                        nn.Flatten(), nn.Linear(16 * 12 * 12, 10)).eval()
    x = torch.randn(4, 3, 16, 16)
    expected = net(x)
    with channels_last(net):
        assert net[0].weight.is_contiguous(memory_format=torch.channels_last) and not net[0].weight.is_contiguous()
        assert torch.allclose(net(x), expected, atol=1e-5)
    assert all(p.is_contiguous() for p in net.parameters()) and torch.equal(net(x), expected)
    with pytest.raises(RuntimeError, match="inside"), channels_last(net):
        raise RuntimeError("inside")
    assert all(p.is_contiguous() for p in net.parameters())
    net.to(memory_format=torch.channels_last)  # a layout the user chose is kept
    with channels_last(net):
        pass
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last) and not net[0].weight.is_contiguous()


ONEDNN_6035 = """
import faulthandler, torch
from torch import nn
from mobileprune.layout import channels_last
faulthandler.enable()
torch.set_num_threads(1)
torch.manual_seed(0)
# a 3x3 conv, then the shortcut-like 1x1 stride-2 conv of 8 input channels
net = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.Conv2d(8, 16, 1, stride=2, bias=False),
                    nn.Flatten(), nn.Linear(16 * 32 * 32, 10))
x = torch.randn(32, 8, 64, 64)
net(x).square().sum().backward()
expected = net[1].weight.grad.clone()
net.zero_grad()
with channels_last(net):
    assert net[0].weight.is_contiguous(), "trained channels-last: oneDNN#6035"
    net(x).square().sum().backward()
assert torch.allclose(net[1].weight.grad, expected, rtol=1e-4, atol=1e-3), "another weight gradient"
with torch.no_grad(), channels_last(net):  # evaluation keeps the faster layout: the bug is in backward
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last) and not net[0].weight.is_contiguous()
print("same gradient")
"""


def test_a_strided_1x1_conv_of_few_channels_trains_without_onednns_channels_last_bug():
    """A ResNet shortcut pruned to 8 input channels (Torch-Pruning's, or ours at block 8) must
    train: oneDNN's channels-last weight gradient for a 1x1 stride-2 conv of fewer than 16 input
    channels writes out of bounds (oneDNN#6035: a segfault on an Intel Xeon, wrong gradients
    elsewhere), so training keeps such a model in its own layout (layout.py). In a fresh
    process: a segfault there fails this test instead of killing the test runner."""
    done = subprocess.run([sys.executable, "-c", ONEDNN_6035], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode == 0 and "same gradient" in done.stdout, done.stderr[-3000:]


def test_teachers_that_do_not_fit_the_student_are_refused():
    student = nn.Sequential(nn.Flatten(), nn.Linear(16, 10))
    x = torch.randn(1, 1, 4, 4)
    check_teachers(student, [nn.Sequential(nn.Flatten(), nn.Linear(16, 10))], ["fits"], x)
    with pytest.raises(FinetuneError, match="outputs of shape \\(1, 5\\), the student \\(1, 10\\)"):
        check_teachers(student, [nn.Sequential(nn.Flatten(), nn.Linear(16, 5))], ["five classes"], x)
    with pytest.raises(FinetuneError, match="does not take the student's input"):
        check_teachers(student, [nn.Sequential(nn.Flatten(), nn.Linear(9, 10))], ["3x3 input"], x)


def test_cli_prunes_then_finetunes_with_a_teacher(tmp_path):
    """The two-command flow: prune, then fine-tune the saved dir with its original as teacher;
    the result is a saved model that load (and so predict and export) takes."""
    import mobileprune as mp
    from mobileprune.cli import main

    pruned, tuned = tmp_path / "pruned", tmp_path / "tuned"
    assert main(["prune", BRANCHES, "--input-shape", "1,1,28,28", "--method", "uniform", "--budget", "60%",
                 "--block", "8", "--out", str(pruned), "--json"]) == 0
    assert main(["finetune", str(pruned), "--teacher", BRANCHES, "--data", "fashion-mnist",
                 "--epochs-per-teacher", "2", "--steps-per-epoch", "5", "--batch-size", "16",
                 "--eval-images", "200", "--out", str(tuned), "--json"]) == 0
    report = json.loads((tuned / "finetune.json").read_text())
    assert report["stages"] == [BRANCHES] and len(report["history"]) == 2
    assert 0 <= report["top1"]["before"] <= 1 and 0 <= report["top1"]["after"] <= 1
    model, meta = mp.load(tuned)
    assert meta["plan"] == json.loads((pruned / "model.json").read_text())["plan"]
    assert model(torch.randn(1, 1, 28, 28)).shape == (1, 10)
    assert not list(tuned.glob("*.pt"))  # checkpoints removed once done
    assert main(["finetune", str(pruned), "--teacher", "torchvision:resnet18", "--data", "fashion-mnist",
                 "--out", str(tmp_path / "bad")]) == 2  # 3-channel 1000-class teacher: refused
    assert main(["finetune", str(pruned), "--teacher", "fashion:resnet_w1.5", "--data", "fashion-mnist",
                 "--out", str(tmp_path / "bad")]) == 2  # no trained weights here: would teach noise
    assert not (tmp_path / "bad").exists()


def test_batchnorm_statistics_are_those_of_the_weights_it_ends_with():
    """A short fine-tuning leaves BatchNorm's running averages mostly what they were before it
    (momentum 0.1): eval mode then normalises with statistics of other weights. With
    ``bn_batches`` they are re-estimated on training batches of the final weights: close to the
    whole training split's statistics, where without it a stale average stays."""
    sys.path.insert(0, str(JOB.parent))
    import finetune_job

    from mobileprune.finetune import FinetuneConfig, finetune

    data = finetune_job.data()

    def tuned(bn_batches: int) -> nn.Module:
        student = finetune_job.net(8, 3)
        student[1].running_mean.fill_(5.0)  # stale statistics, as after pruning
        student[1].running_var.fill_(100.0)
        return finetune(student, data, [], config=FinetuneConfig(batch_size=16, steps_per_epoch=3,
                                                                 bn_batches=bn_batches, seed=0), show=False).model

    def truth(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            features = model[0](data.train.tensors[0])  # what the BatchNorm normalises
        return features.mean((0, 2, 3)), features.var((0, 2, 3))

    fresh, stale = tuned(8), tuned(0)
    mean, var = truth(fresh)
    assert torch.allclose(fresh[1].running_mean, mean, atol=0.05 * float(var.sqrt().max()))
    assert torch.allclose(fresh[1].running_var, var, rtol=0.2)
    mean, var = truth(stale)
    assert not torch.allclose(stale[1].running_mean, mean, atol=1.0)  # still mostly the planted 5.0
