"""Which neurons a comparison uses, and with what weights: checked once, for every distance.

A selection names neurons by layer: :class:`NeuronSelection`, or any mapping ``{layer: neuron
indices, or None for all of the layer's}``. Per-neuron (or per-layer) weights are one value per
compared unit, as a vector or ``{layer: values}``.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Union

import numpy as np
import torch

from ..dna import VDNA, check_comparable

Neurons = Mapping[str, Union[Sequence[int], torch.Tensor, None]]
"""A selection of neurons: :class:`NeuronSelection` or ``{layer: indices, or None for all}``."""
NeuronWeights = Union[torch.Tensor, Sequence[float], Mapping[str, Union[torch.Tensor, Sequence[float]]]]
"""One weight per compared neuron (or layer): a vector, or ``{layer: values}``."""
Selection = list[tuple[str, Union[torch.Tensor, None]]]
"""``(layer, neuron indices or None for all)`` pairs, in layer order: what :func:`select_neurons` gives."""


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
    def top(cls, ranked: Sequence[Any], count: int) -> NeuronSelection:
        """The first ``count`` neurons of a ranking (items with ``layer`` and ``index``, e.g. :class:`vdna.neurons.Neuron`)."""
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        chosen: dict[str, list[int]] = {}
        for neuron in ranked[:count]:
            chosen.setdefault(neuron.layer, []).append(neuron.index)
        return cls(chosen)

    def __repr__(self) -> str:
        return f"NeuronSelection({self.num_neurons} neurons in {len(self)} layers)"


def require_types(vdna1: Any, vdna2: Any, types: Sequence[str], metric: str) -> None:
    """Refuse arguments that are not DNAs of one of ``types`` (DNA type names), naming the one at fault."""
    names = " or ".join(types)
    for position, vdna in (("first", vdna1), ("second", vdna2)):
        if not isinstance(vdna, VDNA):
            raise TypeError(f"the {position} argument is a {type(vdna).__name__}, not a VDNA")
        if vdna.type not in types:
            raise ValueError(f"{metric} needs {names} DNAs; the {position} one is {vdna.type}")


def _as_index(indices: Sequence[int] | torch.Tensor | None, layer: str, vdna: VDNA) -> torch.Tensor | None:
    """A layer's selected neurons as int64 indices, checked: integers (not floats, not bools), in range, at least one."""
    if indices is None:
        return None
    if isinstance(indices, (str, bytes)) or not isinstance(indices, (Sequence, torch.Tensor, range, np.ndarray)):
        raise TypeError(f"neurons of layer {layer!r} must be a sequence of neuron indices (or None for all), "
                        f"got {type(indices).__name__}")
    if isinstance(indices, (torch.Tensor, np.ndarray)):
        integral = indices.dtype.kind in "iu" if isinstance(indices, np.ndarray) else (
            indices.dtype != torch.bool and not indices.is_floating_point() and not indices.is_complex())
        if not integral:
            raise TypeError(f"neuron indices of layer {layer!r} must be integers, got an array of {indices.dtype}")
        index = torch.as_tensor(indices).to(torch.int64).reshape(-1)
    else:
        bad = [value for value in indices if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral)]
        if bad:
            raise TypeError(f"neuron indices of layer {layer!r} must be integers, got {bad[0]!r}")
        index = torch.as_tensor([int(value) for value in indices], dtype=torch.int64)
    count = vdna.neurons_list[layer]
    if index.numel() == 0:
        raise ValueError(f"neurons selects no neuron of layer {layer!r}; name at least one, or None for all of them")
    if index.min() < 0 or index.max() >= count:
        raise ValueError(f"neuron indices for layer {layer!r} must lie in [0, {count}), got {index.tolist()[:10]}")
    return index


