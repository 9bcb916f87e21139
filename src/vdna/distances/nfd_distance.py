"""dna-fd (NFD): the Fréchet distance between each neuron's Gaussians, averaged over neurons.

The 1-D Fréchet distance of two Gaussians is ``(mu1 - mu2)^2 + (sd1 - sd2)^2``. :func:`NFD`
compares two Gaussian DNAs (vdna 0.1.1's API); :func:`resampled_nfds` the Gaussians of many
weighted resamples of per-image means at once (weighted means and variances, compiled, parallel
over neurons; the results do not depend on the number of threads).
"""

from __future__ import annotations

import numpy as np
import torch

from ..distributions import VDNAGauss, VDNAImageMeans, VDNALayerGauss
from ..dna import VDNA
from ._registry import Distance, register_distance
from ._resampling import Pairs, pooled_samples, weighted_moments
from ._selection import Neurons, NeuronWeights, neuron_metric, neuron_weights_given, pick


def frechet_1d(mu1: torch.Tensor, var1: torch.Tensor, mu2: torch.Tensor, var2: torch.Tensor) -> torch.Tensor:
    """Fréchet distance between 1-D Gaussians, elementwise: ``(mu1 - mu2)^2 + (sd1 - sd2)^2``.

    Equal to ``(mu1 - mu2)^2 + var1 + var2 - 2 sqrt(var1 var2)``, written so it is never negative.
    """
    mu1, var1, mu2, var2 = (t.to(torch.float64) for t in (mu1, var1, mu2, var2))
    if (var1 < 0).any() or (var2 < 0).any():
        raise ValueError("variances must not be negative")
    return (mu1 - mu2).square() + (var1.sqrt() - var2.sqrt()).square()


def NFD(
    vdna1: VDNAGauss | VDNALayerGauss,
    vdna2: VDNAGauss | VDNALayerGauss,
    use_neurons_from_layer: str | None = None,
    use_neuron_index: int | None = None,
    return_neuron_wise: bool = False,
    neuron_weights: NeuronWeights | None = None,
    neurons: Neurons | None = None,
    *,
    weights: NeuronWeights | None = None,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """Neuron-wise Fréchet distance (DNA-FD) between Gaussian DNAs, averaged, weighted or neuron-wise.

    Layer-Gaussian DNAs contribute the diagonal of their covariances, as in vdna 0.1.1. Neurons and
    ``neuron_weights`` (``weights=`` is its former name) as :func:`~vdna.EMD` takes them.
    """

    def layer_nfd(a: VDNA, b: VDNA, layer: str, index: torch.Tensor | None) -> torch.Tensor:
        mu1, var1 = (pick(t, index) for t in a.neuron_moments(layer))
        mu2, var2 = (pick(t, index).to(mu1.device) for t in b.neuron_moments(layer))
        return frechet_1d(mu1, var1, mu2, var2)

    return neuron_metric(
        "NFD", ("gaussian", "layer-gaussian"), layer_nfd, vdna1, vdna2, use_neurons_from_layer, use_neuron_index,
        return_neuron_wise, neuron_weights_given(neuron_weights, weights), neurons,
    )


def resampled_nfds(
    a: VDNAImageMeans, b: VDNAImageMeans | None, layer: str, index: torch.Tensor | None, paired: Pairs, splits: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    samples = pooled_samples(a, b, layer)
    if index is not None:
        samples = samples[:, index]
    samples = np.ascontiguousarray(samples.T.numpy())
    return tuple(
        frechet_1d(*weighted_moments(samples, first), *weighted_moments(samples, second)).numpy()
        for first, second in (paired, (splits, 1 - splits))
    )


def _unit_values(a: VDNAGauss, b: VDNAGauss, neurons: Neurons | None = None) -> dict[str, torch.Tensor]:
    return NFD(a, b, neurons=neurons, return_neuron_wise=True)


DISTANCE = register_distance(Distance(
    name="nfd",
    label="dna-fd",
    description="Fréchet distance between each neuron's Gaussians, averaged over neurons",
    set_types=("gaussian", "layer-gaussian"),
    set_distribution="gaussian",
    compare=NFD,
    unit_values=_unit_values,
    image_type="image-mean",
    image_distribution="image-mean",
    resample=resampled_nfds,
    interval="basic",  # a sum of squared differences: sampling noise adds linearly
))


__all__ = ["DISTANCE", "NFD", "frechet_1d", "resampled_nfds"]
