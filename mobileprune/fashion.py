"""A small Fashion-MNIST model family for the demo and the benchmarks: real accuracy, mobile layers.

Two architectures at three width multipliers (0.5, 1, 1.5), spec ``fashion:NAME``:
- ``mobilenet_wW``: a MobileNetV2-like net (inverted residuals, squeeze-excite in the expanded
  blocks, ReLU6, hard-sigmoid gates);
- ``resnet_wW``: a ResNet-like net (basic blocks, one per stage).
Inputs are 1x128x128: Fashion-MNIST's 28x28 images resized, so that compute, not each op's fixed
call cost, dominates latency (docs/pruning.md: 35% of the latency unpriced at 64x64, 20% at 128).

``trained(name)`` returns the model with trained weights: shipped in the package
(``mobileprune/fashion_weights/``) or cached in ``~/.cache/mobileprune/models``; otherwise
it trains it once (``python -m mobileprune.fashion train NAME``: one epoch of mobilenet_w1 took
30 minutes on one core) and caches
it. ``build("fashion:NAME")`` gives the architecture with those weights when they exist, so a
saved pruned model rebuilds without training anything.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .cache import cache_root
from .errors import MobilepruneError

INPUT_SHAPE = (1, 1, 128, 128)
WIDTHS = {"w0.5": 0.5, "w1": 1.0, "w1.5": 1.5}
SHIPPED = Path(__file__).parent / "fashion_weights"


class UnknownModel(MobilepruneError, LookupError):
    pass


def _c(channels: float) -> int:
    return max(8, int(round(channels / 8)) * 8)


def _conv_bn(cin, cout, k=3, stride=1, groups=1, act=True):
    mods = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        mods.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*mods)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, _c(channels / 4), 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(_c(channels / 4), channels, 1), nn.Hardsigmoid())

    def forward(self, x):
        return x * self.gate(x)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers = [_conv_bn(cin, hidden, 1)] if expand != 1 else []
        layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden)]
        if expand != 1:
            layers.append(SqueezeExcite(hidden))
        layers.append(_conv_bn(hidden, cout, 1, act=False))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


class MobileNetLike(nn.Module):
    # (expansion, channels, repeats, stride)
    STAGES = ((1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 2, 2), (4, 64, 2, 2), (4, 96, 1, 1))

    def __init__(self, width: float = 1.0, classes: int = 10) -> None:
        super().__init__()
        cin = _c(16 * width)
        layers = [_conv_bn(1, cin, 3, 2)]
        for t, c, n, s in self.STAGES:
            for i in range(n):
                layers.append(InvertedResidual(cin, _c(c * width), s if i == 0 else 1, t))
                cin = _c(c * width)
        last = _c(256 * width)
        layers.append(_conv_bn(cin, last, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(last, classes)

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                         if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class ResNetLike(nn.Module):
    STAGES = ((32, 1), (64, 2), (128, 2), (256, 2))

    def __init__(self, width: float = 1.0, classes: int = 10) -> None:
        super().__init__()
        cin = _c(32 * width)
        self.stem = nn.Sequential(nn.Conv2d(1, cin, 3, 2, 1, bias=False), nn.BatchNorm2d(cin), nn.ReLU(inplace=True))
        blocks = []
        for c, s in self.STAGES:
            blocks.append(BasicBlock(cin, _c(c * width), s))
            cin = _c(c * width)
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        return self.fc(self.blocks(self.stem(x)).mean((2, 3)))


ARCHS = {"mobilenet": MobileNetLike, "resnet": ResNetLike}
NAMES = [f"{a}_{w}" for a in ARCHS for w in WIDTHS]


def architecture(name: str) -> nn.Module:
    arch, _, width = name.partition("_")
    if arch not in ARCHS or width not in WIDTHS:
        raise UnknownModel(f"no Fashion-MNIST model {name!r}; known: {', '.join(NAMES)}")
    return ARCHS[arch](WIDTHS[width])


def cache_dir() -> Path:
    return cache_root() / "models"


def weights_path(name: str) -> Path | None:
    for d in (SHIPPED, cache_dir()):
        if (d / f"fashion-{name}.safetensors").is_file():
            return d / f"fashion-{name}.safetensors"
    return None


def build(name: str) -> nn.Module:
    """The architecture, with trained weights when they are shipped or cached (eval mode)."""
    model = architecture(name)
    path = weights_path(name)
    if path is not None:
        model.load_state_dict(load_file(str(path)))
    return model.eval()


def untrained(spec: str) -> str | None:
    """For a ``fashion:NAME`` spec without trained weights here, the command that trains it
    (a teacher or benchmark model with random weights would measure noise); else None."""
    if spec.startswith("fashion:") and weights_path(spec.split(":", 1)[1]) is None:
        return f"python -m mobileprune.fashion train {spec.split(':', 1)[1]}"
    return None


def larger_sibling(spec: str) -> str | None:
    """The next width up of a ``fashion:ARCH_wW`` spec (the second teacher of a distillation
    chain: same architecture and classes, more channels), or None for the widest or a non-Fashion spec."""
    if not spec.startswith("fashion:"):
        return None
    arch, _, width = spec.split(":", 1)[1].partition("_")
    wider = [w for w, m in sorted(WIDTHS.items(), key=lambda kv: kv[1]) if width in WIDTHS and m > WIDTHS[width]]
    return f"fashion:{arch}_{wider[0]}" if arch in ARCHS and wider else None


def accuracy(name: str) -> dict | None:
    path = weights_path(name)
    meta = path.with_suffix(".json") if path else None
    return json.loads(meta.read_text()) if meta and meta.is_file() else None


def trained(name: str, log=print) -> nn.Module:
    if weights_path(name) is None:
        train(name, log=log)
    return build(name)


def train(name: str, epochs: int = 3, batch_size: int = 128, lr: float = 2e-3, seed: int = 0, out: Path | None = None,
          log=print) -> dict:
    """Train ``name`` on Fashion-MNIST (train split), report top-1 on the held-out test split,
    and store the weights (+ a .json with the figures) in ``out`` (default: the cache)."""
    from .data import load_data, top1
    from .train.loop import TrainConfig
    from .train.loop import train as run_loop

    torch.manual_seed(seed)
    model = architecture(name)
    data = load_data("fashion-mnist", INPUT_SHAPE)
    per_epoch = len(data.train) // batch_size
    steps = epochs * per_epoch
    log(f"training fashion:{name} for {epochs} epochs ({steps} steps of {batch_size}) on Fashion-MNIST at {INPUT_SHAPE[-1]}x{INPUT_SHAPE[-2]}")
    started = time.perf_counter()
    config = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, weight_decay=1e-4, schedule="cosine")
    run_loop(model, data.train, nn.functional.cross_entropy, config, show=log is print)
    result = {"name": name, "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
              "test_top1": top1(model, data.test), "val_top1": top1(model, data.val),
              "seconds": round(time.perf_counter() - started), "input_shape": list(INPUT_SHAPE)}
    out = Path(out) if out else cache_dir()
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / f"fashion-{name}.safetensors"))
    (out / f"fashion-{name}.json").write_text(json.dumps(result, indent=1))
    log(f"fashion:{name}: test top-1 {100 * result['test_top1']:.2f}% after {result['seconds']} s -> {out}")
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mobileprune.fashion", description="train the Fashion-MNIST family")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train")
    p.add_argument("names", nargs="+", choices=NAMES)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--out", help="directory for the weights (default: the cache)")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    for name in args.names:
        train(name, args.epochs, out=args.out)


if __name__ == "__main__":
    main()
