"""Every torchvision classification model: slimmed == masked, and fewer parameters.

Models over 100M parameters carry the `slow` marker (`make test` runs them after the rest).
The coverage table is printed at the end of the run (see conftest.py).
"""
from __future__ import annotations

import pytest
import torch
import torchvision

from zoo import check_model

# Over 100M parameters (counted once; building on the meta device fails for regnet).
BIG = {"convnext_large", "efficientnet_v2_l", "regnet_x_32gf", "regnet_y_32gf", "regnet_y_128gf",
       "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
       "vit_h_14", "vit_l_16", "vit_l_32", "wide_resnet101_2"}
MODELS = torchvision.models.list_models(module=torchvision.models)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in BIG else n for n in MODELS])
def test_classification_zoo(name):
    torch.set_num_threads(1)
    size = 299 if name == "inception_v3" else 224
    model = torchvision.models.get_model(name, weights=None)
    check_model(name, model, torch.randn(1, 3, size, size))


def test_big_list_is_current():
    assert BIG <= set(MODELS)
