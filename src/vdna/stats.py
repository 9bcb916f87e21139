"""How sure is a distance between two image sets? Bootstrap intervals, noise floor, permutation test, layer shares.

A distance between finite image sets mixes the difference between their sources with sampling
noise: two halves of one dataset are not at distance 0. From per-image DNAs (``image-histogram-B``
for EMD, ``image-mean`` for NFD and FD) the DNA of any resample of the images follows exactly,
without running the network again, so :func:`compare_sets` reports, besides the distance:

- the **noise floor**: the mean distance when the images of both sets are pooled and split at
  random into sets of the same two sizes (what the distance reads when both come from one
  source), with the standard deviation of those null distances;
- the **p-value** of the permutation test of "both sets come from one source" on those splits,
  ``(1 + #{null >= value}) / (1 + permutations)``;
- a 95% **confidence interval** for the distance between the two sources, from resampling the
  images of each set with replacement (bootstrap). A distance between finite sets is biased
  upward (noise adds distance), and a bootstrap resample, a sample of the sample, adds about as
  much noise again; so the plain percentile interval of the bootstrap distances lies above the
  value and misses. The basic (reverse-percentile) interval ``(2 v - q_97.5, 2 v - q_2.5)``
  reflects them about the value, which removes the bias where the noise adds up linearly: for
  NFD, a sum of squared differences (``E[(m1 - m2)**2]`` grows by the means' variances). To EMD, a
  first-power (Wasserstein-1) distance, noise adds roughly in quadrature (``d**2 ~ true**2 +
  noise**2``), so its interval is the basic interval of the squared distance,
  ``sqrt(2 v**2 - q(d*^2))``. FD's bias grows faster than the noise (the trace over hundreds of
  dimensions estimated from few images; a resample with repeats holds fewer distinct images),
  so neither removes it: FD takes the squared-scale interval too, which covers best of the
  three, yet not well with few images of sets from one source. All are clamped at 0
  (:data:`INTERVALS`); ``experiments/stats_checks.py`` measures their coverage on real images;
- each layer's value, share of the total, noise floor, interval and p-value.

:func:`layer_shares` gives the layers' values and shares from the sets' DNAs alone (nothing
resampled), :func:`noise_floor_curve` the noise floor beside a sample-size curve,
:func:`resampled_distances` the distances of any weighted resamples, :func:`set_dna` the DNA of a
whole set that a metric compares.

A resample is a vector of per-image weights: multinomial counts for the bootstrap, 0/1
membership for a split (:func:`resampled_distances` takes any). For EMD, one compiled pass per
layer, in parallel over neurons, sorts each neuron's stored (image, bin, count) entries by bin
once; then bin after bin every resample's count is the sum of ``count * weight`` over the images
storing that bin (integers, vectorised over resamples), and the EMD of every resample follows
from running sums, as :func:`vdna.distances.emd` computes it, so the full sets' EMD is reproduced
bit for bit. A split's second set is the pooled counts minus its first. Cost per layer:
``O(entries * resamples)`` multiply-adds plus ``O(neurons * occupied bin range * resamples)``,
where ``entries`` is the number of stored (image, neuron, bin) counts; memory ``O(images *
resamples)`` for the weights plus one neuron's entries per thread. Gaussian DNAs of a resample
are weighted means and variances of the per-image means (compiled, parallel over neurons); FD
takes the trace of the matrix square root from the singular values of the product of the two
resamples' centred samples (on one torch thread), never forming a covariance wider than the
number of images. EMD and NFD results do not depend on the number of threads.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numba
import numpy as np
import torch

from .config import option
from .distances import (
    EMD,
    FD,
    NFD,
    NeuronSelection,
    Weights,
    frechet_1d,
    select_neurons,
    selection_sizes,
    weights_vector,
)
from .distributions import VDNAGauss, VDNAHist, VDNAImageHist, VDNAImageMeans, VDNALayerGauss
from .dna import VDNA, check_comparable
from .kernels import torch_threads

__all__ = [
    "CONFIDENCE",
    "INTERVALS",
    "INTERVAL_METHODS",
    "METRICS",
    "LayerShare",
    "SetComparison",
    "bootstrap_interval",
    "compare_sets",
    "layer_shares",
    "layer_table",
    "noise_floor_curve",
    "noise_floor_limits",
    "resampled_distances",
    "set_dna",
]

CONFIDENCE = 0.95
METRICS = ("emd", "nfd", "fd")
INTERVAL_METHODS = ("squared", "basic", "percentile")
# The interval compare_sets gives per metric: the method that covers best in experiments/stats_checks.py.
INTERVALS = {"emd": "squared", "nfd": "basic", "fd": "squared"}
_RESAMPLES_PER_PASS = 256  # resamples of one neuron summed together: their weights stay in the L2 cache
_INT32_LIMIT = 2**31 - 1
_NEURONS_PER_TASK = 4  # neurons a thread takes at a time: threads share the work even when one is held up
_FD_BATCH_VALUES = 2**22  # samples gathered at a time for FD's resamples (32 MiB of float64)

Selection = list[tuple[str, "torch.Tensor | None"]]
Pairs = tuple[np.ndarray, np.ndarray]  # per-image weights (images, resamples) of the two sets compared


# -- intervals -------------------------------------------------------------------------------------
def bootstrap_interval(
    value: float, replicates: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE, method: str = "squared"
) -> tuple[float, float]:
    """A ``confidence`` interval for the distance between two sources from its bootstrap ``replicates``.

    With ``q_low``, ``q_high`` the quantiles of the replicates ``d*`` and ``v`` the value:
    ``"squared"`` (the default): the basic interval of the squared distance, ``sqrt(2 v**2 - q_high(d*^2))``
    to ``sqrt(2 v**2 - q_low(d*^2))`` (each clamped at 0); ``"basic"`` (reverse percentile):
    ``(2 v - q_high, 2 v - q_low)``, clamped at 0; ``"percentile"``: ``(q_low, q_high)``.
    """
    if method not in INTERVAL_METHODS:
        raise ValueError(f"method must be one of {INTERVAL_METHODS}, got {method!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    values = np.asarray(replicates, dtype=np.float64)
    if values.ndim != 1 or values.size == 0 or not np.isfinite(values).all():
        raise ValueError("replicates must be a non-empty 1-D sequence of finite distances")
    levels = [(1 - confidence) / 2, (1 + confidence) / 2]
    if method == "percentile":
        low, high = np.quantile(values, levels)
        return float(low), float(high)
    if method == "basic":
        low, high = np.quantile(values, levels)
        return max(0.0, 2 * value - float(high)), max(0.0, 2 * value - float(low))
    low, high = np.quantile(values**2, levels)
    return math.sqrt(max(0.0, 2 * value**2 - float(high))), math.sqrt(max(0.0, 2 * value**2 - float(low)))


# -- results ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerShare:
    """One layer's part of a distance: its value and its share of the total, with its statistics when measured.

    ``value``: the layer's distance (mean over its selected neurons; for fd the layer's FD).
    ``share``: the layer's weighted part of the total over the total (the shares add up to 1).
    ``ci``, ``noise_floor``, ``noise_floor_spread``, ``p_value``: as in :class:`SetComparison`,
    from :func:`compare_sets`; None from :func:`layer_shares` (full sets only, nothing resampled).
    """

    neurons: int
    value: float
    share: float
    ci: tuple[float, float] | None = None
    noise_floor: float | None = None
    noise_floor_spread: float | None = None
    p_value: float | None = None

    @property
    def excess(self) -> float | None:
        """The value above the noise floor (None when the noise floor was not measured)."""
        return None if self.noise_floor is None else self.value - self.noise_floor

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return {**asdict(self), "ci": None if self.ci is None else list(self.ci), "excess": self.excess}


@dataclass(frozen=True)
class SetComparison:
    """A distance between two image sets with its interval, noise floor and permutation p-value.

    ``value``: the distance of the full sets. ``ci``: the 95% bootstrap interval of the distance
    between the sources (``bootstrap_interval``'s method ``interval``: ``INTERVALS[metric]``).
    ``noise_floor``/``noise_floor_spread``: mean and standard deviation of the distance between
    random splits of the pooled images into sets of sizes ``size_a`` and ``size_b``.
    ``p_value``: the share of those splits at least as far apart as the sets (plus one, over
    ``permutations`` plus one): at least ``1 / (permutations + 1)``. ``layers``: per layer.
    ``bootstrap`` and ``null``: the distances of every resample and every split.
    """

    metric: str
    value: float
    ci: tuple[float, float]
    noise_floor: float
    noise_floor_spread: float
    p_value: float
    size_a: int
    size_b: int
    resamples: int
    permutations: int
    seed: int
    layers: Mapping[str, LayerShare]
    interval: str = "squared"  # the method of bootstrap_interval that gave ci
    confidence: float = CONFIDENCE
    bootstrap: tuple[float, ...] = field(default=(), repr=False)
    null: tuple[float, ...] = field(default=(), repr=False)

    @property
    def excess(self) -> float:
        """The value above the noise floor: how much of the distance is not sampling noise."""
        return self.value - self.noise_floor

    def to_dict(self, samples: bool = False) -> dict[str, Any]:
        """Plain JSON-ready values (with every resample's and split's distance when ``samples``)."""
        out = asdict(self)
        out["ci"] = list(self.ci)
        out["excess"] = self.excess
        out["layers"] = {layer: share.to_dict() for layer, share in self.layers.items()}
        if samples:
            out["bootstrap"], out["null"] = list(self.bootstrap), list(self.null)
        else:
            del out["bootstrap"], out["null"]
        return out

    def summary(self) -> str:
        """One line: value, interval, noise floor, excess, p-value and sizes."""
        return (
            f"{self.metric} {self.value:.4g} ({100 * self.confidence:g}% CI {self.ci[0]:.4g} to {self.ci[1]:.4g}), "
            f"noise floor {self.noise_floor:.4g} +- {self.noise_floor_spread:.2g}, excess {self.excess:.4g}, "
            f"p = {self.p_value:.3g} ({self.permutations} permutations, {self.resamples} resamples; "
            f"{self.size_a} vs {self.size_b} images)"
        )

    def reading(self) -> str:
        """One sentence: the value against its noise floor, and what the p-value says."""
        ratio = f"{self.value / self.noise_floor:.3g} times" if self.noise_floor > 0 else "above"
        extreme = " (no random split of the pooled images was as far apart)" if self.p_value * (self.permutations + 1) <= 1 else ""
        verdict = "the sets differ beyond sampling noise" if self.p_value < 0.05 else "no difference beyond sampling noise shows"
        return f"The distance is {ratio} the noise floor; p = {self.p_value:.2g}{extreme}: {verdict}."

    def __str__(self) -> str:
        return f"{self.summary()}\n{layer_table(self.layers)}"


def layer_table(layers: Mapping[str, LayerShare]) -> str:
    """Layers as a text table, in their order: neurons, value, share, and interval, noise floor, p-value when measured."""
    width = max([5, *(len(layer) for layer in layers)])
    measured = all(part.noise_floor is not None for part in layers.values())
    lines = [f"{'layer':<{width}}  neurons      value   share" + (f"  {'95% CI':>19}  noise floor +- spread        p" if measured else "")]
    for layer, part in layers.items():
        line = f"{layer:<{width}}  {part.neurons:7d}  {part.value:9.4g}  {100 * part.share:5.1f}%"
        if measured:
            interval = f"{part.ci[0]:.4g} to {part.ci[1]:.4g}"
            line += f"  {interval:>19}  {part.noise_floor:11.4g} +- {part.noise_floor_spread:<6.2g}  {part.p_value:7.3g}"
        lines.append(line)
    return "\n".join(lines)


# -- the compiled EMD of many resamples ------------------------------------------------------------
@numba.njit(inline="always", boundscheck=False)
def _widen_range(offsets, bins, neurons, neuron, low, high):  # pragma: no cover - compiled
    """``(low, high)`` widened to the first and last non-empty bin of ``neuron`` in every image."""
    for image in range((offsets.shape[0] - 1) // neurons):
        row = image * neurons + neuron
        start, end = offsets[row], offsets[row + 1]
        if start < end:
            low = min(low, np.int64(bins[start]))
            high = max(high, np.int64(bins[end - 1]))
    return low, high


@numba.njit(inline="always", boundscheck=False)
def _count_entries(offsets, bins, counts, neurons, neuron, low, first_image, starts, pool, row_totals):  # pragma: no cover
    """Per bin (from ``low``): how many images store it (into ``starts[k + 1]``) and their counts' sum; per image its total."""
    for image in range((offsets.shape[0] - 1) // neurons):
        row = image * neurons + neuron
        total = 0
        for entry in range(offsets[row], offsets[row + 1]):
            k = np.int64(bins[entry]) - low
            starts[k + 1] += 1
            pool[k] += counts[entry]
            total += counts[entry]
        row_totals[first_image + image] = total


@numba.njit(inline="always", boundscheck=False)
def _place_entries(offsets, bins, counts, neurons, neuron, low, first_image, next_slot, slot_image, slot_count):  # pragma: no cover
    for image in range((offsets.shape[0] - 1) // neurons):
        row = image * neurons + neuron
        for entry in range(offsets[row], offsets[row + 1]):
            k = np.int64(bins[entry]) - low
            slot = next_slot[k]
            slot_image[slot] = first_image + image
            slot_count[slot] = counts[entry]
            next_slot[k] = slot + 1


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _entries_by_bin(offsets_a, bins_a, counts_a, offsets_b, bins_b, counts_b, neurons, neuron, total_bins, kind):  # pragma: no cover
    """One neuron's stored entries of every image (A's then B's), sorted by bin.

    Returns the first and last non-empty bin (``low > high`` when there is none), where each
    bin's entries start (``width + 1``, from ``low``), their images and counts (as ``kind``),
    each bin's pooled count and each image's total count.
    """
    images_a = (offsets_a.shape[0] - 1) // neurons
    images = images_a + (offsets_b.shape[0] - 1) // neurons
    low, high = _widen_range(offsets_a, bins_a, neurons, neuron, np.int64(total_bins), np.int64(-1))
    low, high = _widen_range(offsets_b, bins_b, neurons, neuron, low, high)
    width = max(high - low + 1, 0)
    starts = np.zeros(width + 1, dtype=np.int64)
    pool = np.zeros(width, dtype=np.int64)
    row_totals = np.zeros(images, dtype=np.int64)
    _count_entries(offsets_a, bins_a, counts_a, neurons, neuron, low, 0, starts, pool, row_totals)
    _count_entries(offsets_b, bins_b, counts_b, neurons, neuron, low, images_a, starts, pool, row_totals)
    for k in range(width):
        starts[k + 1] += starts[k]
    next_slot = starts[:width].copy()
    slot_image = np.empty(starts[width], dtype=np.int32)
    slot_count = np.empty(starts[width], dtype=kind.dtype)
    _place_entries(offsets_a, bins_a, counts_a, neurons, neuron, low, 0, next_slot, slot_image, slot_count)
    _place_entries(offsets_b, bins_b, counts_b, neurons, neuron, low, images_a, next_slot, slot_image, slot_count)
    return low, high, starts, slot_image, slot_count, pool, row_totals


@numba.njit(inline="always", boundscheck=False)
def _weighted_totals(row_totals, weights, active, start, stop):  # pragma: no cover - compiled
    totals = np.zeros(stop - start, dtype=np.int64)
    for image in range(row_totals.shape[0]):
        if active[image]:
            weight = weights[image, start:stop]
            for r in range(stop - start):
                totals[r] += row_totals[image] * weight[r]
    return totals


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _resampled_emds(starts, slot_image, slot_count, pool, row_totals, first, first_active, second, second_active,
                    complement, tail, out):  # pragma: no cover - compiled
    """EMD per resample (column of ``first``) of one neuron, bin by bin, into ``out``.

    A resample's count in bin ``k`` is the sum over the images storing ``k`` of count times the
    image's weight; the second histogram's likewise from ``second``, or with ``complement`` the
    pooled count minus the first's. Running sums are float64 (exact: integers below 2**53), and
    |cdf1 - cdf2| is summed from bin 0 as :func:`vdna.distances.emd` sums it, the bins before the
    first non-empty one adding exactly 0. ``tail``: the bins after the last non-empty one.
    """
    width = pool.shape[0]
    pool_total = row_totals.sum()
    for chunk in range(0, first.shape[1], _RESAMPLES_PER_PASS):
        stop = min(first.shape[1], chunk + _RESAMPLES_PER_PASS)
        resamples = stop - chunk
        first_totals = _weighted_totals(row_totals, first, first_active, chunk, stop)
        if complement:
            second_totals = pool_total - first_totals
        else:
            second_totals = _weighted_totals(row_totals, second, second_active, chunk, stop)
        first_scale = 1.0 / first_totals.astype(np.float64)
        second_scale = 1.0 / second_totals.astype(np.float64)
        first_bin = np.zeros(resamples, dtype=first.dtype)
        second_bin = np.zeros(resamples, dtype=first.dtype)
        first_running = np.zeros(resamples)
        second_running = np.zeros(resamples)
        distance = np.zeros(resamples)
        pool_running = 0.0
        for k in range(width):
            for slot in range(starts[k], starts[k + 1]):
                image = slot_image[slot]
                count = slot_count[slot]
                if first_active[image]:
                    weight = first[image, chunk:stop]  # a contiguous row: the loop is vectorised
                    for r in range(resamples):
                        first_bin[r] += count * weight[r]
                if not complement and second_active[image]:
                    weight = second[image, chunk:stop]
                    for r in range(resamples):
                        second_bin[r] += count * weight[r]
            if complement:
                pool_running += pool[k]
                for r in range(resamples):
                    first_running[r] += first_bin[r]
                    first_bin[r] = 0
                    distance[r] += abs(first_running[r] * first_scale[r] - (pool_running - first_running[r]) * second_scale[r])
            else:
                for r in range(resamples):
                    first_running[r] += first_bin[r]
                    second_running[r] += second_bin[r]
                    first_bin[r] = 0
                    second_bin[r] = 0
                    distance[r] += abs(first_running[r] * first_scale[r] - second_running[r] * second_scale[r])
        for r in range(resamples):
            # past the last non-empty bin both cumulative sums are complete: the same term, added bin by bin
            rest = abs(first_totals[r] * first_scale[r] - second_totals[r] * second_scale[r])
            if rest != 0:
                for _ in range(tail):
                    distance[r] += rest
            out[chunk + r] = distance[r] if first_totals[r] > 0 and second_totals[r] > 0 else np.nan


@numba.njit(parallel=True, cache=True, nogil=True, boundscheck=False)
def _emd_resampled_cpu(
    offsets_a, bins_a, counts_a, offsets_b, bins_b, counts_b, neurons, chosen, total_bins,
    first, first_active, second, second_active, split, split_active, paired_out, split_out,
):  # pragma: no cover - compiled
    """EMD per selected neuron and resample, between weighted sums of the images' histograms.

    Images are those of source A then those of B; each weight matrix has a row per image and a
    column per resample. ``paired_out`` ``(chosen, resamples)``: ``first`` against ``second``;
    ``split_out``: ``split`` against the rest of the images (its complement). Each neuron's
    stored entries are sorted by bin once, then every resample's histograms are summed bin by
    bin, in integers of the weights' type, with their EMD.
    """
    for column in numba.prange(chosen.shape[0]):
        low, high, starts, slot_image, slot_count, pool, row_totals = _entries_by_bin(
            offsets_a, bins_a, counts_a, offsets_b, bins_b, counts_b, neurons, chosen[column], total_bins, first
        )
        if high < low:  # no image has counts: EMD is undefined
            paired_out[column] = np.nan
            split_out[column] = np.nan
            continue
        tail = total_bins - 1 - high
        _resampled_emds(
            starts, slot_image, slot_count, pool, row_totals, first, first_active, second, second_active, False,
            tail, paired_out[column],
        )
        _resampled_emds(
            starts, slot_image, slot_count, pool, row_totals, split, split_active, split, split_active, True,
            tail, split_out[column],
        )


@contextlib.contextmanager
def _parallel_chunks(size: int) -> Iterator[None]:
    """Parallel loops hand out ``size`` iterations at a time (not one share per thread), then as before."""
    before = numba.set_parallel_chunksize(size)
    try:
        yield
    finally:
        numba.set_parallel_chunksize(before)


def _csr(vdna: VDNAImageHist, layer: str, empty: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A layer's offsets, bins and counts (``empty``: of no image, with the same types: one compiled signature)."""
    part = vdna.data[layer]
    arrays = part["offsets"].cpu().numpy(), part["bins"].cpu().numpy(), part["counts"].cpu().numpy()
    return (arrays[0][:1], arrays[1][:0], arrays[2][:0]) if empty else arrays


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _largest_row_total(offsets, counts):  # pragma: no cover - compiled
    """The largest count of one image's histogram of one neuron."""
    largest = 0
    for row in range(offsets.shape[0] - 1):
        total = 0
        for entry in range(offsets[row], offsets[row + 1]):
            total += counts[entry]
        largest = max(largest, total)
    return largest


def _emd_units(
    a: VDNAImageHist, b: VDNAImageHist | None, layer: str, index: torch.Tensor | None, paired: Pairs, splits: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(selected neurons, resamples)`` EMDs of one layer: of the ``paired`` weights, and of ``splits`` against the rest."""
    sources = (_csr(a, layer), _csr(a, layer, empty=True) if b is None else _csr(b, layer))
    neurons = a.neurons_list[layer]
    chosen = np.arange(neurons, dtype=np.int64) if index is None else index.numpy().astype(np.int64)
    largest_weight = max(int(weights.sum(axis=0).max(initial=0)) for weights in (*paired, splits))
    if splits.shape[1]:
        largest_weight = max(largest_weight, splits.shape[0])  # the rest of a split: every image once
    largest_row = max(_largest_row_total(offsets, counts) for offsets, _, counts in sources)
    kind = np.int32 if largest_row * largest_weight <= _INT32_LIMIT else np.int64  # sums of counts stay exact
    first, second, split = (np.ascontiguousarray(w, dtype=kind) for w in (*paired, splits))
    paired_out = np.empty((chosen.size, first.shape[1]))
    split_out = np.empty((chosen.size, split.shape[1]))
    with torch_threads(), _parallel_chunks(_NEURONS_PER_TASK):
        _emd_resampled_cpu(
            *sources[0], *sources[1], neurons, chosen, a.hist_nb_bins,
            first, first.any(axis=1), second, second.any(axis=1), split, split.any(axis=1), paired_out, split_out,
        )
    return paired_out, split_out


# -- Gaussians of many resamples -------------------------------------------------------------------
@numba.njit(parallel=True, cache=True, nogil=True, boundscheck=False)
def _weighted_moments_cpu(samples, weights, active, counts, mean, variance):  # pragma: no cover - compiled
    """Per neuron (row of ``samples``, one value per image) and resample: weighted mean and unbiased variance.

    ``weights`` ``(images, resamples)``; ``counts`` the weights' sum per resample (the resample's size).
    """
    neurons, images = samples.shape
    resamples = weights.shape[1]
    for n in numba.prange(neurons):
        values = samples[n]
        sums = np.zeros(resamples)
        for i in range(images):
            if active[i]:
                weight = weights[i]
                for r in range(resamples):
                    sums[r] += weight[r] * values[i]
        centre = sums / counts
        squares = np.zeros(resamples)
        for i in range(images):
            if active[i]:
                weight = weights[i]
                for r in range(resamples):
                    deviation = values[i] - centre[r]
                    squares[r] += weight[r] * deviation * deviation
        for r in range(resamples):
            mean[n, r] = centre[r]
            variance[n, r] = squares[r] / (counts[r] - 1) if counts[r] > 1 else 0.0


def _pooled_samples(a: VDNAImageMeans, b: VDNAImageMeans | None, layer: str) -> torch.Tensor:
    parts = [a.data[layer].cpu()] + ([] if b is None else [b.data[layer].cpu()])
    return torch.cat(parts).to(torch.float64)


def _moments(samples: np.ndarray, weights: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """``(neurons, resamples)`` weighted means and variances of ``samples`` ``(neurons, images)``."""
    weights = np.ascontiguousarray(weights, dtype=np.float64)
    mean = np.empty((samples.shape[0], weights.shape[1]))
    variance = np.empty_like(mean)
    with torch_threads(), _parallel_chunks(_NEURONS_PER_TASK):
        _weighted_moments_cpu(samples, weights, weights.any(axis=1), weights.sum(axis=0), mean, variance)
    return torch.from_numpy(mean), torch.from_numpy(variance)


def _nfd_units(
    a: VDNAImageMeans, b: VDNAImageMeans | None, layer: str, index: torch.Tensor | None, paired: Pairs, splits: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    samples = _pooled_samples(a, b, layer)
    if index is not None:
        samples = samples[:, index]
    samples = np.ascontiguousarray(samples.T.numpy())
    return tuple(
        frechet_1d(*_moments(samples, first), *_moments(samples, second)).numpy()
        for first, second in (paired, (splits, 1 - splits))
    )


def _drawn_images(weights: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``(columns, size)`` image indices of resamples of one size, each image repeated by its weight."""
    images = np.arange(weights.shape[0])
    return np.stack([np.repeat(images, weights[:, column]) for column in columns.tolist()])


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """torch on one thread: small factorisations run fastest so, and give the same rounding on any machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _centred_roots(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Means of ``(batch, images, neurons)`` samples, and matrices ``R`` with ``R.T @ R`` their sums of squared deviations."""
    mean = rows.mean(dim=1)
    root = rows - mean[:, None]
    if root.shape[1] > root.shape[2]:
        root = torch.linalg.qr(root, mode="r").R  # the same R.T @ R, fewer rows
    return mean, root


def _fd_units(
    a: VDNAImageMeans, b: VDNAImageMeans | None, layer: str, index: torch.Tensor | None, paired: Pairs, splits: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(1, resamples)`` Fréchet distances of the layer's Gaussians, of the ``paired`` weights and of ``splits``.

    ``tr sqrtm(S1 S2)`` with ``S = R.T @ R / (count - 1)`` is the sum of the singular values of
    ``R1 @ R2.T``, over ``sqrt((count1 - 1) (count2 - 1))``: no square root of a rank-deficient
    covariance's rounding. Resamples of equal sizes go through together.
    """
    samples = _pooled_samples(a, b, layer)
    out = []
    for first, second in (paired, (splits, 1 - splits)):
        distances = np.empty((1, first.shape[1]))
        sizes = np.stack([first.sum(axis=0), second.sum(axis=0)], axis=1)
        for count1, count2 in np.unique(sizes, axis=0).tolist():
            columns = np.flatnonzero((sizes[:, 0] == count1) & (sizes[:, 1] == count2))
            batch = max(1, _FD_BATCH_VALUES // (max(count1, count2) * samples.shape[1]))
            for part in np.array_split(columns, -(-columns.size // batch)):
                with _one_torch_thread():
                    mean1, root1 = _centred_roots(samples[torch.from_numpy(_drawn_images(first, part))])
                    mean2, root2 = _centred_roots(samples[torch.from_numpy(_drawn_images(second, part))])
                    cross = torch.linalg.svdvals(root1 @ root2.mT).sum(dim=-1) / math.sqrt((count1 - 1) * (count2 - 1))
                    traces = root1.square().sum(dim=(1, 2)) / (count1 - 1) + root2.square().sum(dim=(1, 2)) / (count2 - 1)
                    value = ((mean1 - mean2).square().sum(dim=1) + traces - 2 * cross).clamp(min=0)
                distances[0, part] = value.numpy()
        out.append(distances)
    return tuple(out)


_UNITS = {"emd": _emd_units, "nfd": _nfd_units, "fd": _fd_units}
_IMAGE_TYPES = {"emd": VDNAImageHist, "nfd": VDNAImageMeans, "fd": VDNAImageMeans}


# -- checks, selection and combination -------------------------------------------------------------
def _check_metric(metric: str, sets: Sequence[tuple[str, Any]]) -> None:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    wanted = _IMAGE_TYPES[metric]
    for position, vdna in sets:
        if not isinstance(vdna, wanted):
            raise TypeError(
                f"metric {metric!r} needs per-image DNAs of type {wanted.type} "
                f"(make_vdna(..., distribution_name={'image-histogram-1000' if metric == 'emd' else 'image-mean'!r})); "
                f"the {position} is a {type(vdna).__name__}"
            )


def _check_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{option('seed')} must be an integer >= 0, got {seed!r}")


def _check_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{option(name)} must be an integer >= 1, got {value!r}")
    return int(value)


def _selection(vdna: VDNAImageHist | VDNAImageMeans, metric: str, neurons: NeuronSelection | None) -> Selection:
    selection = select_neurons(vdna, neurons=neurons)
    if not selection or any(index is not None and index.numel() == 0 for _, index in selection):
        raise ValueError("neurons selects no neuron of some layer; name at least one neuron per layer, or None for all")
    if metric == "fd" and any(index is not None for _, index in selection):
        raise ValueError("fd compares whole layers: neurons= may only name layers, each with None (all its neurons)")
    return selection


def _unit_weights(metric: str, selection: Selection, vdna: VDNAImageHist | VDNAImageMeans, weights: Weights | None) -> np.ndarray:
    """The weight of each compared unit (neuron; layer for fd) in the total: 1/units, or the given weights."""
    parts = [(layer, 1) for layer, _ in selection] if metric == "fd" else selection_sizes(selection, vdna)
    if weights is None:
        units = sum(size for _, size in parts)
        return np.full(units, 1.0 / units)
    return weights_vector(weights, parts, "layer" if metric == "fd" else "neuron").numpy()


_SET_TYPES = {"emd": VDNAHist, "nfd": VDNAGauss, "fd": VDNALayerGauss}


def set_dna(vdna: VDNA, metric: str = "emd", position: str = "DNA") -> VDNA:
    """The DNA of a whole set that ``metric`` compares: ``vdna`` itself, or the sum (fit) of per-image DNAs.

    ``histogram-B`` for emd (per-image histograms summed), ``gaussian`` for nfd and
    ``layer-gaussian`` for fd (fitted to per-image means); ``position`` names ``vdna`` in errors.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if isinstance(vdna, VDNAImageHist) and metric == "emd":
        return vdna.subset()
    if isinstance(vdna, VDNAImageMeans) and metric in ("nfd", "fd"):
        return vdna.gaussian() if metric == "nfd" else vdna.layer_gaussian()
    wanted = _SET_TYPES[metric]
    if not isinstance(vdna, wanted):
        per_image = "image-histogram" if metric == "emd" else "image-mean"
        raise TypeError(f"metric {metric!r} compares {wanted.type} DNAs (or per-image {per_image} DNAs); "
                        f"the {position} is a {type(vdna).__name__}")
    return vdna


def _full_values(
    metric: str, first: VDNA, second: VDNA, selection: Selection, neurons: NeuronSelection | None, weights: Weights | None,
) -> tuple[float, dict[str, np.ndarray]]:
    """The distance of two sets' DNAs as the distance functions give it, and its per-layer unit values."""
    if metric == "fd":
        per_layer = {layer: FD(first, second, use_neurons_from_layer=layer) for layer, _ in selection}
        values = torch.stack(list(per_layer.values()))  # as FD combines its layers
        if weights is None:
            total = values.mean()
        else:
            total = (weights_vector(weights, [(layer, 1) for layer, _ in selection], "layer") * values).sum()
        return float(total), {layer: value.reshape(1).numpy() for layer, value in per_layer.items()}
    distance = EMD if metric == "emd" else NFD
    total = distance(first, second, neurons=neurons, weights=weights)
    per_layer = distance(first, second, neurons=neurons, return_neuron_wise=True)
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


def _replicates(
    metric: str, a: VDNAImageHist | VDNAImageMeans, b: VDNAImageHist | VDNAImageMeans | None, selection: Selection,
    paired: Pairs, splits: np.ndarray,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``{layer: (units, resamples)}`` distances between the ``paired`` weighted images, and of ``splits`` against the rest."""
    paired_out, split_out = {}, {}
    for layer, index in selection:
        paired_out[layer], split_out[layer] = _UNITS[metric](a, b, layer, index, paired, splits)
    return paired_out, split_out


def _totals(per_layer: Mapping[str, np.ndarray], unit_weights: np.ndarray) -> np.ndarray:
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


# -- public API ------------------------------------------------------------------------------------
def resampled_distances(
    a: VDNAImageHist | VDNAImageMeans,
    b: VDNAImageHist | VDNAImageMeans | None,
    first: np.ndarray,
    second: np.ndarray | None = None,
    metric: str = "emd",
    neurons: NeuronSelection | None = None,
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
    _check_metric(metric, [("first set", a)] + ([] if b is None else [("second set", b)]))
    if b is not None:
        check_comparable(a, b)
    images = a.num_images + (0 if b is None else b.num_images)
    smallest = 2 if metric == "fd" else 1
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
    distances = _replicates(metric, a, b, _selection(a, metric, neurons), paired, splits)
    return distances[1] if second is None else distances[0]


def compare_sets(
    a: VDNAImageHist | VDNAImageMeans,
    b: VDNAImageHist | VDNAImageMeans,
    metric: str = "emd",
    resamples: int = 200,
    permutations: int = 200,
    seed: int = 0,
    neurons: NeuronSelection | None = None,
    weights: Weights | None = None,
) -> SetComparison:
    """The distance between two image sets with a 95% bootstrap interval, noise floor and permutation p-value.

    ``a`` and ``b`` are per-image DNAs of the two sets: ``image-histogram-B`` for ``metric="emd"``,
    ``image-mean`` for ``"nfd"`` and ``"fd"``. ``value`` is ``EMD(a.subset(), b.subset(), neurons=...,
    weights=...)`` (``NFD`` of ``.gaussian()``, ``FD`` of ``.layer_gaussian()``; for ``fd``,
    ``neurons`` may only name whole layers, ``{layer: None}``, and ``weights`` are per layer).
    ``resamples`` bootstrap resamples (the images of each set drawn with replacement) give the
    interval; ``permutations`` random splits of the pooled images give the noise floor and the
    p-value. The same inputs and ``seed`` give the same numbers, whatever the number of threads.
    """
    _check_metric(metric, [("first set", a), ("second set", b)])
    check_comparable(a, b)
    resamples = _check_count("resamples", resamples)
    permutations = _check_count("permutations", permutations)
    _check_seed(seed)
    for name, vdna in (("first", a), ("second", b)):
        if vdna.num_images < 2:
            raise ValueError(f"the {name} set has {vdna.num_images} image(s); comparing sets needs at least 2 images each")
    selection = _selection(a, metric, neurons)
    unit_weights = _unit_weights(metric, selection, a, weights)
    value, full = _full_values(metric, set_dna(a, metric, "first set"), set_dna(b, metric, "second set"), selection,
                               neurons, weights)

    rng = np.random.default_rng(seed)
    size_a, size_b = a.num_images, b.num_images
    paired = _bootstrap_weights(rng, size_a, size_b, resamples)
    bootstrap, null = _replicates(metric, a, b, selection, paired, _split_weights(rng, size_a + size_b, size_a, permutations))

    bootstrap_totals, null_totals = _totals(bootstrap, unit_weights), _totals(null, unit_weights)
    layers = {
        layer: replace(part, **_spread(part.value, bootstrap[layer].mean(axis=0), null[layer].mean(axis=0), metric))
        for layer, part in _layer_parts(full, unit_weights, dict(selection_sizes(selection, a))).items()
    }
    return SetComparison(
        metric=metric, value=value, **_spread(value, bootstrap_totals, null_totals, metric), interval=INTERVALS[metric],
        size_a=size_a, size_b=size_b, resamples=resamples, permutations=permutations, seed=int(seed),
        layers=layers, bootstrap=tuple(bootstrap_totals.tolist()), null=tuple(null_totals.tolist()),
    )


def _spread(value: float, bootstrap: np.ndarray, null: np.ndarray, metric: str) -> dict[str, Any]:
    """Interval, noise floor, its spread and p-value of ``value`` from its bootstrap and null distances."""
    return {
        "ci": bootstrap_interval(value, bootstrap, method=INTERVALS[metric]),
        "noise_floor": float(null.mean()),
        "noise_floor_spread": float(null.std(ddof=1)) if null.size > 1 else 0.0,
        "p_value": float((1 + np.count_nonzero(null >= value)) / (1 + null.size)),
    }


def layer_shares(
    a: VDNA, b: VDNA, metric: str = "emd", neurons: NeuronSelection | None = None, weights: Weights | None = None
) -> dict[str, LayerShare]:
    """Each layer's distance and share of the total distance between two sets, early to late, from their DNAs alone.

    ``a`` and ``b``: the DNAs ``metric`` compares (``histogram-B`` for emd, ``gaussian`` for nfd,
    ``layer-gaussian`` for fd) or per-image DNAs (their sets' DNAs are used). ``neurons`` and
    ``weights`` as :func:`compare_sets` takes them. The shares are those of :func:`compare_sets`'s
    ``layers``, without interval, noise floor or p-value (None): nothing is resampled.
    """
    first, second = set_dna(a, metric, "first set"), set_dna(b, metric, "second set")
    check_comparable(first, second)
    selection = _selection(first, metric, neurons)
    _, full = _full_values(metric, first, second, selection, neurons, weights)
    return _layer_parts(full, _unit_weights(metric, selection, first, weights), dict(selection_sizes(selection, first)))


def _pooled_reference(reference: VDNAImageHist | VDNAImageMeans | int) -> VDNAImageHist | VDNAImageMeans | None:
    """The reference's per-image DNAs, pooled with the images; None when ``reference`` is only a size."""
    return None if isinstance(reference, (int, np.integer)) and not isinstance(reference, bool) else reference


def noise_floor_limits(images: VDNAImageHist | VDNAImageMeans, reference: VDNAImageHist | VDNAImageMeans | int) -> tuple[int, int]:
    """``(m, largest)`` for :func:`noise_floor_curve`: the reference stand-in's size ``m``, and the
    largest subset size that leaves ``m`` of the pooled images aside."""
    pooled_reference = _pooled_reference(reference)
    other_size = _check_count("reference", reference if pooled_reference is None else pooled_reference.num_images)
    count = len(images) + (0 if pooled_reference is None else len(pooled_reference))
    return other_size, count - other_size


def noise_floor_curve(
    images: VDNAImageHist | VDNAImageMeans,
    sizes: Sequence[int],
    reference: VDNAImageHist | VDNAImageMeans | int,
    draws: int = 10,
    seed: int = 0,
    metric: str | None = None,
    neurons: NeuronSelection | None = None,
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
        metric = "emd" if isinstance(images, VDNAImageHist) else "fd"
    pooled_reference = _pooled_reference(reference)
    sets = [("images", images)] + ([] if pooled_reference is None else [("reference", pooled_reference)])
    _check_metric(metric, sets)
    if pooled_reference is not None:
        check_comparable(images, pooled_reference)
    draws = _check_count("draws", draws)
    _check_seed(seed)
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
    selection = _selection(images, metric, neurons)
    unit_weights = _unit_weights(metric, selection, images, None)
    rng = np.random.default_rng(seed)
    first = np.zeros((count, draws * len(sizes)), dtype=np.int32)
    second = np.zeros_like(first)
    for draw in range(draws):
        order = rng.permutation(count)
        for column, size in enumerate(sizes):
            first[order[:size], draw * len(sizes) + column] = 1
            second[order[count - other_size :], draw * len(sizes) + column] = 1
    paired, _ = _replicates(metric, images, pooled_reference, selection, (first, second), np.zeros((count, 0), dtype=np.int32))
    return _totals(paired, unit_weights).reshape(draws, len(sizes))
