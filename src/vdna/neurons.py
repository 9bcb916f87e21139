"""Which neurons differ: neuron-wise sensitivity between two DNAs, ranked, and neuron selections.

A selection is a mapping ``{layer: neuron indices}`` that ``EMD(..., neurons=selection)`` and
``NFD(..., neurons=selection)`` accept, so a comparison can focus on the neurons that react to an
attribute (section 5.3 of the paper) or to realism (section 5.4).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from .distances import NeuronSelection, get_distance, list_distances
from .dna import VDNA


@dataclass(frozen=True)
class Neuron:
    """One neuron of a DNA, with its distance between two DNAs."""

    layer: str
    index: int
    distance: float


def neuron_distances(
    vdna1: VDNA, vdna2: VDNA, metric: str | Callable[..., object] = "emd", neurons: Mapping | None = None
) -> dict[str, torch.Tensor]:
    """``{layer: per-neuron distance}`` between two DNAs (all neurons, or those of ``neurons``).

    ``metric``: a registered distance measured neuron by neuron (``"emd"``, ``"nfd"``, ``"smd"``:
    its per-unit values), or a function taking ``return_neuron_wise=True`` as :func:`~vdna.EMD` does.
    """
    if callable(metric):
        return metric(vdna1, vdna2, return_neuron_wise=True, neurons=neurons)
    distance = get_distance(metric)
    if distance.unit != "neuron":
        raise ValueError(f"{metric} compares whole layers, not neurons; rank neurons by {', '.join(neuron_wise())}")
    return distance.unit_values(vdna1, vdna2, neurons=neurons)


def neuron_wise() -> list[str]:
    """The registered distances measured neuron by neuron."""
    return [name for name in list_distances() if get_distance(name).unit == "neuron"]


def rank_neurons(vdna1: VDNA, vdna2: VDNA, metric: str | Callable[..., object] = "emd") -> list[Neuron]:
    """Every neuron, most sensitive first: largest distance between the two DNAs (ties by layer order, index)."""
    per_layer = neuron_distances(vdna1, vdna2, metric)
    neurons = [
        Neuron(layer, index, float(value))
        for layer, values in per_layer.items()
        for index, value in enumerate(values.tolist())
    ]
    return sorted(neurons, key=lambda neuron: -neuron.distance)


__all__ = ["Neuron", "NeuronSelection", "neuron_distances", "neuron_wise", "rank_neurons"]
