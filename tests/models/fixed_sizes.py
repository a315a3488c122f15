"""Small models whose code fixes channel sizes in plain attributes (tests/test_fixed_sizes.py)."""
import torch
from torch import nn


def cbr(cin, cout, k=3):
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class MultiScale(nn.Module):
    """Res2Net-style block: split into ``scales`` pieces of a fixed width held in an attribute,
    each piece convolved after adding the previous piece's output, then concatenated."""

    def __init__(self, width=8, scales=4):
        super().__init__()
        self.width = width
        self.stem = cbr(3, 24)
        self.conv1 = cbr(24, width * scales, 1)
        self.convs = nn.ModuleList(cbr(width, width) for _ in range(scales - 1))
        self.conv3 = cbr(width * scales, 32, 1)
        self.head = nn.Conv2d(32, 10, 1)

    def forward(self, x):
        pieces = torch.split(self.conv1(self.stem(x)), self.width, 1)
        out, y = [], None
        for i, conv in enumerate(self.convs):
            y = conv(pieces[i] if y is None else pieces[i] + y)
            out.append(y)
        out.append(pieces[-1])
        return self.head(self.conv3(torch.cat(out, 1))).mean((2, 3))


class CrossStage(nn.Module):
    """CSP-style stage: the input split into two fixed halves (``self.half`` channels each, or
    chunked when ``chunked``), one half through a block, then both concatenated."""

    def __init__(self, chunked=False):
        super().__init__()
        self.half, self.chunked = 16, chunked
        self.stem = cbr(3, 32)
        self.block = nn.Sequential(cbr(16, 24), cbr(24, 16))
        self.fuse = cbr(32, 40, 1)
        self.head = nn.Conv2d(40, 10, 1)

    def forward(self, x):
        x = self.stem(x)
        a, b = x.chunk(2, 1) if self.chunked else torch.split(x, self.half, 1)
        return self.head(self.fuse(torch.cat([a, self.block(b)], 1))).mean((2, 3))


class FixedFlatten(nn.Module):
    """A head that flattens with a width held in an attribute."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(cbr(3, 16), cbr(16, 8))
        self.flat = 8 * 4 * 4
        self.fc = nn.Linear(self.flat, 10)

    def forward(self, x):
        return self.fc(self.features(x).reshape(x.shape[0], self.flat))
