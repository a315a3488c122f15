"""Segmentation models and detection backbones with FPN: slimmed == masked."""
from __future__ import annotations

import pytest
import torch
import torchvision
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.models.detection.ssdlite import _mobilenet_extractor
from torchvision.models import mobilenet_v3_large

from zoo import check_model


@pytest.mark.parametrize("name", ["deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large", "fcn_resnet50"])
def test_segmentation(name):
    torch.set_num_threads(1)
    model = torchvision.models.get_model(name, weights=None, weights_backbone=None)
    check_model(name, model, torch.randn(1, 3, 224, 224))


def test_resnet_fpn_backbone():
    torch.set_num_threads(1)
    model = resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=5)
    check_model("resnet18_fpn_backbone", model, torch.randn(1, 3, 224, 224))


def test_ssdlite_mobilenet_v3_backbone():
    torch.set_num_threads(1)
    backbone = mobilenet_v3_large(weights=None, dilated=False, norm_layer=torch.nn.BatchNorm2d)
    model = _mobilenet_extractor(backbone, trainable_layers=6, norm_layer=torch.nn.BatchNorm2d)
    check_model("ssdlite_mobilenet_v3_backbone", model, torch.randn(1, 3, 320, 320))
