"""Visual DNA: represent images and datasets by the distributions of neuron activations, and compare them.

    from vdna import VDNAProcessor, EMD

    vdna_proc = VDNAProcessor()
    vdna1 = vdna_proc.make_vdna(source="/path/to/dataset1")
    vdna2 = vdna_proc.make_vdna(source="/path/to/dataset2")
    emd = EMD(vdna1, vdna2)

Names are loaded on first use, so ``import vdna`` (and the ``vdna`` command's help) does not load torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .config import DEFAULT_EXTRACTOR, RunConfig

_WHERE = {
    "EMD": "distances",
    "FD": "distances",
    "NFD": "distances",
    "check_comparable": "dna",
    "VDNA": "dna",
    "merge_vdnas": "dna",
    "VDNAActivationRanges": "distributions",
    "VDNAGauss": "distributions",
    "VDNAHist": "distributions",
    "VDNAImageHist": "distributions",
    "VDNAImageMeans": "distributions",
    "VDNALayerGauss": "distributions",
    "create_extractor": "extractors",
    "list_extractors": "extractors",
    "register_extractor": "extractors",
    "load_vdna_from_files": "io",
    "save_vdna": "io",
    "ImageError": "preprocess",
    "VDNAProcessor": "processor",
    "ActivationRanges": "ranges",
    "load_activation_ranges": "ranges",
}

if TYPE_CHECKING:
    from .distances import EMD, FD, NFD
    from .distributions import (
        VDNAActivationRanges,
        VDNAGauss,
        VDNAHist,
        VDNAImageHist,
        VDNAImageMeans,
        VDNALayerGauss,
    )
    from .dna import VDNA, check_comparable, merge_vdnas
    from .extractors import create_extractor, list_extractors, register_extractor
    from .io import load_vdna_from_files, save_vdna
    from .preprocess import ImageError
    from .processor import VDNAProcessor
    from .ranges import ActivationRanges, load_activation_ranges


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})


__all__ = [
    "DEFAULT_EXTRACTOR",
    "EMD",
    "FD",
    "NFD",
    "VDNA",
    "ActivationRanges",
    "ImageError",
    "RunConfig",
    "VDNAActivationRanges",
    "VDNAGauss",
    "VDNAHist",
    "VDNAImageHist",
    "VDNAImageMeans",
    "VDNALayerGauss",
    "VDNAProcessor",
    "__version__",
    "check_comparable",
    "create_extractor",
    "list_extractors",
    "load_activation_ranges",
    "load_vdna_from_files",
    "merge_vdnas",
    "register_extractor",
    "save_vdna",
]
