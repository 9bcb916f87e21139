"""How many images a DNA needs: distance from growing random subsets to a reference (section 5.2, Fig. 5).

Subsets are drawn from per-image DNAs made once (``image-histogram-B`` for ``dna-emd``,
``image-mean`` for ``fd`` and ``dna-fd``), so every subset's DNA is exact and no image goes
through the network twice. For each seed the images are shuffled once and the subsets are the
growing prefixes of that order, as when collecting more and more images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..distances import Neurons, get_distance
from ..distributions import VDNAImageHist, VDNAImageMeans
from ..dna import VDNA
from ..stats import noise_floor_curve, noise_floor_limits
from ..stats._noise_floor import default_metric


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


def sample_size_curve(
    images: VDNAImageHist | VDNAImageMeans,
    reference: VDNA,
    sizes: Sequence[int],
    seeds: int | Sequence[int] = 10,
    metric: str | None = None,
    neurons: Neurons | None = None,
    layers: Sequence[str] | None = None,
) -> SampleSizeCurve:
    """Distances from random subsets of ``images`` of each size to ``reference``.

    ``metric``: a registered distance computed from per-image DNAs: ``"emd"`` (per-image
    histograms, histogram reference; the default for them), ``"fd"`` (per-image means,
    layer-Gaussian reference: FD averaged over ``layers``, all by default; the default for means)
    or ``"nfd"`` (per-image means, gaussian reference). ``seeds``: how many seeds (0, 1, ...) or which.
    """
    distance = get_distance(metric or default_metric(images))
    if distance.image_type is None:
        raise ValueError(f"{distance.name} is not computed from per-image DNAs")
    if not distance.resamples(images):
        raise TypeError(f"metric {distance.name!r} needs per-image DNAs of type {distance.image_type}, "
                        f"got {type(images).__name__}")
    if not distance.compares(reference):
        raise TypeError(f"metric {distance.name!r} needs a {' or '.join(distance.set_types)} reference, "
                        f"got {type(reference).__name__}")
    if layers is not None:
        if neurons is not None:
            raise ValueError("pass either neurons= or layers=, not both")
        neurons = {layer: None for layer in layers}
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
            subset = distance.set_of(images, order[:size])
            distances[row, column] = float(distance.compare(subset, reference, neurons=neurons))
    return SampleSizeCurve(distance.name, sizes, distances)


def noise_floor_beside(
    curve: SampleSizeCurve,
    images: VDNAImageHist | VDNAImageMeans,
    reference: VDNA | int,
    seed: int = 0,
    layers: Sequence[str] | None = None,
) -> SampleSizeCurve | None:
    """The noise floor beside ``curve`` (:func:`vdna.stats.noise_floor_curve`), as a curve of its own.

    Drawn as many times as the curve has seeds, at the curve's sizes that leave the reference's
    stand-in aside (``reference``: the reference's per-image DNAs, pooled with the images, or its
    size); None when no size can have one.
    """
    other, largest = noise_floor_limits(images, reference)
    sizes = [size for size in curve.sizes if size <= largest]
    if not sizes or other < 2:
        return None
    distances = noise_floor_curve(images, sizes, reference, draws=curve.distances.shape[0], seed=seed,
                                  metric=curve.metric, layers=layers)
    return SampleSizeCurve(curve.metric, sizes, distances)


__all__ = ["SampleSizeCurve", "noise_floor_beside", "sample_size_curve"]
