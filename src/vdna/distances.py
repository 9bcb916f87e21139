"""Comparing DNAs: EMD between histograms (eq. 3-5), 1-D Fréchet per neuron, Fréchet per layer.

Pure functions over arrays (:func:`emd`, :func:`frechet_1d`, :func:`frechet_distance`), and the
vdna 0.1.1 wrappers :func:`EMD`, :func:`NFD`, :func:`FD` that check two DNAs are comparable and
select layers and neurons in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Union

import numba
import numpy as np
import torch

from .distributions import VDNAGauss, VDNAHist, VDNAImageHist, VDNALayerGauss
from .dna import VDNA, check_comparable
from .kernels import torch_threads

NeuronSelection = Mapping[str, Union[Sequence[int], torch.Tensor, None]]
Weights = Union[torch.Tensor, Sequence[float], Mapping[str, Union[torch.Tensor, Sequence[float]]]]


# -- functional ------------------------------------------------------------------------------------
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


def frechet_1d(mu1: torch.Tensor, var1: torch.Tensor, mu2: torch.Tensor, var2: torch.Tensor) -> torch.Tensor:
    """Fréchet distance between 1-D Gaussians, elementwise: ``(mu1 - mu2)^2 + (sd1 - sd2)^2``.

    Equal to ``(mu1 - mu2)^2 + var1 + var2 - 2 sqrt(var1 var2)``, written so it is never negative.
    """
    mu1, var1, mu2, var2 = (t.to(torch.float64) for t in (mu1, var1, mu2, var2))
    if (var1 < 0).any() or (var2 < 0).any():
        raise ValueError("variances must not be negative")
    return (mu1 - mu2).square() + (var1.sqrt() - var2.sqrt()).square()


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def trace_sqrt_product(sigma1: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
    """``tr(sqrtm(sigma1 @ sigma2))`` for covariance matrices, from eigenvalues; real and non-negative.

    ``sigma1 @ sigma2`` is similar to the symmetric ``A sigma2 A`` with ``A = sqrtm(sigma1)``, whose
    eigenvalues are real and non-negative; round-off below zero is clipped.
    """
    root = _psd_sqrt(sigma1)
    middle = root @ sigma2 @ root
    values = torch.linalg.eigvalsh((middle + middle.T) / 2)
    return values.clamp(min=0).sqrt().sum()


def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
    """Fréchet distance between multivariate Gaussians (FID's formula), float64, never negative."""
    mu1, sigma1, mu2, sigma2 = (t.to(torch.float64) for t in (mu1, sigma1, mu2, sigma2))
    mu1, mu2 = mu1.reshape(-1), mu2.reshape(-1)
    sigma1, sigma2 = sigma1.reshape(mu1.numel(), -1), sigma2.reshape(mu2.numel(), -1)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape[0] != sigma1.shape[1]:
        raise ValueError(
            f"Gaussians must have equal dimensions, got means {tuple(mu1.shape)}, {tuple(mu2.shape)} "
            f"and covariances {tuple(sigma1.shape)}, {tuple(sigma2.shape)}"
        )
    if torch.equal(mu1, mu2) and torch.equal(sigma1, sigma2):
        return torch.zeros((), dtype=torch.float64, device=mu1.device)
    diff = mu1 - mu2
    value = diff @ diff + torch.trace(sigma1) + torch.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2)
    return value.clamp(min=0)


# -- checks and selection --------------------------------------------------------------------------
def _require(vdna1: VDNA, vdna2: VDNA, classes: tuple[type, ...], metric: str) -> None:
    names = " or ".join(c.type for c in classes)
    for position, vdna in (("first", vdna1), ("second", vdna2)):
        if not isinstance(vdna, VDNA):
            raise TypeError(f"the {position} argument is a {type(vdna).__name__}, not a VDNA")
        if not isinstance(vdna, classes):
            raise ValueError(f"{metric} needs {names} DNAs; the {position} one is {vdna.type}")


def _as_index(indices: Sequence[int] | torch.Tensor | None, layer: str, vdna: VDNA) -> torch.Tensor | None:
    if indices is None:
        return None
    index = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
    count = vdna.neurons_list[layer]
    if index.numel() and (index.min() < 0 or index.max() >= count):
        raise ValueError(f"neuron indices for layer {layer!r} must lie in [0, {count}), got {index.tolist()[:10]}")
    return index


