"""A small CNN with the layer kinds a latency table prices (conv, depthwise, SE, add, pool)."""
from torch import nn

# What the tests run it at (mobileprune.spec.default_input_shape reads it): small enough that a
# training step and a lowering are cheap, large enough that its convolutions, not the ~7 us fixed
# cost per layer, make most of its latency (pruning it measurably speeds it up).
INPUT_SHAPE = (1, 3, 96, 96)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1, groups=16, bias=False), nn.BatchNorm2d(16), nn.ReLU6())
        self.pw = nn.Sequential(nn.Conv2d(16, 16, 1, bias=False), nn.BatchNorm2d(16))
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(16, 8, 1), nn.ReLU(), nn.Conv2d(8, 16, 1),
                                nn.Hardsigmoid())
        self.head = nn.Sequential(nn.Conv2d(16, 32, 1), nn.Hardswish(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(32, 10))

    def forward(self, x):
        x = self.stem(x)
        y = self.pw(self.dw(x))
        y = y * self.se(y)
        return self.head(x + y)


def make():
    return Tiny()
