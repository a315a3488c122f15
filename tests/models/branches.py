"""A toy classifier with one useful and one useless branch of equal cost: the useless branch's
channels reach the head multiplied by a constant zero, so no loss can depend on them. The stem
(8 channels) is one block at block 8: only the branches can be pruned."""
import torch
from torch import nn


def _branch():
    return nn.Sequential(nn.Conv2d(8, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU())


class TwoBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.useful = _branch()
        self.useless = _branch()
        self.register_buffer("off", torch.zeros(()))
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        x = self.stem(x)
        y = torch.cat([self.useful(x), self.useless(x) * self.off], 1)
        return self.head(y.mean((2, 3)))


def make():
    return TwoBranch()
