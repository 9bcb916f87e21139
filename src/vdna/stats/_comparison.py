"""How sure is a distance between two image sets? Bootstrap interval, noise floor, permutation test, layer shares.

From per-image DNAs the DNA of any resample of the images follows exactly, without running the
network again (each distance's ``resample``, :mod:`vdna.distances`), so :func:`compare_sets`
reports, besides the distance: the **noise floor** (the mean distance when the images of both sets
are pooled and split at random into sets of the same two sizes, with its spread), the **p-value**
of the permutation test of "both sets come from one source" on those splits, ``(1 + #{null >=
value}) / (1 + permutations)``, a 95% **confidence interval** for the distance between the two
sources from bootstrap resamples (:mod:`vdna.stats._intervals`) with the **estimate** at its centre
(the value with sampling noise removed by the same model), and each layer's value, share of the
total, estimate, interval, noise floor and p-value; on request each unit's value, estimate and noise
floor, from the same resamples.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ..config import RunConfig, StatsConfig, check_setting, option
from ..distances import Distance, get_distance
from ..distances._resampling import Pairs
from ..distances._selection import (
    Neurons,
    NeuronWeights,
    Selection,
    neuron_weights_given,
    select_neurons,
    selection_sizes,
    weights_vector,
)
from ..dna import VDNA, check_comparable
from ._intervals import bootstrap_estimate, bootstrap_interval, unit_estimates
from ._results import LayerShare, SetComparison, UnitStatistics


# -- checks, selection and combination -------------------------------------------------------------
def resampled_metric(metric: str, sets: Sequence[tuple[str, Any]]) -> Distance:
    """The record of ``metric``, checked to resample per-image DNAs and that each of ``sets`` holds them."""
    distance = get_distance(metric)
    if distance.image_type is None:
        raise ValueError(f"{metric} is not computed from per-image DNAs, so it cannot be resampled")
    for position, vdna in sets:
        if not distance.resamples(vdna):
            raise TypeError(
                f"metric {metric!r} needs per-image DNAs of type {distance.image_type} "
                f"(make_vdna(..., distribution_name={distance.per_image_distribution()!r})); "
                f"the {position} is a {type(vdna).__name__}"
            )
    return distance


def _selection(vdna: VDNA, distance: Distance, neurons: Neurons | None) -> Selection:
    selection = select_neurons(vdna, neurons=neurons)
    if not selection or any(index is not None and index.numel() == 0 for _, index in selection):
        raise ValueError("neurons selects no neuron of some layer; name at least one neuron per layer, or None for all")
    if distance.unit == "layer" and any(index is not None for _, index in selection):
        raise ValueError(f"{distance.name} compares whole layers: neurons= may only name layers, each with None (all its neurons)")
    return selection


def _units(distance: Distance, selection: Selection, vdna: VDNA) -> list[tuple[str, int]]:
    """``(layer, compared units)``: its selected neurons, or one unit per layer."""
    return [(layer, 1) for layer, _ in selection] if distance.unit == "layer" else selection_sizes(selection, vdna)


def _unit_weights(distance: Distance, selection: Selection, vdna: VDNA, neuron_weights: NeuronWeights | None) -> np.ndarray:
    """The weight of each compared unit (neuron, or layer) in the total: 1/units, or the given weights."""
    parts = _units(distance, selection, vdna)
    if neuron_weights is None:
        units = sum(size for _, size in parts)
        return np.full(units, 1.0 / units)
    return weights_vector(neuron_weights, parts, distance.unit).numpy()


def set_dna(vdna: VDNA, metric: str = "emd", position: str = "DNA") -> VDNA:
    """The DNA of a whole set that ``metric`` compares: ``vdna`` itself, or the set DNA of per-image DNAs.

    ``histogram-B`` for emd (per-image histograms summed), ``gaussian`` for nfd and
    ``layer-gaussian`` for fd (fitted to per-image means); ``position`` names ``vdna`` in errors.
    """
    return get_distance(metric).set_dna(vdna, position)


def _full_values(
    distance: Distance, first: VDNA, second: VDNA, neurons: Neurons | None, neuron_weights: NeuronWeights | None,
) -> tuple[float, dict[str, np.ndarray]]:
    """The distance of two sets' DNAs as the distance gives it, and its per-layer unit values."""
    total = distance.compare(first, second, neurons=neurons, neuron_weights=neuron_weights)
    per_layer = distance.unit_values(first, second, neurons=neurons)
    return float(total), {layer: values.cpu().numpy() for layer, values in per_layer.items()}


