"""dna-smd: the standardised mean difference of each neuron between two sets, averaged over neurons.

For each neuron, ``|mu_a - mu_b| / sqrt((var_a + var_b) / 2)`` (Cohen's d): how far the neuron's
mean activation moved between the sets, in units of its spread within them. It is computed from
Gaussian DNAs, so it reads how far apart two sets are in words a reader can check ("the neurons'
means moved by 0.4 of their spread, on average"). Per-image means give its statistics (each
resample's Gaussians are made from them).
"""

from __future__ import annotations

import torch

from ..distributions import VDNAGauss, VDNALayerGauss
from ..dna import VDNA
from ._registry import Distance, register_distance
from ._selection import Neurons, NeuronWeights, neuron_metric, pick


def standardised_mean_difference(mu1: torch.Tensor, var1: torch.Tensor, mu2: torch.Tensor, var2: torch.Tensor) -> torch.Tensor:
    """``|mu1 - mu2| / sqrt((var1 + var2) / 2)`` elementwise, float64; 0 where both are constant at the same value."""
    mu1, var1, mu2, var2 = (t.to(torch.float64) for t in (mu1, var1, mu2, var2))
    gap, spread = (mu1 - mu2).abs(), ((var1 + var2) / 2).sqrt()
    constant = spread == 0
    if bool((constant & (gap > 0)).any()):
        raise ValueError("the standardised mean difference is undefined for a neuron constant in both sets at "
                         "different values")
    return torch.where(constant, torch.zeros_like(gap), gap / torch.where(constant, torch.ones_like(spread), spread))


def SMD(
    vdna1: VDNAGauss | VDNALayerGauss,
    vdna2: VDNAGauss | VDNALayerGauss,
    use_neurons_from_layer: str | None = None,
    use_neuron_index: int | None = None,
    return_neuron_wise: bool = False,
    neuron_weights: NeuronWeights | None = None,
    neurons: Neurons | None = None,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """Standardised mean difference between Gaussian DNAs: averaged over the selected neurons, weighted or neuron-wise.

    Neurons and ``neuron_weights`` as :func:`~vdna.EMD` takes them.
    """

    def layer_smd(a: VDNA, b: VDNA, layer: str, index: torch.Tensor | None) -> torch.Tensor:
        mu1, var1 = (pick(t, index) for t in a.neuron_moments(layer))
        mu2, var2 = (pick(t, index).to(mu1.device) for t in b.neuron_moments(layer))
        return standardised_mean_difference(mu1, var1, mu2, var2)

    return neuron_metric("SMD", ("gaussian", "layer-gaussian"), layer_smd, vdna1, vdna2, use_neurons_from_layer,
                         use_neuron_index, return_neuron_wise, neuron_weights, neurons)


def _unit_values(a: VDNAGauss, b: VDNAGauss, neurons: Neurons | None = None) -> dict[str, torch.Tensor]:
    return SMD(a, b, neurons=neurons, return_neuron_wise=True)


DISTANCE = register_distance(Distance(
    name="smd",
    label="dna-smd",
    description="standardised difference of each neuron's mean activation (Cohen's d), averaged over neurons",
    set_types=("gaussian", "layer-gaussian"),
    set_distribution="gaussian",
    compare=SMD,
    unit_values=_unit_values,
    image_type="image-mean",
    image_distribution="image-mean",
    interval="squared",  # a first-power distance: sampling noise adds in quadrature
))


__all__ = ["DISTANCE", "SMD", "standardised_mean_difference"]
