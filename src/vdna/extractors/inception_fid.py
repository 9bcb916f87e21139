"""The Inception-v3 of FID (pytorch-fid's TensorFlow port): torchvision's network with the pooling of
the original TensorFlow graph, so that pytorch-fid's weights give the features FID is defined on.

Differences from torchvision's blocks: average pools exclude the padding (Mixed_5b-5d, 6b-6e,
7b), and the pool branch of the last block (Mixed_7c) takes a max instead of an average.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.models import inception as tv


def _average_pool(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(tv.InceptionA):
    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(_average_pool(x)),
        ]


class FIDInceptionC(tv.InceptionC):
    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        double = x
        for stage in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            double = stage(double)
        return [
            self.branch1x1(x),
            self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))),
            double,
            self.branch_pool(_average_pool(x)),
        ]


class FIDInceptionE(tv.InceptionE):
    def __init__(self, in_channels: int, max_pool: bool):
        super().__init__(in_channels)
        self.max_pool = max_pool

    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        three = self.branch3x3_1(x)
        double = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _average_pool(x)
        return [
            self.branch1x1(x),
            torch.cat([self.branch3x3_2a(three), self.branch3x3_2b(three)], 1),
            torch.cat([self.branch3x3dbl_3a(double), self.branch3x3dbl_3b(double)], 1),
            self.branch_pool(pooled),
        ]


def fid_inception_v3() -> tv.Inception3:
    """The FID network with random weights, its 1008-class head included (pytorch-fid's file has it)."""
    model = tv.Inception3(num_classes=1008, aux_logits=False, transform_input=False, init_weights=True)
    model.Mixed_5b = FIDInceptionA(192, pool_features=32)
    model.Mixed_5c = FIDInceptionA(256, pool_features=64)
    model.Mixed_5d = FIDInceptionA(288, pool_features=64)
    model.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    model.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    model.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    model.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    model.Mixed_7b = FIDInceptionE(1280, max_pool=False)
    model.Mixed_7c = FIDInceptionE(2048, max_pool=True)
    return model


__all__ = [
    "FIDInceptionA",
    "FIDInceptionC",
    "FIDInceptionE",
    "fid_inception_v3",
]
