"""The layers of torch-fidelity's TF-Inception network, built on a module without weights."""

from __future__ import annotations

import torch


def build_inception_layers(module: torch.nn.Module) -> None:
    """The exact submodules of torch-fidelity's FeatureExtractorInceptionV3, without its loading."""
    from torch_fidelity.feature_extractor_inceptionv3 import (
        BasicConv2d,
        InceptionA,
        InceptionB,
        InceptionC,
        InceptionD,
        InceptionE_1,
        InceptionE_2,
    )

    module.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
    module.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
    module.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
    module.MaxPool_1 = torch.nn.MaxPool2d(kernel_size=3, stride=2)
    module.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
    module.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
    module.MaxPool_2 = torch.nn.MaxPool2d(kernel_size=3, stride=2)
    module.Mixed_5b = InceptionA(192, pool_features=32)
    module.Mixed_5c = InceptionA(256, pool_features=64)
    module.Mixed_5d = InceptionA(288, pool_features=64)
    module.Mixed_6a = InceptionB(288)
    module.Mixed_6b = InceptionC(768, channels_7x7=128)
    module.Mixed_6c = InceptionC(768, channels_7x7=160)
    module.Mixed_6d = InceptionC(768, channels_7x7=160)
    module.Mixed_6e = InceptionC(768, channels_7x7=192)
    module.Mixed_7a = InceptionD(768)
    module.Mixed_7b = InceptionE_1(1280)
    module.Mixed_7c = InceptionE_2(2048)
    module.AvgPool = torch.nn.AdaptiveAvgPool2d(output_size=(1, 1))
    module.fc = torch.nn.Linear(2048, 1008)

