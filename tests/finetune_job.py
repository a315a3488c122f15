"""A short fine-tuning job, run by tests/test_finetune.py in one process or under torchrun.

    python tests/finetune_job.py OUT [--batch-size 16] [--stop-after-epoch K]
    torchrun --standalone --nproc_per_node 2 tests/finetune_job.py OUT

A small conv net with BatchNorm (frozen: DDP keeps batch statistics per rank) is fine-tuned
along a chain of two teachers on a synthetic, seeded 10-class data set; rank 0 writes the final
weights to OUT/final.pt. ``--stop-after-epoch K`` ends the process (exit 3) right after the
K-th epoch's checkpoint, as a kill would.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mobileprune.data import DataSplits
from mobileprune.finetune import FinetuneConfig, finetune


def net(width: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))


def data() -> DataSplits:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(640 + 128, 1, 12, 12, generator=g)
    y = (x.mean((1, 2, 3)) * 40).long().clamp(-5, 4) + 5  # learnable from the input
    return DataSplits("synthetic", TensorDataset(x[:640], y[:640]), TensorDataset(x[640:], y[640:]), classes=10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--stop-after-epoch", type=int)
    args = parser.parse_args()
    distributed = "LOCAL_RANK" in os.environ
    if distributed:
        torch.distributed.init_process_group("gloo")
    torch.set_num_threads(1)
    teachers = [net(16, 1), net(32, 2)]
    student = net(8, 3)
    calls = {"epochs": 0}

    def log(line: str) -> None:
        print(line, flush=True)
        calls["epochs"] += 1
        if args.stop_after_epoch is not None and calls["epochs"] >= args.stop_after_epoch:
            os._exit(3)  # as a kill: nothing after this epoch's checkpoint runs

    config = FinetuneConfig(epochs_per_teacher=2, batch_size=args.batch_size, steps_per_epoch=10, lr=1e-2, patience=5,
                            freeze_bn=True, seed=0)
    finetune(student, data(), teachers, ["small", "large"], config=config, out=args.out, show=True, log=log)
    rank = torch.distributed.get_rank() if distributed else 0
    if rank == 0:
        torch.save(student.state_dict(), Path(args.out) / "final.pt")
    if distributed:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
