"""Registered feature extractors, created by name.

Add your own by decorating a factory ``(pretrained: bool, weights: str | None) -> Extractor``::

    from vdna.extractors import register_extractor, HookExtractor

    @register_extractor("my_net")
    def my_net(pretrained=True, weights=None):
        model = build_my_model(weights)
        return HookExtractor(model, {"block1": "layer1", "block2": "layer2"}, name="my_net",
                             input_size=(224, 224), mean=(0.485, 0.456, 0.406),
                             std=(0.229, 0.224, 0.225))
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

import torch

from .base import Extractor, ExtractorInfo, HookExtractor, check_ranges_match

ExtractorFactory = Callable[..., Extractor]

_FACTORIES: dict[str, ExtractorFactory] = {}

DEFAULT_EXTRACTOR = "efficientnet_lite0"


def register_extractor(name: str) -> Callable[[ExtractorFactory], ExtractorFactory]:
    """Decorator registering ``factory(pretrained=True, weights=None) -> Extractor`` under ``name``."""

    def decorate(factory: ExtractorFactory) -> ExtractorFactory:
        if name in _FACTORIES and _FACTORIES[name] is not factory:
            raise ValueError(f"an extractor named {name!r} is already registered")
        _FACTORIES[name] = factory
        return factory

    return decorate


def list_extractors() -> list[str]:
    """Names of the registered extractors, sorted."""
    return sorted(_FACTORIES)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` means CUDA when available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def create_extractor(
    name: str,
    pretrained: bool = True,
    weights: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    layers: Sequence[str] | Mapping[str, str] | None = None,
) -> Extractor:
    """Build the extractor registered as ``name`` (or any timm model as ``timm:<model_name>``), frozen, in eval mode, on ``device``.

    ``pretrained=False`` builds the architecture with random weights (no download); ``weights`` is
    a local weights file to use instead of the published one. ``layers`` chooses the layers of a
    ``timm:`` model (module paths, or ``{name: module path}``).
    """
    if name.startswith(zoo.TIMM_PREFIX):
        extractor = zoo.timm_extractor(name[len(zoo.TIMM_PREFIX):], pretrained=pretrained, weights=weights, layers=layers)
    elif name not in _FACTORIES:
        raise ValueError(
            f"unknown feature extractor {name!r}; registered: {', '.join(list_extractors())}, or timm:<any timm model>"
        )
    elif layers is not None:
        raise ValueError(f"layers= chooses the layers of timm: models; {name!r} has fixed layers")
    else:
        extractor = _FACTORIES[name](pretrained=pretrained, weights=weights)
    return extractor.to(resolve_device(device)).eval().requires_grad_(False)


from . import efficientnet, zoo  # noqa: E402,F401  (register the embedded default and the zoo)

__all__ = [
    "DEFAULT_EXTRACTOR",
    "Extractor",
    "ExtractorInfo",
    "HookExtractor",
    "check_ranges_match",
    "create_extractor",
    "list_extractors",
    "register_extractor",
    "resolve_device",
]