def _layer_parts(full: Mapping[str, np.ndarray], unit_weights: np.ndarray, sizes: Mapping[str, int]) -> dict[str, LayerShare]:
    """Each layer's value (mean of its units) and share of the weighted total; ``sizes``: its selected neurons."""
    contributions, start = {}, 0
    for layer, values in full.items():
        contributions[layer] = float(unit_weights[start : start + values.size] @ values)
        start += values.size
    total = sum(contributions.values())
    return {
        layer: LayerShare(neurons=sizes[layer], value=float(values.mean()), share=contributions[layer] / total if total else 0.0)
        for layer, values in full.items()
    }


def replicates(
    distance: Distance, a: VDNA, b: VDNA | None, selection: Selection, paired: Pairs, splits: np.ndarray,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``{layer: (units, resamples)}`` distances between the ``paired`` weighted images, and of ``splits`` against the rest.

    By the distance's own resampler, or, for a distance that has none, by making each resample's set DNAs.
    """
    if distance.resample is None:
        return _materialised(distance, a, b, selection, paired, splits)
    paired_out, split_out = {}, {}
    for layer, index in selection:
        paired_out[layer], split_out[layer] = distance.resample(a, b, layer, index, paired, splits)
    return paired_out, split_out


def _materialised(
    distance: Distance, a: VDNA, b: VDNA | None, selection: Selection, paired: Pairs, splits: np.ndarray,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Resamples compared one at a time, each resample's set DNAs made from the per-image DNAs (exact; slower
    than a distance's own resampler, which compares them all at once)."""
    pooled = a if b is None else a.merge(b)
    images, neurons = np.arange(pooled.num_images), dict(selection)
    units = dict(_units(distance, selection, a))

    def compared(first: np.ndarray, second: np.ndarray) -> dict[str, np.ndarray]:
        columns = [
            distance.unit_values(distance.set_of(pooled, np.repeat(images, first[:, r])),
                                 distance.set_of(pooled, np.repeat(images, second[:, r])), neurons=neurons)
            for r in range(first.shape[1])
        ]
        return {
            layer: np.stack([column[layer].cpu().numpy() for column in columns], axis=1) if columns else np.zeros((size, 0))
            for layer, size in units.items()
        }

    return compared(*paired), compared(splits, 1 - splits)


def totals(per_layer: Mapping[str, np.ndarray], unit_weights: np.ndarray) -> np.ndarray:
    return unit_weights @ np.concatenate(list(per_layer.values()))


def _bootstrap_weights(rng: np.random.Generator, size_a: int, size_b: int, resamples: int) -> tuple[np.ndarray, np.ndarray]:
    """Images of A drawn with replacement on the first side, of B on the second: multinomial counts."""
    first = np.zeros((size_a + size_b, resamples), dtype=np.int32)
    second = np.zeros_like(first)
    first[:size_a] = rng.multinomial(size_a, np.full(size_a, 1.0 / size_a), size=resamples).T
    second[size_a:] = rng.multinomial(size_b, np.full(size_b, 1.0 / size_b), size=resamples).T
    return first, second


def _split_weights(rng: np.random.Generator, pooled: int, size: int, splits: int) -> np.ndarray:
    """0/1 ``(pooled, splits)``: ``size`` images drawn without replacement per split (the rest form the other set)."""
    order = rng.permuted(np.tile(np.arange(pooled), (splits, 1)), axis=1)
    membership = np.zeros((pooled, splits), dtype=np.int32)
    membership[order[:, :size], np.arange(splits)[:, None]] = 1
    return membership


_COLUMNS_AT_ONCE = 512
"""Resamples (or splits) compared at a time: each layer's per-unit distances of a chunk are reduced to its
mean and the weighted total before the next, so memory does not grow with their number."""


def _reduced(
    distance: Distance,
    a: VDNA,
    b: VDNA,
    selection: Selection,
    unit_weights: np.ndarray,
    paired: Pairs | None = None,
    splits: tuple[np.random.Generator, int, int, int] | None = None,
    units: bool = False,
) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray] | None]:
    """Each layer's mean distance and the weighted total, per resample of ``paired`` or per split drawn from
    ``splits`` (``(rng, pooled images, first set's size, count)``, drawn chunk after chunk in one stream);
    with ``units``, each unit's distances too: ``(units, resamples)`` for ``paired``, their mean for ``splits``."""
    images = a.num_images + b.num_images
    count = paired[0].shape[1] if paired is not None else splits[3]
    layer_means = {layer: np.empty(count) for layer, _ in selection}
    total = np.empty(count)
    kept: dict[str, list[np.ndarray]] = {layer: [] for layer, _ in selection}
    none = np.zeros((images, 0), dtype=np.int32)
    for start in range(0, count, _COLUMNS_AT_ONCE):
        stop = min(count, start + _COLUMNS_AT_ONCE)
        if paired is not None:
            chunk, _ = replicates(distance, a, b, selection, (paired[0][:, start:stop], paired[1][:, start:stop]), none)
        else:
            rng, pooled, size, _ = splits
            _, chunk = replicates(distance, a, b, selection, (none, none), _split_weights(rng, pooled, size, stop - start))
        for layer, values in chunk.items():
            layer_means[layer][start:stop] = values.mean(axis=0)
            if units:
                kept[layer].append(values if paired is not None else values.sum(axis=1, keepdims=True))
        total[start:stop] = totals(chunk, unit_weights)
    if not units:
        return layer_means, total, None
    joined = {layer: np.concatenate(parts, axis=1) for layer, parts in kept.items()}
    return layer_means, total, joined if paired is not None else {layer: sums.sum(axis=1) / count for layer, sums in joined.items()}