def select_neurons(
    vdna: VDNA,
    use_neurons_from_layer: str | None = None,
    use_neuron_index: int | None = None,
    neurons: NeuronSelection | None = None,
) -> list[tuple[str, torch.Tensor | None]]:
    """The ``(layer, neuron indices or None for all)`` pairs a comparison uses, in layer order."""
    if use_neuron_index is not None and use_neurons_from_layer is None:
        raise ValueError("use_neuron_index needs use_neurons_from_layer to name its layer")
    if neurons is not None:
        if use_neurons_from_layer is not None:
            raise ValueError("pass either neurons= or use_neurons_from_layer=, not both")
        for layer in neurons:
            vdna.check_layer(layer)
        return [(layer, _as_index(neurons[layer], layer, vdna)) for layer in vdna.neurons_list if layer in neurons]
    if use_neurons_from_layer is None:
        return [(layer, None) for layer in vdna.neurons_list]
    vdna.check_layer(use_neurons_from_layer)
    if use_neuron_index is None:
        return [(use_neurons_from_layer, None)]
    vdna.check_neuron(use_neurons_from_layer, use_neuron_index)
    return [(use_neurons_from_layer, torch.tensor([use_neuron_index]))]


def _pick(values: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
    return values if index is None else values[index.to(values.device)]


def selection_sizes(selection: list[tuple[str, torch.Tensor | None]], vdna: VDNA) -> list[tuple[str, int]]:
    """``(layer, number of selected neurons)`` of a :func:`select_neurons` selection."""
    return [(layer, vdna.neurons_list[layer] if index is None else index.numel()) for layer, index in selection]


def weights_vector(weights: Weights, parts: list[tuple[str, int]], unit: str) -> torch.Tensor:
    """One float64 weight per compared ``unit`` (neuron or layer), from a vector or ``{layer: weights}``."""
    if isinstance(weights, Mapping):
        missing = [layer for layer, _ in parts if layer not in weights]
        if missing:
            raise ValueError(f"weights have no entry for layers {missing}")
        pieces = []
        for layer, size in parts:
            piece = torch.as_tensor(weights[layer], dtype=torch.float64).reshape(-1)
            if piece.numel() != size:
                raise ValueError(f"weights of layer {layer!r} have {piece.numel()} values, expected {size}")
            pieces.append(piece)
        vector = torch.cat(pieces)
    else:
        vector = torch.as_tensor(weights, dtype=torch.float64)
        total = sum(size for _, size in parts)
        if vector.ndim != 1 or vector.numel() != total:
            raise ValueError(f"weights must be one value per compared {unit}, shape ({total},), got {tuple(vector.shape)}")
    if not torch.isfinite(vector).all():
        raise ValueError("weights contain NaN or infinite values")
    return vector


def _combine(
    per_layer: dict[str, torch.Tensor],
    return_neuron_wise: bool,
    use_neuron_index: int | None,
    weights: Weights | None,
    selection: list[tuple[str, torch.Tensor | None]],
    vdna: VDNA,
) -> torch.Tensor | dict[str, torch.Tensor]:
    if return_neuron_wise:
        if use_neuron_index is not None:
            raise ValueError("return_neuron_wise cannot be combined with use_neuron_index")
        if weights is not None:
            raise ValueError("return_neuron_wise returns unweighted distances; do not pass weights")
        return per_layer
    values = torch.cat(list(per_layer.values()))
    if weights is None:
        return values.mean()
    return (weights_vector(weights, selection_sizes(selection, vdna), "neuron").to(values.device) * values).sum()


def _neuron_metric(
    metric: str,
    classes: tuple[type, ...],
    layer_distance: Callable[[VDNA, VDNA, str, torch.Tensor | None], torch.Tensor],
    vdna1: VDNA,
    vdna2: VDNA,
    use_neurons_from_layer: str | None,
    use_neuron_index: int | None,
    return_neuron_wise: bool,
    weights: Weights | None,
    neurons: NeuronSelection | None,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """Check, select, compute ``layer_distance`` per selected layer, then average, weight or return per neuron."""
    _require(vdna1, vdna2, classes, metric)
    check_comparable(vdna1, vdna2, same_type=len(classes) == 1)
    selection = select_neurons(vdna1, use_neurons_from_layer, use_neuron_index, neurons)
    per_layer = {layer: layer_distance(vdna1, vdna2, layer, index) for layer, index in selection}
    return _combine(per_layer, return_neuron_wise, use_neuron_index, weights, selection, vdna1)


# -- vdna 0.1.1 API --------------------------------------------------------------------------------
def EMD(
    vdna1: VDNAHist,
    vdna2: VDNAHist,
    use_neurons_from_layer: str | None = None,
    use_neuron_index: int | None = None,
    return_neuron_wise: bool = False,
    weights: Weights | None = None,
    neurons: NeuronSelection | None = None,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """Earth Mover's Distance between histogram DNAs.

    By default the mean over the selected neurons (EMD_avg); with ``weights`` (one per selected
    neuron, or ``{layer: weights}``) the weighted sum EMD_W of eq. 5; with ``return_neuron_wise``
    a ``{layer: per-neuron EMD}`` dict. Select neurons with ``use_neurons_from_layer`` (and
    ``use_neuron_index``) or with ``neurons={layer: indices or None}``.
    """

    def layer_emd(a: VDNA, b: VDNA, layer: str, index: torch.Tensor | None) -> torch.Tensor:
        return emd(_pick(a.data[layer], index), _pick(b.data[layer], index).to(a.data[layer].device))

    return _neuron_metric(
        "EMD", (VDNAHist,), layer_emd, vdna1, vdna2,
        use_neurons_from_layer, use_neuron_index, return_neuron_wise, weights, neurons,
    )


def _neuron_gaussians(vdna: VDNA, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
    data = vdna.data[layer]
    if isinstance(vdna, VDNALayerGauss):
        return data["mu"], torch.diagonal(data["sigma"])
    return data["mu"], data["var"]


def NFD(
    vdna1: VDNAGauss | VDNALayerGauss,
    vdna2: VDNAGauss | VDNALayerGauss,
    use_neurons_from_layer: str | None = None,
    use_neuron_index: int | None = None,
    return_neuron_wise: bool = False,
    weights: Weights | None = None,
    neurons: NeuronSelection | None = None,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """Neuron-wise Fréchet distance (DNA-FD) between Gaussian DNAs, averaged, weighted or neuron-wise.

    Layer-Gaussian DNAs contribute the diagonal of their covariances, as in vdna 0.1.1.
    """

    def layer_nfd(a: VDNA, b: VDNA, layer: str, index: torch.Tensor | None) -> torch.Tensor:
        mu1, var1 = (_pick(t, index) for t in _neuron_gaussians(a, layer))
        mu2, var2 = (_pick(t, index).to(mu1.device) for t in _neuron_gaussians(b, layer))
        return frechet_1d(mu1, var1, mu2, var2)

    return _neuron_metric(
        "NFD", (VDNAGauss, VDNALayerGauss), layer_nfd, vdna1, vdna2,
        use_neurons_from_layer, use_neuron_index, return_neuron_wise, weights, neurons,
    )


def FD(
    vdna1: VDNALayerGauss,
    vdna2: VDNALayerGauss,
    use_neurons_from_layer: str | None = None,
    use_neuron_index: int | None = None,
    return_neuron_wise: bool = False,
    weights: Weights | None = None,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """Fréchet distance between layer-Gaussian DNAs: of one layer, or the mean over layers.

    With ``weights`` (one per layer, or ``{layer: weight}``) the weighted sum over layers, the
    layer-wise baseline of the paper's Table 2. ``use_neuron_index`` gives one neuron's 1-D
    distance and ``return_neuron_wise`` the per-neuron 1-D distances, as vdna 0.1.1.
    """
    _require(vdna1, vdna2, (VDNALayerGauss,), "FD")
    check_comparable(vdna1, vdna2)
    selection = select_neurons(vdna1, use_neurons_from_layer, use_neuron_index)
    if return_neuron_wise or use_neuron_index is not None:
        return NFD(vdna1, vdna2, use_neurons_from_layer, use_neuron_index, return_neuron_wise)
    distances = torch.stack(
        [
            frechet_distance(
                vdna1.data[layer]["mu"],
                vdna1.data[layer]["sigma"],
                vdna2.data[layer]["mu"].to(vdna1.data[layer]["mu"].device),
                vdna2.data[layer]["sigma"].to(vdna1.data[layer]["mu"].device),
            )
            for layer, _ in selection
        ]
    )
    if weights is None:
        return distances.mean()
    vector = weights_vector(weights, [(layer, 1) for layer, _ in selection], "layer")
    return (vector.to(distances.device) * distances).sum()


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
    neurons: NeuronSelection | None = None,
    weights: Weights | None = None,
    return_neuron_wise: bool = False,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """EMD of every image of a per-image DNA set to one histogram DNA, float64, one value per image.

    Equal (to float64 round-off) to ``EMD(images.image(i), reference, neurons=..., weights=...)``
    for every ``i``, computed from the sparse histograms in one parallel pass. The mean over the
    selected neurons by default (EMD_avg), the weighted sum with ``weights`` (eq. 5), or with
    ``return_neuron_wise`` a ``{layer: (images, neurons)}`` dict.
    """
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
        if weights is not None:
            raise ValueError("return_neuron_wise returns unweighted distances; do not pass weights")
        return per_layer
    values = torch.cat(list(per_layer.values()), dim=1)
    if weights is None:
        return values.mean(dim=1)
    return values @ weights_vector(weights, selection_sizes(selection, reference), "neuron")
