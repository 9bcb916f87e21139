"""fd: the Fréchet distance between the Gaussians of whole layers (FID's formula), per layer or averaged.

:func:`frechet_distance` compares two multivariate Gaussians, :func:`FD` two layer-Gaussian DNAs
(vdna 0.1.1's API: FD on Inception's last block is FID), and :func:`resampled_fds` the Gaussians
of many weighted resamples of per-image means at once: ``tr sqrtm(S1 S2)`` from the singular
values of the product of the two resamples' centred samples (on one torch thread), never forming
a covariance wider than the number of images.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..distributions import VDNAImageMeans, VDNALayerGauss
from ..dna import check_comparable
from ._registry import Distance, register_distance
from ._resampling import Pairs, one_torch_thread, pooled_samples
from ._selection import (
    Neurons,
    NeuronWeights,
    neuron_weights_given,
    require_types,
    select_neurons,
    weights_vector,
)
from .nfd_distance import NFD

_FD_BATCH_VALUES = 2**22  # samples gathered at a time for FD's resamples (32 MiB of float64)


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """The symmetric square root of a covariance matrix (eigenvalues below zero, round-off, taken as 0)."""
    return _psd_sqrt(matrix)


def trace_sqrt_product(sigma1: torch.Tensor, sigma2: torch.Tensor, root1: torch.Tensor | None = None) -> torch.Tensor:
    """``tr(sqrtm(sigma1 @ sigma2))`` for covariance matrices, from eigenvalues; real and non-negative.

    ``sigma1 @ sigma2`` is similar to the symmetric ``A sigma2 A`` with ``A = sqrtm(sigma1)``, whose
    eigenvalues are real and non-negative; round-off below zero is clipped. ``root1``: ``A``
    (:func:`psd_sqrt` of ``sigma1``), when ``sigma1`` is compared with many covariances.
    """
    root = _psd_sqrt(sigma1) if root1 is None else root1
    middle = root @ sigma2 @ root
    values = torch.linalg.eigvalsh((middle + middle.T) / 2)
    return values.clamp(min=0).sqrt().sum()


def frechet_distance(
    mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor, root1: torch.Tensor | None = None,
) -> torch.Tensor:
    """Fréchet distance between multivariate Gaussians (FID's formula), float64, never negative.

    ``root1``: :func:`psd_sqrt` of ``sigma1``, when the first Gaussian is compared with many (the same value).
    """
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
    value = diff @ diff + torch.trace(sigma1) + torch.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2, root1)
    return value.clamp(min=0)


def FD(
    vdna1: VDNALayerGauss,
    vdna2: VDNALayerGauss,
    use_neurons_from_layer: str | None = None,
    use_neuron_index: int | None = None,
    return_neuron_wise: bool = False,
    neuron_weights: NeuronWeights | None = None,
    neurons: Neurons | None = None,
    *,
    weights: NeuronWeights | None = None,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """Fréchet distance between layer-Gaussian DNAs: of one layer, or the mean over layers.

    ``neurons`` may name whole layers (``{layer: None}``) to average over those only. With
    ``neuron_weights`` (one per layer, or ``{layer: weight}``; ``weights=`` is its former name) the
    weighted sum over layers, the layer-wise baseline of the paper's Table 2.
    ``use_neuron_index`` gives one neuron's 1-D distance and ``return_neuron_wise`` the per-neuron
    1-D distances, as vdna 0.1.1.
    """
    neuron_weights = neuron_weights_given(neuron_weights, weights)
    require_types(vdna1, vdna2, ("layer-gaussian",), "FD")
    check_comparable(vdna1, vdna2)
    if return_neuron_wise or use_neuron_index is not None:
        return NFD(vdna1, vdna2, use_neurons_from_layer, use_neuron_index, return_neuron_wise, neurons=neurons)
    selection = select_neurons(vdna1, use_neurons_from_layer, neurons=neurons)
    if any(index is not None for _, index in selection):
        raise ValueError("fd compares whole layers: neurons= may only name layers, each with None (all its neurons)")
    distances = torch.stack([_layer_fd(vdna1, vdna2, layer) for layer, _ in selection])
    if neuron_weights is None:
        return distances.mean()
    vector = weights_vector(neuron_weights, [(layer, 1) for layer, _ in selection], "layer")
    return (vector.to(distances.device) * distances).sum()


def _layer_fd(vdna1: VDNALayerGauss, vdna2: VDNALayerGauss, layer: str) -> torch.Tensor:
    device = vdna1.data[layer]["mu"].device
    return frechet_distance(
        vdna1.data[layer]["mu"], vdna1.data[layer]["sigma"],
        vdna2.data[layer]["mu"].to(device), vdna2.data[layer]["sigma"].to(device),
    )


def _drawn_images(weights: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``(columns, size)`` image indices of resamples of one size, each image repeated by its weight."""
    images = np.arange(weights.shape[0])
    return np.stack([np.repeat(images, weights[:, column]) for column in columns.tolist()])


def _centred_roots(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Means of ``(batch, images, neurons)`` samples, and matrices ``R`` with ``R.T @ R`` their sums of squared deviations."""
    mean = rows.mean(dim=1)
    root = rows - mean[:, None]
    if root.shape[1] > root.shape[2]:
        root = torch.linalg.qr(root, mode="r").R  # the same R.T @ R, fewer rows
    return mean, root


def resampled_fds(
    a: VDNAImageMeans, b: VDNAImageMeans | None, layer: str, index: torch.Tensor | None, paired: Pairs, splits: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(1, resamples)`` Fréchet distances of the layer's Gaussians, of the ``paired`` weights and of ``splits``.

    ``tr sqrtm(S1 S2)`` with ``S = R.T @ R / (count - 1)`` is the sum of the singular values of
    ``R1 @ R2.T``, over ``sqrt((count1 - 1) (count2 - 1))``: no square root of a rank-deficient
    covariance's rounding. Resamples of equal sizes go through together.
    """
    samples = pooled_samples(a, b, layer)
    out = []
    for first, second in (paired, (splits, 1 - splits)):
        distances = np.empty((1, first.shape[1]))
        sizes = np.stack([first.sum(axis=0), second.sum(axis=0)], axis=1)
        for count1, count2 in np.unique(sizes, axis=0).tolist():
            columns = np.flatnonzero((sizes[:, 0] == count1) & (sizes[:, 1] == count2))
            batch = max(1, _FD_BATCH_VALUES // (max(count1, count2) * samples.shape[1]))
            for part in np.array_split(columns, -(-columns.size // batch)):
                with one_torch_thread():
                    mean1, root1 = _centred_roots(samples[torch.from_numpy(_drawn_images(first, part))])
                    mean2, root2 = _centred_roots(samples[torch.from_numpy(_drawn_images(second, part))])
                    cross = torch.linalg.svdvals(root1 @ root2.mT).sum(dim=-1) / math.sqrt((count1 - 1) * (count2 - 1))
                    traces = root1.square().sum(dim=(1, 2)) / (count1 - 1) + root2.square().sum(dim=(1, 2)) / (count2 - 1)
                    value = ((mean1 - mean2).square().sum(dim=1) + traces - 2 * cross).clamp(min=0)
                distances[0, part] = value.numpy()
        out.append(distances)
    return tuple(out)


def _unit_values(a: VDNALayerGauss, b: VDNALayerGauss, neurons: Neurons | None = None) -> dict[str, torch.Tensor]:
    """One FD per selected layer."""
    require_types(a, b, ("layer-gaussian",), "FD")
    check_comparable(a, b)
    return {layer: _layer_fd(a, b, layer).reshape(1) for layer, _ in select_neurons(a, neurons=neurons)}


DISTANCE = register_distance(Distance(
    name="fd",
    label="fd",
    description="Fréchet distance between the Gaussians of whole layers (FID's formula), averaged over layers",
    set_types=("layer-gaussian",),
    set_distribution="layer-gaussian",
    compare=FD,
    unit_values=_unit_values,
    image_type="image-mean",
    image_distribution="image-mean",
    resample=resampled_fds,
    unit="layer",
    interval="squared",  # the best of the three on real images; FD's bias outgrows every interval with few images
))


__all__ = ["DISTANCE", "FD", "frechet_distance", "psd_sqrt", "resampled_fds", "trace_sqrt_product"]
