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
# Input sizes: 112 x 112 where the model takes any size. Channel coupling does not depend on the
# image's size, and a forward at 224 costs 4x (regnet_y_128gf: 5 s of its 36 for one forward).
# The vision transformers fix theirs (a position embedding of 14 x 14 patches, MaxViT's
# partition grid); inception_v3 its own 299 (its auxiliary head's pooling needs 17 x 17 maps).
FIXED_SIZE = {"inception_v3": 299, "maxvit_t": 224, "vit_b_16": 224, "vit_b_32": 224, "vit_h_14": 224,
              "vit_l_16": 224, "vit_l_32": 224}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in BIG else n for n in MODELS])
def test_classification_zoo(name):
    torch.set_num_threads(1)
    size = FIXED_SIZE.get(name, 112)
    model = torchvision.models.get_model(name, weights=None)
    check_model(name, model, torch.randn(1, 3, size, size))


def test_big_list_is_current():
    assert BIG <= set(MODELS) and set(FIXED_SIZE) <= set(MODELS)
