"""Which neurons differ: neuron-wise sensitivity between two DNAs, ranked, and neuron selections.

A selection is a mapping ``{layer: neuron indices}`` that ``EMD(..., neurons=selection)`` and
``NFD(..., neurons=selection)`` accept, so a comparison can focus on the neurons that react to an
attribute (section 5.3 of the paper) or to realism (section 5.4).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from .distances import EMD, NeuronSelection
from .dna import VDNA


@dataclass(frozen=True)
class Neuron:
    """One neuron of a DNA, with its distance between two DNAs."""

    layer: str
    index: int
    distance: float


def neuron_distances(
    vdna1: VDNA, vdna2: VDNA, metric: Callable[..., object] = EMD, neurons: Mapping | None = None
) -> dict[str, torch.Tensor]:
    """``{layer: per-neuron distance}`` between two DNAs (all neurons, or those of ``neurons``)."""
    return metric(vdna1, vdna2, return_neuron_wise=True, neurons=neurons)


def rank_neurons(vdna1: VDNA, vdna2: VDNA, metric: Callable[..., object] = EMD) -> list[Neuron]:
    """Every neuron, most sensitive first: largest distance between the two DNAs (ties by layer order, index)."""
    per_layer = neuron_distances(vdna1, vdna2, metric)
    neurons = [
        Neuron(layer, index, float(value))
        for layer, values in per_layer.items()
        for index, value in enumerate(values.tolist())
    ]
    return sorted(neurons, key=lambda neuron: -neuron.distance)


__all__ = ["Neuron", "NeuronSelection", "neuron_distances", "rank_neurons"]
