"""Output a person can follow where it is not a terminal (a CI log, `make demo > log`): long steps
print a plain progress line now and then, where rich's bars would print nothing until the end."""
from __future__ import annotations

import re

import torch
from torch import nn

from mobileprune.progress import Steps
from mobileprune.train.loop import TrainConfig, train


def test_training_prints_a_line_every_tenth_of_its_steps_when_output_is_not_a_terminal(capsys):
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    data = torch.utils.data.TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))
    train(model, data, nn.functional.cross_entropy, TrainConfig(steps=40, batch_size=8, lr=1e-2), show=True)
    lines = capsys.readouterr().out.splitlines()  # (capsys: stdout is not a terminal)
    line = re.compile(r"training (\d+)/40 \(\d+ s\): loss \d+\.\d{3}")
    steps = [int(m[1]) for m in map(line.fullmatch, lines) if m]
    assert steps == [4, 8, 12, 16, 20, 24, 28, 32, 36, 40] and len(lines) == 10, lines


def test_a_task_is_reported_at_least_every_so_often_and_once_when_done(capsys):
    with Steps(every_s=0.0) as steps:  # every update is "so often"
        task = steps.add_task("rows", total=1000, status="")
        for _ in range(3):
            steps.advance(task)
        steps.update(task, completed=1000, status="done")
        steps.update(task, completed=1000)
    assert capsys.readouterr().out.splitlines() == [
        "rows 1/1000 (0 s)", "rows 2/1000 (0 s)", "rows 3/1000 (0 s)", "rows 1000/1000 (0 s): done"]
    with Steps(show=False) as steps:
        steps.update(steps.add_task("quiet", total=2), completed=2)
    assert capsys.readouterr().out == ""
