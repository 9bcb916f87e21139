"""Feature extractors by name: the built-in ones, those registered with :func:`register_extractor` (or for a
``with`` block with :func:`registered_extractor`), and ``timm:<model>``.

Listing names imports no network code: each built-in is named here with the function that builds
it, which is imported only when that extractor is created.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ..config import DEFAULT_EXTRACTOR, TIMM_PREFIX

if TYPE_CHECKING:
    import torch

    from .base import Extractor

ExtractorFactory = Callable[..., "Extractor"]

BUILTIN_EXTRACTORS: dict[str, str] = {
    DEFAULT_EXTRACTOR: "vdna.extractors.efficientnet:efficientnet_lite0",
    "mugs_vit_base": "vdna.extractors.zoo:mugs_vit_base",
    "mugs_vit_large": "vdna.extractors.zoo:mugs_vit_large",
    "dino_vit_base": "vdna.extractors.zoo:dino_vit_base",
    "clip_im_vit_b16": "vdna.extractors.zoo:clip_im_vit_b16",
    "dinov2_vits14": "vdna.extractors.zoo:dinov2_vits14",
    "dinov2_vitb14": "vdna.extractors.zoo:dinov2_vitb14",
    "dinov2_vitl14": "vdna.extractors.zoo:dinov2_vitl14",
    "dino_resnet50": "vdna.extractors.zoo:dino_resnet50",
    "resnet50": "vdna.extractors.zoo:resnet50",
    "rand_resnet50": "vdna.extractors.zoo:rand_resnet50",
    "vgg16": "vdna.extractors.zoo:vgg16",
    "inception": "vdna.extractors.zoo:inception",
}
"""Built-in extractors: name -> ``module:function`` of the factory ``(pretrained=True, weights=None) -> Extractor``."""

_REGISTERED: dict[str, ExtractorFactory] = {}


def register_extractor(name: str) -> Callable[[ExtractorFactory], ExtractorFactory]:
    """Decorator registering ``factory(pretrained=True, weights=None) -> Extractor`` under ``name``."""

    def decorate(factory: ExtractorFactory) -> ExtractorFactory:
        if name in BUILTIN_EXTRACTORS or name.startswith(TIMM_PREFIX):
            raise ValueError(f"{name!r} is the name of a built-in extractor; choose another name")
        if name in _REGISTERED and _REGISTERED[name] is not factory:
            raise ValueError(f"an extractor named {name!r} is already registered")
        _REGISTERED[name] = factory
        return factory

    return decorate


def unregister_extractor(name: str) -> None:
    """Remove the extractor registered under ``name``; built-in extractors cannot be removed."""
    if name in BUILTIN_EXTRACTORS or name.startswith(TIMM_PREFIX):
        raise ValueError(f"{name!r} is a built-in extractor; only registered extractors can be unregistered")
    if name not in _REGISTERED:
        registered = ", ".join(sorted(_REGISTERED)) or "none"
        raise ValueError(f"no extractor named {name!r} is registered; registered: {registered}")
    del _REGISTERED[name]


@contextmanager
def registered_extractor(name: str, factory: ExtractorFactory) -> Iterator[ExtractorFactory]:
    """Register ``factory`` under ``name`` for the ``with`` block, and unregister it when the block ends.

    If ``factory`` was already registered under ``name`` before the block, it stays registered after.
    """
    already = _REGISTERED.get(name) is factory
    register_extractor(name)(factory)
    try:
        yield factory
    finally:
        if not already and _REGISTERED.get(name) is factory:
            del _REGISTERED[name]


def list_extractors() -> list[str]:
    """Names of the built-in and registered extractors, sorted."""
    return sorted({*BUILTIN_EXTRACTORS, *_REGISTERED})


def _load(target: str) -> Callable:
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)


def extractor_factory(name: str) -> ExtractorFactory:
    """The factory of the extractor ``name``; ``ValueError`` listing the valid names if there is none."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in BUILTIN_EXTRACTORS:
        return _load(BUILTIN_EXTRACTORS[name])
    raise ValueError(f"unknown feature extractor {name!r}; registered: {', '.join(list_extractors())}, or timm:<any timm model>")


def create_extractor(
    name: str,
    pretrained: bool = True,
    weights: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    layers: Sequence[str] | Mapping[str, str] | None = None,
) -> Extractor:
    """Build the extractor ``name`` (or any timm model as ``timm:<model_name>``), frozen, in eval mode, on ``device``.

    ``pretrained=False`` builds the architecture with random weights (no download); ``weights`` is
    a local weights file to use instead of the published one. ``layers`` chooses the layers of a
    ``timm:`` model (module paths, or ``{name: module path}``).
    """
    from .base import resolve_device

    if name.startswith(TIMM_PREFIX):
        build = _load("vdna.extractors.zoo:timm_extractor")
        extractor = build(name[len(TIMM_PREFIX):], pretrained=pretrained, weights=weights, layers=layers)
    else:
        factory = extractor_factory(name)
        if layers is not None:
            raise ValueError(f"layers= chooses the layers of timm: models; {name!r} has fixed layers")
        extractor = factory(pretrained=pretrained, weights=weights)
    return extractor.to(resolve_device(device)).eval().requires_grad_(False)


__all__ = [
    "BUILTIN_EXTRACTORS",
    "ExtractorFactory",
    "create_extractor",
    "extractor_factory",
    "list_extractors",
    "register_extractor",
    "registered_extractor",
    "unregister_extractor",
]
