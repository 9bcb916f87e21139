"""dna-emd: the Earth Mover's Distance between the histograms of two DNAs, neuron by neuron (eq. 3-5).

The EMD of two histograms normalised to sum 1 is the L1 distance of their cumulative sums, the 1-D
Wasserstein distance in bins. :func:`emd` compares rows of arrays, :func:`EMD` two DNAs (vdna
0.1.1's API), :func:`emd_to_reference` every image of a per-image DNA set to one DNA in one pass,
and :func:`resampled_emds` the DNAs of many weighted resamples of per-image DNAs at once.

Resampled EMDs: one compiled pass per layer, in parallel over neurons, sorts each neuron's stored
(image, bin, count) entries by bin once; then bin after bin every resample's count is the sum of
``count * weight`` over the images storing that bin (integers, vectorised over resamples), and
the EMD of every resample follows from running sums, as :func:`emd` computes it, so the full sets'
EMD is reproduced bit for bit. A split's second set is the pooled counts minus its first. Cost per
layer: ``O(entries * resamples)`` multiply-adds plus ``O(neurons * occupied bin range *
resamples)``, where ``entries`` is the number of stored (image, neuron, bin) counts; memory
``O(images * resamples)`` for the weights plus one neuron's entries per thread. The results do not
depend on the number of threads.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from ..distributions import VDNAHist, VDNAImageHist
from ..dna import VDNA, check_comparable
from ..kernels import torch_threads
from ._registry import Distance, register_distance
from ._resampling import NEURONS_PER_TASK, Pairs, parallel_chunks
from ._selection import (
    Neurons,
    NeuronWeights,
    neuron_metric,
    neuron_weights_given,
    pick,
    select_neurons,
    selection_sizes,
    weights_vector,
)

_RESAMPLES_PER_PASS = 256  # resamples of one neuron summed together: their weights stay in the L2 cache
_INT32_LIMIT = 2**31 - 1


# -- two histograms, row by row ------------------------------------------------------------------
@numba.njit(parallel=True, cache=True, nogil=True, boundscheck=False)
def _emd_rows_cpu(first, second, out):  # pragma: no cover - compiled
    rows, bins = first.shape
    for row in numba.prange(rows):
        a = first[row]
        b = second[row]
        total_a = a.sum()
        total_b = b.sum()
        if total_a <= 0 or total_b <= 0:
            out[row] = np.nan
            continue
        scale_a = 1.0 / np.float64(total_a)
        scale_b = 1.0 / np.float64(total_b)
        running_a = a[0] - a[0]
        running_b = b[0] - b[0]
        distance = 0.0
        for k in range(bins):
            running_a += a[k]
            running_b += b[k]
            distance += abs(running_a * scale_a - running_b * scale_b)
        out[row] = distance


def _emd_rows_torch(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    cumulative = []
    for hist in (first, second):
        sums = torch.cumsum(hist, dim=1)
        totals = sums[:, -1:].to(torch.float64)
        cumulative.append(torch.where(totals > 0, sums.to(torch.float64) / totals, torch.nan))
    return (cumulative[0] - cumulative[1]).abs_().sum(dim=1)


def emd(hist1: torch.Tensor, hist2: torch.Tensor) -> torch.Tensor:
    """EMD between matching rows of two ``(rows, bins)`` histograms, in bins (eq. 3-4), float64.

    Each row is normalised to sum 1; the distance is the L1 distance of the cumulative
    histograms, i.e. the 1-D Wasserstein distance in units of one bin width.
    """
    if hist1.shape != hist2.shape or hist1.ndim != 2:
        raise ValueError(f"histograms must be (rows, bins) of equal shapes, got {tuple(hist1.shape)} and {tuple(hist2.shape)}")
    first, second = hist1, hist2.to(hist1.device)
    if first.dtype != second.dtype or not (first.is_floating_point() or first.dtype == torch.int64):
        common = torch.float64 if first.is_floating_point() or second.is_floating_point() else torch.int64
        first, second = first.to(common), second.to(common)
    if first.device.type == "cpu":
        distances = torch.empty(first.shape[0], dtype=torch.float64)
        with torch_threads():
            _emd_rows_cpu(first.contiguous().numpy(), second.contiguous().numpy(), distances.numpy())
    else:
        distances = _emd_rows_torch(first, second)
    if torch.isnan(distances).any():
        empty = int(torch.isnan(distances).nonzero()[0, 0])
        raise ValueError(f"histogram row {empty} has no counts: EMD is undefined for an empty histogram")
    return distances


def EMD(
    vdna1: VDNAHist,
    vdna2: VDNAHist,
    use_neurons_from_layer: str | None = None,
    use_neuron_index: int | None = None,
    return_neuron_wise: bool = False,
    neuron_weights: NeuronWeights | None = None,
    neurons: Neurons | None = None,
    *,
    weights: NeuronWeights | None = None,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """Earth Mover's Distance between histogram DNAs (vdna 0.1.1's ``EMD``, and more).

    By default the mean over the selected neurons (EMD_avg); with ``neuron_weights`` (one per
    selected neuron, or ``{layer: weights}``; ``weights=`` is its former name) the weighted sum
    EMD_W of eq. 5; with ``return_neuron_wise`` a ``{layer: per-neuron EMD}`` dict. Select neurons
    with ``use_neurons_from_layer`` (and ``use_neuron_index``) or with ``neurons={layer: indices or None}``.
    """

    def layer_emd(a: VDNA, b: VDNA, layer: str, index: torch.Tensor | None) -> torch.Tensor:
        return emd(pick(a.data[layer], index), pick(b.data[layer], index).to(a.data[layer].device))

    return neuron_metric(
        "EMD", ("histogram",), layer_emd, vdna1, vdna2, use_neurons_from_layer, use_neuron_index, return_neuron_wise,
        neuron_weights_given(neuron_weights, weights), neurons,
    )


# -- many images against one reference --------------------------------------------------------------
@numba.njit(parallel=True, cache=True, nogil=True, boundscheck=False)
def _emd_sparse_rows_cpu(offsets, bins, counts, neurons, chosen, reference_cdf, reference_prefix, out):  # pragma: no cover - compiled
    images = out.shape[0]
    total_bins = reference_cdf.shape[1]
    for image in numba.prange(images):
        for column in range(chosen.shape[0]):
            neuron = chosen[column]
            row = image * neurons + neuron
            start, end = offsets[row], offsets[row + 1]
            cdf = reference_cdf[column]
            prefix = reference_prefix[column]
            if start == end:
                out[image, column] = np.nan
                continue
            total = 0
            for entry in range(start, end):
                total += counts[entry]
            scale = 1.0 / np.float64(total)
            # the image's CDF is 0 before its first bin, then constant between its non-empty bins
            distance = prefix[bins[start]]
            running = 0
            for entry in range(start, end):
                running += counts[entry]
                level = running * scale
                low = np.int64(bins[entry])
                high = np.int64(bins[entry + 1]) if entry + 1 < end else total_bins
                # the reference CDF is non-decreasing: at most ``level`` before ``split``, above from it on
                split, above = low, high
                while split < above:
                    middle = (split + above) >> 1
                    if cdf[middle] <= level:
                        split = middle + 1
                    else:
                        above = middle
                distance += level * (split - low) - (prefix[split] - prefix[low])
                distance += (prefix[high] - prefix[split]) - level * (high - split)
            out[image, column] = distance


def emd_to_reference(
    images: VDNAImageHist,
    reference: VDNAHist,
    neurons: Neurons | None = None,
    neuron_weights: NeuronWeights | None = None,
    return_neuron_wise: bool = False,
    *,
    weights: NeuronWeights | None = None,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """EMD of every image of a per-image DNA set to one histogram DNA, float64, one value per image.

    Equal (to float64 round-off) to ``EMD(images.image(i), reference, neurons=..., weights=...)``
    for every ``i``, computed from the sparse histograms in one parallel pass. The mean over the
    selected neurons by default (EMD_avg), the weighted sum with ``neuron_weights`` (eq. 5), or with
    ``return_neuron_wise`` a ``{layer: (images, neurons)}`` dict.
    """
    neuron_weights = neuron_weights_given(neuron_weights, weights)
    if not isinstance(images, VDNAImageHist):
        raise TypeError(f"images must be per-image DNAs (image-histogram-B), got {type(images).__name__}")
    if not isinstance(reference, VDNAHist):
        raise TypeError(f"reference must be a histogram DNA, got {type(reference).__name__}")
    if images.hist_nb_bins != reference.hist_nb_bins:
        raise ValueError(f"cannot compare {images.hist_nb_bins}-bin images with a {reference.hist_nb_bins}-bin reference")
    check_comparable(images, reference, same_type=False)
    selection = select_neurons(reference, neurons=neurons)
    per_layer = {}
    for layer, index in selection:
        chosen = torch.arange(reference.neurons_list[layer]) if index is None else index
        counts = reference.data[layer][chosen].cpu().to(torch.float64)
        totals = counts.sum(dim=1, keepdim=True)
        if (totals == 0).any():
            raise ValueError(f"the reference has an empty histogram in layer {layer!r}")
        cdf = torch.cumsum(counts, dim=1) / totals
        prefix = torch.nn.functional.pad(torch.cumsum(cdf, dim=1), (1, 0))
        part = images.data[layer]
        out = torch.empty((images.num_images, chosen.numel()), dtype=torch.float64)
        with torch_threads():
            _emd_sparse_rows_cpu(
                part["offsets"].cpu().numpy(), part["bins"].cpu().numpy(), part["counts"].cpu().numpy(),
                images.neurons_list[layer], chosen.numpy(), cdf.numpy(), prefix.numpy(), out.numpy(),
            )
        if torch.isnan(out).any():
            image = int(torch.isnan(out).any(dim=1).nonzero()[0, 0])
            raise ValueError(f"image {images.names[image]!r} has an empty histogram in layer {layer!r}")
        per_layer[layer] = out
    if return_neuron_wise:
        if neuron_weights is not None:
            raise ValueError("return_neuron_wise returns unweighted distances; do not pass weights")
        return per_layer
    values = torch.cat(list(per_layer.values()), dim=1)
    if neuron_weights is None:
        return values.mean(dim=1)
    return values @ weights_vector(neuron_weights, selection_sizes(selection, reference), "neuron")


# -- many resamples of per-image DNAs --------------------------------------------------------------
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


def resampled_emds(
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
    with torch_threads(), parallel_chunks(NEURONS_PER_TASK):
        _emd_resampled_cpu(
            *sources[0], *sources[1], neurons, chosen, a.hist_nb_bins,
            first, first.any(axis=1), second, second.any(axis=1), split, split.any(axis=1), paired_out, split_out,
        )
    return paired_out, split_out


def _unit_values(a: VDNAHist, b: VDNAHist, neurons: Neurons | None = None) -> dict[str, torch.Tensor]:
    return EMD(a, b, neurons=neurons, return_neuron_wise=True)


DISTANCE = register_distance(Distance(
    name="emd",
    label="dna-emd",
    description="Earth Mover's distance between each neuron's histograms, averaged over neurons (eq. 3-5)",
    set_types=("histogram",),
    set_distribution="histogram-{bins}",
    compare=EMD,
    unit_values=_unit_values,
    image_type="image-histogram",
    image_distribution="image-histogram-{bins}",
    resample=resampled_emds,
    interval="squared",  # a first-power (Wasserstein-1) distance: noise adds roughly in quadrature
))


__all__ = ["DISTANCE", "EMD", "emd", "emd_to_reference", "resampled_emds"]
