"""Which neurons differ: neuron-wise sensitivity between two DNAs, ranked, and neuron selections.

A selection is a mapping ``{layer: neuron indices}`` that ``EMD(..., neurons=selection)`` and
``NFD(..., neurons=selection)`` accept, so a comparison can focus on the neurons that react to an
attribute (section 5.3 of the paper) or to realism (section 5.4).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch

from .distances import EMD
from .dna import VDNA


@dataclass(frozen=True)
class Neuron:
    """One neuron of a DNA, with its distance between two DNAs."""

    layer: str
    index: int
    distance: float


class NeuronSelection(Mapping):
    """Neurons by layer: ``{layer: sorted indices}``, in the DNA's layer order."""

    def __init__(self, indices: Mapping[str, Sequence[int]]):
        self._indices = {layer: sorted({int(i) for i in chosen}) for layer, chosen in indices.items() if len(chosen)}

    def __getitem__(self, layer: str) -> list[int]:
        return self._indices[layer]

    def __iter__(self) -> Iterator[str]:
        return iter(self._indices)

    def __len__(self) -> int:
        return len(self._indices)

    @property
    def num_neurons(self) -> int:
        """Neurons selected over all layers."""
        return sum(len(indices) for indices in self._indices.values())

    @classmethod
    def layers(cls, vdna: VDNA, layers: Sequence[str]) -> NeuronSelection:
        """Every neuron of the given layers."""
        for layer in layers:
            vdna.check_layer(layer)
        return cls({layer: range(vdna.neurons_list[layer]) for layer in layers})

    @classmethod
    def top(cls, ranked: Sequence[Neuron], count: int) -> NeuronSelection:
        """The first ``count`` neurons of a ranking."""
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        chosen: dict[str, list[int]] = {}
        for neuron in ranked[:count]:
            chosen.setdefault(neuron.layer, []).append(neuron.index)
        return cls(chosen)

    def __repr__(self) -> str:
        return f"NeuronSelection({self.num_neurons} neurons in {len(self)} layers)"


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
