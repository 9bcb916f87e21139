"""Feature extractors, created by name.

Add your own by decorating a factory ``(pretrained: bool, weights: str | None) -> Extractor``::

    from vdna.extractors import register_extractor, HookExtractor

    @register_extractor("my_net")
    def my_net(pretrained=True, weights=None):
        model = build_my_model(weights)
        return HookExtractor(model, {"block1": "layer1", "block2": "layer2"}, name="my_net",
                             input_size=(224, 224), mean=(0.485, 0.456, 0.406),
                             std=(0.229, 0.224, 0.225))

Names are listed without importing torch; the network classes load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .registry import (
    BUILTIN_EXTRACTORS,
    DEFAULT_EXTRACTOR,
    create_extractor,
    list_extractors,
    register_extractor,
    registered_extractor,
    unregister_extractor,
)

_FROM_BASE = ("Extractor", "ExtractorInfo", "HookExtractor", "check_ranges_match", "resolve_device")


def __getattr__(name: str) -> Any:
    if name in _FROM_BASE:
        return getattr(importlib.import_module(".base", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BUILTIN_EXTRACTORS",
    "DEFAULT_EXTRACTOR",
    "Extractor",
    "ExtractorInfo",
    "HookExtractor",
    "check_ranges_match",
    "create_extractor",
    "list_extractors",
    "register_extractor",
    "registered_extractor",
    "resolve_device",
    "unregister_extractor",
]