def available_memory() -> int:
    """Bytes of memory this machine can still give (Linux's MemAvailable; elsewhere, the physical memory)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(images: int, layers: int, resamples: int, permutations: int, units: int = 0) -> None:
    """Refuse, before any work, resamples and permutations whose distances would not fit in memory, saying what would.

    Kept for the result: each resample's and split's total (float64, and a Python float in the
    result) and per-layer distance (float64); the bootstrap's per-image weights (two int32 and,
    while compared, their int64 copies); with ``units`` (per-unit statistics), each unit's distance per
    resample (float64); chunks are compared :data:`_COLUMNS_AT_ONCE` at a time.
    Called with no images and one layer, it is the least any comparison needs.
    """
    per_split = 8 * (layers + 1) + 40
    per_resample = per_split + 2 * 12 * images + 8 * units
    needed = per_resample * resamples + per_split * permutations
    available = available_memory() // 2  # leave room for the DNAs themselves and the rest of the process
    if needed > available:
        fits_permutations = max(0, (available - per_resample * resamples) // per_split)
        fits_resamples = max(0, (available - per_split * permutations) // per_resample)
        raise ValueError(
            f"{option('resamples')} {resamples} and {option('permutations')} {permutations} would keep "
            f"{'at least ' if images == 0 else ''}{needed / 2**30:.1f} GiB of distances, more than the {available / 2**30:.1f} GiB this machine can spare: "
            f"with {option('resamples')} {resamples}, {option('permutations')} up to {fits_permutations} fit "
            f"(with {option('permutations')} {permutations}, {option('resamples')} up to {fits_resamples})"
        )


# -- public API ------------------------------------------------------------------------------------
def resampled_distances(
    a: VDNA,
    b: VDNA | None,
    first: np.ndarray,
    second: np.ndarray | None = None,
    metric: str = "emd",
    neurons: Neurons | None = None,
) -> dict[str, np.ndarray]:
    """Distances between weighted resamples of per-image DNAs, from the stored data: ``{layer: (units, resamples)}``.

    The images are those of ``a`` then those of ``b`` (``b=None``: of ``a`` alone). ``first`` and
    ``second`` are non-negative integer weights ``(images, resamples)``: how many times resample
    ``r`` takes each image into the first and the second set; ``second=None`` puts every image
    not in the first set (0/1 weights) into the second. Units are the selected neurons (``emd``,
    ``nfd``) or the layer (``fd``, one row). Column ``r`` is what the distance gives for the DNAs
    of those images, e.g. ``EMD(both.subset(np.repeat(range(images), first[:, r])), both.subset(...),
    return_neuron_wise=True)`` (``both`` the images of ``a`` and ``b``): EMD bit for bit, NFD and
    FD to round-off.
    """
    distance = resampled_metric(metric, [("first set", a)] + ([] if b is None else [("second set", b)]))
    if b is not None:
        check_comparable(a, b)
    images = a.num_images + (0 if b is None else b.num_images)
    smallest = 2 if distance.unit == "layer" else 1
    checked = []
    for name, weights in (("first", first), ("second", second)):
        if weights is None:
            continue
        weights = np.asarray(weights)
        if weights.ndim != 2 or weights.shape[0] != images or not np.issubdtype(weights.dtype, np.integer):
            raise ValueError(f"{name} must be integer weights of shape ({images}, resamples), got {weights.dtype} {weights.shape}")
        if weights.size and weights.min() < 0:
            raise ValueError(f"{name} weights must not be negative")
        if weights.shape[1] and weights.sum(axis=0).min() < smallest:
            raise ValueError(f"every resample needs at least {smallest} image(s) in the {name} set")
        checked.append(weights.astype(np.int64))
    if second is None:
        if checked[0].size and (checked[0].max() > 1 or (images - checked[0].sum(axis=0)).min() < smallest):
            raise ValueError(
                f"with second=None, first must hold 0/1 weights leaving at least {smallest} image(s) to the second set"
            )
        paired, splits = (np.zeros((images, 0), np.int64),) * 2, checked[0]
    else:
        if checked[0].shape != checked[1].shape:
            raise ValueError(f"first and second must have equal shapes, got {checked[0].shape} and {checked[1].shape}")
        paired, splits = (checked[0], checked[1]), np.zeros((images, 0), np.int64)
    distances = replicates(distance, a, b, _selection(a, distance, neurons), paired, splits)
    return distances[1] if second is None else distances[0]


def compare_sets(
    a: VDNA,
    b: VDNA,
    metric: str = "emd",
    resamples: int = StatsConfig.resamples,
    permutations: int = StatsConfig.permutations,
    seed: int = RunConfig.seed,
    neurons: Neurons | None = None,
    neuron_weights: NeuronWeights | None = None,
    *,
    units: bool = False,
    weights: NeuronWeights | None = None,
) -> SetComparison:
    """The distance between two image sets with its estimate, 95% bootstrap interval, noise floor and p-value.

    ``metric``: a registered distance (:func:`vdna.distances.list_distances`) computed from
    per-image DNAs; ``a`` and ``b`` are per-image DNAs of the two sets (``image-histogram-B`` for
    ``"emd"``, ``image-mean`` for ``"nfd"`` and ``"fd"``). ``value`` is the distance of their set
    DNAs, e.g. ``EMD(a.subset(), b.subset(), neurons=..., neuron_weights=...)`` (``NFD`` of
    ``.gaussian()``, ``FD`` of ``.layer_gaussian()``; for ``fd``, ``neurons`` may only name whole
    layers, ``{layer: None}``, and ``neuron_weights`` are per layer; ``weights=`` is their former name).
    ``resamples`` bootstrap resamples (the images of each set drawn with replacement) give the
    interval and the estimate (the value with sampling noise removed as the interval removes it,
    :func:`~vdna.stats.bootstrap_estimate`); ``permutations`` random splits of the pooled images give
    the noise floor and the p-value ("at least as far apart": at least the value, or at most it for
    a distance whose record says larger is closer). With ``units``, the result's ``units`` give each
    unit's (neuron's, or fd's layer's) value, estimate and noise floor from the same resamples. The
    same inputs and ``seed`` give the same numbers, whatever the number of threads.
    """
    neuron_weights = neuron_weights_given(neuron_weights, weights)
    distance = resampled_metric(metric, [("first set", a), ("second set", b)])
    check_comparable(a, b)
    resamples = check_setting(StatsConfig, "resamples", resamples)
    permutations = check_setting(StatsConfig, "permutations", permutations)
    seed = check_setting(RunConfig, "seed", seed)
    for name, vdna in (("first", a), ("second", b)):
        if vdna.num_images < 2:
            raise ValueError(f"the {name} set has {vdna.num_images} image(s); comparing sets needs at least 2 images each")
    selection = _selection(a, distance, neurons)
    unit_weights = _unit_weights(distance, selection, a, neuron_weights)
    value, full = _full_values(distance, distance.set_dna(a, "first set"), distance.set_dna(b, "second set"), neurons,
                               neuron_weights)

    size_a, size_b = a.num_images, b.num_images
    check_memory(size_a + size_b, len(selection), resamples, permutations, unit_weights.size if units else 0)
    rng = np.random.default_rng(seed)
    paired = _bootstrap_weights(rng, size_a, size_b, resamples)
    bootstrap_layers, bootstrap_totals, bootstrap_units = _reduced(distance, a, b, selection, unit_weights, paired=paired,
                                                                   units=units)
    null_layers, null_totals, null_units = _reduced(distance, a, b, selection, unit_weights,
                                                    splits=(rng, size_a + size_b, size_a, permutations), units=units)
    layers = {
        layer: replace(part, **_spread(part.value, bootstrap_layers[layer], null_layers[layer], distance))
        for layer, part in _layer_parts(full, unit_weights, dict(selection_sizes(selection, a))).items()
    }
    per_unit = None
    if units:
        indices = {layer: np.arange(values.size) if index is None or distance.unit == "layer" else index.cpu().numpy()
                   for (layer, index), values in zip(selection, full.values())}
        per_unit = {
            layer: UnitStatistics(indices[layer], values, unit_estimates(values, bootstrap_units[layer], distance.interval),
                                  null_units[layer])
            for layer, values in full.items()
        }
    return SetComparison(
        metric=metric, value=value, **_spread(value, bootstrap_totals, null_totals, distance), interval=distance.interval,
        size_a=size_a, size_b=size_b, resamples=resamples, permutations=permutations, seed=int(seed),
        layers=layers, bootstrap=tuple(bootstrap_totals.tolist()), null=tuple(null_totals.tolist()), units=per_unit,
    )


def _spread(value: float, bootstrap: np.ndarray, null: np.ndarray, distance: Distance) -> dict[str, Any]:
    """Estimate, interval, noise floor, its spread and p-value of ``value`` from its bootstrap and null distances.

    The p-value counts the splits at least as far apart as the sets: at least ``value``, or at most
    it for a distance whose larger values mean closer sets.
    """
    as_far = null >= value if distance.lower_is_closer else null <= value
    return {
        "estimate": bootstrap_estimate(value, bootstrap, method=distance.interval),
        "ci": bootstrap_interval(value, bootstrap, method=distance.interval),
        "noise_floor": float(null.mean()),
        "noise_floor_spread": float(null.std(ddof=1)) if null.size > 1 else 0.0,
        "p_value": float((1 + np.count_nonzero(as_far)) / (1 + null.size)),
    }


def layer_shares(
    a: VDNA,
    b: VDNA,
    metric: str = "emd",
    neurons: Neurons | None = None,
    neuron_weights: NeuronWeights | None = None,
    *,
    weights: NeuronWeights | None = None,
) -> dict[str, LayerShare]:
    """Each layer's distance and share of the total distance between two sets, early to late, from their DNAs alone.

    ``a`` and ``b``: the DNAs ``metric`` compares (``histogram-B`` for emd, ``gaussian`` for nfd,
    ``layer-gaussian`` for fd) or per-image DNAs (their sets' DNAs are used). ``neurons`` and
    ``neuron_weights`` as :func:`compare_sets` takes them. The shares are those of :func:`compare_sets`'s
    ``layers``, without interval, noise floor or p-value (None): nothing is resampled.
    """
    neuron_weights = neuron_weights_given(neuron_weights, weights)
    distance = get_distance(metric)
    first, second = distance.set_dna(a, "first set"), distance.set_dna(b, "second set")
    check_comparable(first, second)
    selection = _selection(first, distance, neurons)
    _, full = _full_values(distance, first, second, neurons, neuron_weights)
    unit_weights = _unit_weights(distance, selection, first, neuron_weights)
    return _layer_parts(full, unit_weights, dict(selection_sizes(selection, first)))


__all__ = ["compare_sets", "layer_shares", "replicates", "resampled_distances", "resampled_metric", "set_dna", "totals"]
