"""How many images a DNA needs: distance from growing random subsets to a reference (section 5.2, Fig. 5).

Subsets are drawn from per-image DNAs made once (``image-histogram-B`` for ``dna-emd``,
``image-mean`` for ``fd`` and ``dna-fd``), so every subset's DNA is exact and no image goes
through the network twice. For each seed the images are shuffled once and the subsets are the
growing prefixes of that order, as when collecting more and more images.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..distances import EMD, FD, NFD
from ..distributions import VDNAGauss, VDNAHist, VDNAImageHist, VDNAImageMeans, VDNALayerGauss
from ..dna import VDNA


@dataclass(frozen=True)
class SampleSizeCurve:
    """Distances ``(seeds, sizes)`` from subsets of each size to the reference."""

    metric: str
    sizes: list[int]
    distances: np.ndarray

    @property
    def mean(self) -> np.ndarray:
        """Mean over seeds, per size."""
        return self.distances.mean(axis=0)

    @property
    def std(self) -> np.ndarray:
        """Standard deviation over seeds, per size (0 with one seed)."""
        return self.distances.std(axis=0)

    def settled_size(self, tolerance: float = 0.05) -> int:
        """The smallest size from which the mean distance stays within ``tolerance`` (relative) of its value at the largest size."""
        final = self.mean[-1]
        outside = np.abs(self.mean - final) > tolerance * abs(final)
        later_outside = np.flatnonzero(outside)
        return self.sizes[0] if later_outside.size == 0 else self.sizes[min(later_outside[-1] + 1, len(self.sizes) - 1)]


def _distance(metric: str, subset: VDNA, reference: VDNA, neurons: Mapping | None, layers: Sequence[str] | None) -> float:
    if metric == "emd":
        return float(EMD(subset, reference, neurons=neurons))
    if metric == "nfd":
        return float(NFD(subset, reference, neurons=neurons))
    if layers is None:
        return float(FD(subset, reference))
    return float(np.mean([float(FD(subset, reference, use_neurons_from_layer=layer)) for layer in layers]))


_REFERENCE_TYPES = {"emd": VDNAHist, "nfd": VDNAGauss, "fd": VDNALayerGauss}


def sample_size_curve(
    images: VDNAImageHist | VDNAImageMeans,
    reference: VDNA,
    sizes: Sequence[int],
    seeds: int | Sequence[int] = 10,
    metric: str | None = None,
    neurons: Mapping | None = None,
    layers: Sequence[str] | None = None,
) -> SampleSizeCurve:
    """Distances from random subsets of ``images`` of each size to ``reference``.

    ``metric``: ``"emd"`` (per-image histograms, histogram reference; the default for them),
    ``"fd"`` (per-image means, layer-Gaussian reference: FD averaged over ``layers``, all by
    default; the default for means) or ``"nfd"`` (per-image means, gaussian reference).
    ``seeds``: how many seeds (0, 1, ...) or which.
    """
    if metric is None:
        metric = "emd" if isinstance(images, VDNAImageHist) else "fd"
    if metric not in _REFERENCE_TYPES:
        raise ValueError(f"metric must be one of {tuple(_REFERENCE_TYPES)}, got {metric!r}")
    wanted = VDNAImageHist if metric == "emd" else VDNAImageMeans
    if not isinstance(images, wanted):
        raise TypeError(f"metric {metric!r} needs per-image DNAs of type {wanted.type}, got {type(images).__name__}")
    if not isinstance(reference, _REFERENCE_TYPES[metric]):
        raise TypeError(f"metric {metric!r} needs a {_REFERENCE_TYPES[metric].type} reference, got {type(reference).__name__}")
    sizes = sorted({int(size) for size in sizes})
    if not sizes or sizes[0] < 2 or sizes[-1] > len(images):
        raise ValueError(f"sizes must lie in [2, {len(images)}] (the number of images), got {sizes}")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise ValueError("at least one seed is needed")
    distances = np.empty((len(seed_list), len(sizes)))
    for row, seed in enumerate(seed_list):
        order = np.random.default_rng(seed).permutation(len(images))
        for column, size in enumerate(sizes):
            chosen = order[:size]
            subset = (
                images.subset(chosen) if metric == "emd"
                else images.gaussian(chosen) if metric == "nfd"
                else images.layer_gaussian(chosen)
            )
            distances[row, column] = _distance(metric, subset, reference, neurons, layers)
    return SampleSizeCurve(metric, sizes, distances)
