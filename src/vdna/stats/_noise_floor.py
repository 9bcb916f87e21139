"""The noise floor beside a sample-size curve: what it would read if the images and the reference came from one source."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..config import RunConfig, check_count, check_setting
from ..distances import get_distance
from ..distances._selection import Neurons
from ..dna import VDNA, check_comparable
from ._comparison import _selection, _unit_weights, replicates, resampled_metric, totals


def default_metric(images: VDNA) -> str:
    """The distance a curve of ``images`` takes by default: emd for per-image histograms, fd for per-image means."""
    return "emd" if images.type == get_distance("emd").image_type else "fd"


def _pooled_reference(reference: VDNA | int) -> VDNA | None:
    """The reference's per-image DNAs, pooled with the images; None when ``reference`` is only a size."""
    return None if isinstance(reference, (int, np.integer)) and not isinstance(reference, bool) else reference


def noise_floor_limits(images: VDNA, reference: VDNA | int) -> tuple[int, int]:
    """``(m, largest)`` for :func:`noise_floor_curve`: the reference stand-in's size ``m``, and the
    largest subset size that leaves ``m`` of the pooled images aside."""
    pooled_reference = _pooled_reference(reference)
    other_size = check_count("reference", reference if pooled_reference is None else pooled_reference.num_images)
    count = len(images) + (0 if pooled_reference is None else len(pooled_reference))
    return other_size, count - other_size


def noise_floor_curve(
    images: VDNA,
    sizes: Sequence[int],
    reference: VDNA | int,
    draws: int = 10,
    seed: int = 0,
    metric: str | None = None,
    neurons: Neurons | None = None,
    layers: Sequence[str] | None = None,
) -> np.ndarray:
    """The noise floor of a sample-size curve: what it would read if the images and the reference came from one source.

    The images of ``images`` and, when ``reference`` is per-image DNAs, of the reference are
    pooled, as :func:`compare_sets` pools two sets for its noise floor. For each draw the pool is
    shuffled once; its last ``m`` images stand for the reference (``m`` the reference's image
    count, or ``reference`` itself when it is a number: then the stand-in comes from ``images``
    alone) and its first ``size`` images, growing prefixes of the same order, for the subsets, as
    :func:`vdna.apps.sample_size.sample_size_curve` draws them. Every size must leave ``m``
    images aside (``size + m <= pooled images``). ``metric``, ``neurons`` and ``layers`` (fd: the
    layers averaged, all by default) are as for ``sample_size_curve``. Returns the distances
    ``(draws, sizes)``, sizes ascending: their mean over draws is the noise floor per size, their
    standard deviation its spread. Draw ``d`` shuffles with the ``d``-th ``permutation`` of
    ``numpy.random.default_rng(seed)``.
    """
    if metric is None:
        metric = default_metric(images)
    pooled_reference = _pooled_reference(reference)
    sets = [("images", images)] + ([] if pooled_reference is None else [("reference", pooled_reference)])
    distance = resampled_metric(metric, sets)
    if pooled_reference is not None:
        check_comparable(images, pooled_reference)
    draws = check_count("draws", draws)
    seed = check_setting(RunConfig, "seed", seed)
    other_size, largest = noise_floor_limits(images, reference)
    count = largest + other_size
    sizes = sorted({int(size) for size in sizes})
    if not sizes or sizes[0] < 2 or sizes[-1] > largest or other_size < 2:
        raise ValueError(
            f"with {count} pooled images and a reference of {other_size} (at least 2), sizes must lie in "
            f"[2, {largest}] so that each subset and the reference's stand-in are disjoint, got {sizes}"
        )
    if layers is not None:
        if neurons is not None:
            raise ValueError("pass either neurons= or layers=, not both")
        neurons = {layer: None for layer in layers}
    selection = _selection(images, distance, neurons)
    unit_weights = _unit_weights(distance, selection, images, None)
    rng = np.random.default_rng(seed)
    first = np.zeros((count, draws * len(sizes)), dtype=np.int32)
    second = np.zeros_like(first)
    for draw in range(draws):
        order = rng.permutation(count)
        for column, size in enumerate(sizes):
            first[order[:size], draw * len(sizes) + column] = 1
            second[order[count - other_size :], draw * len(sizes) + column] = 1
    paired, _ = replicates(distance, images, pooled_reference, selection, (first, second), np.zeros((count, 0), dtype=np.int32))
    return totals(paired, unit_weights).reshape(draws, len(sizes))


__all__ = ["default_metric", "noise_floor_curve", "noise_floor_limits"]