def select_neurons(
    vdna: VDNA,
    use_neurons_from_layer: str | None = None,
    use_neuron_index: int | None = None,
    neurons: Neurons | None = None,
) -> Selection:
    """The ``(layer, neuron indices or None for all)`` pairs a comparison uses, in layer order."""
    if use_neuron_index is not None and use_neurons_from_layer is None:
        raise ValueError("use_neuron_index needs use_neurons_from_layer to name its layer")
    if neurons is not None:
        if use_neurons_from_layer is not None:
            raise ValueError("pass either neurons= or use_neurons_from_layer=, not both")
        if not isinstance(neurons, Mapping):
            raise TypeError(f"neurons must map layers to neuron indices (or None for all), got {type(neurons).__name__}")
        if not neurons:
            raise ValueError("neurons selects nothing: name at least one layer, {layer: None} for all its neurons")
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


def pick(values: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
    """The rows ``index`` of ``values`` (all of them for None)."""
    return values if index is None else values[index.to(values.device)]


def selection_sizes(selection: Selection, vdna: VDNA) -> list[tuple[str, int]]:
    """``(layer, number of selected neurons)`` of a :func:`select_neurons` selection."""
    return [(layer, vdna.neurons_list[layer] if index is None else index.numel()) for layer, index in selection]


def weights_vector(weights: NeuronWeights, parts: list[tuple[str, int]], unit: str) -> torch.Tensor:
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
    if (vector < 0).any():
        first = int((vector < 0).nonzero()[0, 0])
        raise ValueError(f"weights must not be negative (a weighted distance is a sum of distances), got {float(vector[first]):g} "
                         f"for {unit} {first}")
    if not (vector > 0).any():
        raise ValueError("weights are all zero: they would weigh no neuron at all")
    return vector


def neuron_weights_given(neuron_weights: NeuronWeights | None, weights: NeuronWeights | None) -> NeuronWeights | None:
    """``neuron_weights``, or ``weights`` (its former name, with a deprecation warning); refused if both are given."""
    if weights is None:
        return neuron_weights
    if neuron_weights is not None:
        raise TypeError("give neuron_weights= only (weights= is its former name)")
    warnings.warn("weights= is now named neuron_weights=", DeprecationWarning, stacklevel=3)
    return weights


def combine(
    per_layer: dict[str, torch.Tensor],
    return_neuron_wise: bool,
    use_neuron_index: int | None,
    neuron_weights: NeuronWeights | None,
    selection: Selection,
    vdna: VDNA,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """Per-layer neuron distances averaged (EMD_avg), weighted (eq. 5) or returned per neuron."""
    if return_neuron_wise:
        if use_neuron_index is not None:
            raise ValueError("return_neuron_wise cannot be combined with use_neuron_index")
        if neuron_weights is not None:
            raise ValueError("return_neuron_wise returns unweighted distances; do not pass weights")
        return per_layer
    values = torch.cat(list(per_layer.values()))
    if neuron_weights is None:
        return values.mean()
    return (weights_vector(neuron_weights, selection_sizes(selection, vdna), "neuron").to(values.device) * values).sum()


def neuron_metric(
    metric: str,
    types: Sequence[str],
    layer_distance: Callable[[VDNA, VDNA, str, torch.Tensor | None], torch.Tensor],
    vdna1: VDNA,
    vdna2: VDNA,
    use_neurons_from_layer: str | None,
    use_neuron_index: int | None,
    return_neuron_wise: bool,
    neuron_weights: NeuronWeights | None,
    neurons: Neurons | None,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """Check, select, compute ``layer_distance`` per selected layer, then average, weight or return per neuron."""
    require_types(vdna1, vdna2, types, metric)
    check_comparable(vdna1, vdna2, same_type=len(types) == 1)
    selection = select_neurons(vdna1, use_neurons_from_layer, use_neuron_index, neurons)
    per_layer = {layer: layer_distance(vdna1, vdna2, layer, index) for layer, index in selection}
    return combine(per_layer, return_neuron_wise, use_neuron_index, neuron_weights, selection, vdna1)


__all__ = [
    "NeuronSelection",
    "NeuronWeights",
    "Neurons",
    "Selection",
    "combine",
    "neuron_metric",
    "neuron_weights_given",
    "pick",
    "require_types",
    "select_neurons",
    "selection_sizes",
    "weights_vector",
]
