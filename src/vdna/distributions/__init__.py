"""Distributions a DNA can fit to each neuron's activations, registered by type.

Names: ``histogram-B`` (B >= 2 bins, e.g. ``histogram-1000``), ``gaussian``, ``layer-gaussian``,
``activation-ranges``, and per image of a set: ``image-histogram-B`` (one DNA-hist per image, kept
sparse) and ``image-mean`` (each image's spatially averaged activations, from which the Gaussian
DNAs of any subset follow).
"""

from __future__ import annotations

from typing import Any

from .activation_ranges import RangesAccumulator, VDNAActivationRanges
from .base import Accumulator, DNAType, PerImageDNA
from .gaussian import MomentsAccumulator, VDNAGauss, VDNALayerGauss
from .histogram import HistogramAccumulator, VDNAHist
from .image_histograms import ImageHistogramsAccumulator, VDNAImageHist
from .image_means import ImageMeansAccumulator, VDNAImageMeans

_TYPES: dict[str, type[DNAType]] = {}


def register_distribution(dna_class: type[DNAType]) -> type[DNAType]:
    """Register a DNA type under its ``type`` name."""
    if dna_class.type in _TYPES and _TYPES[dna_class.type] is not dna_class:
        raise ValueError(f"a distribution of type {dna_class.type!r} is already registered")
    _TYPES[dna_class.type] = dna_class
    return dna_class


for _dna_class in (VDNAHist, VDNAGauss, VDNALayerGauss, VDNAActivationRanges, VDNAImageHist, VDNAImageMeans):
    register_distribution(_dna_class)


def list_distributions() -> list[str]:
    """Registered distribution types."""
    return list(_TYPES)


def parse_distribution(name: str) -> tuple[type[DNAType], dict[str, Any]]:
    """The DNA type and its parameters for a distribution name such as ``histogram-1000``."""
    if isinstance(name, str):
        for dna_class in _TYPES.values():
            parameters = dna_class.parse_name(name)
            if parameters is not None:
                return dna_class, parameters
    raise ValueError(
        f"unknown distribution {name!r}; valid: histogram-B (B >= 2 bins, e.g. histogram-1000), "
        "gaussian, layer-gaussian, activation-ranges, image-histogram-B (one histogram DNA per image), "
        "image-mean (each image's spatially averaged activations)"
    )


def dna_class_for_type(type_name: str) -> type[DNAType]:
    """The DNA class of a stored ``type`` field."""
    if type_name not in _TYPES:
        raise ValueError(f"unknown DNA type {type_name!r}; known: {', '.join(_TYPES)}")
    return _TYPES[type_name]


__all__ = [
    "Accumulator",
    "DNAType",
    "HistogramAccumulator",
    "ImageHistogramsAccumulator",
    "ImageMeansAccumulator",
    "MomentsAccumulator",
    "PerImageDNA",
    "RangesAccumulator",
    "VDNAActivationRanges",
    "VDNAGauss",
    "VDNAHist",
    "VDNAImageHist",
    "VDNAImageMeans",
    "VDNALayerGauss",
    "dna_class_for_type",
    "list_distributions",
    "parse_distribution",
    "register_distribution",
]
