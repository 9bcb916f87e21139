"""Per-neuron minimum and maximum activation over all positions and images."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypedDict

import numpy as np
import torch

from ..ranges import ActivationRanges
from .base import Accumulator, DNAType, require_array
from .state import MAX, MIN, State


class Extremes(TypedDict):
    """One layer of an ``activation-ranges`` DNA: float32 ``(neurons,)`` minima and maxima."""

    min: torch.Tensor
    max: torch.Tensor


class VDNAActivationRanges(DNAType):
    """``{layer: {"min": (neurons,), "max": (neurons,)}}`` in float32."""

    data: dict[str, Extremes]

    type = "activation-ranges"
    extraction_flags: ClassVar[dict[str, bool]] = {"keep_only_min_max": True}
    exact_merge = True

    @classmethod
    def accumulator(cls, parameters, layers, ranges, device) -> RangesAccumulator:
        return RangesAccumulator(parameters, layers, device)

    def get_neuron_dist(self, layer_name: str, neuron_idx: int) -> dict[str, torch.Tensor]:
        """``{"min", "max"}`` of one neuron."""
        self.check_neuron(layer_name, neuron_idx)
        layer = self.data[layer_name]
        return {"min": layer["min"][neuron_idx], "max": layer["max"][neuron_idx]}

    def get_all_neurons_in_layer_dist(self, layer_name: str) -> dict[str, torch.Tensor]:
        """``{"min", "max"}`` of one layer."""
        self.check_layer(layer_name)
        return self.data[layer_name]

    def get_all_neurons_dists(self) -> dict[str, torch.Tensor]:
        """``{"min", "max"}`` over all neurons, layers in order."""
        return {key: torch.cat([self.data[layer][key] for layer in self.neurons_list]) for key in ("min", "max")}

    def _merged_data(self, other: VDNAActivationRanges) -> dict[str, dict[str, torch.Tensor]]:
        return {
            layer: {
                "min": torch.minimum(self.data[layer]["min"], other.data[layer]["min"]),
                "max": torch.maximum(self.data[layer]["max"], other.data[layer]["max"]),
            }
            for layer in self.data
        }

    def to_ranges(self, margin: float = 0.2, description: str = "") -> ActivationRanges:
        """These minima and maxima as activation ranges for histogram DNAs."""
        return ActivationRanges(
            extractor=self.feature_extractor_name,
            minimum={layer: self.data[layer]["min"].cpu().numpy() for layer in self.neurons_list},
            maximum={layer: self.data[layer]["max"].cpu().numpy() for layer in self.neurons_list},
            margin=margin,
            num_images=self.num_images,
            description=description,
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {}
        for layer in self.neurons_list:
            arrays[f"min-{layer}"] = self.data[layer]["min"].cpu().numpy().astype(np.float32)
            arrays[f"max-{layer}"] = self.data[layer]["max"].cpu().numpy().astype(np.float32)
        return arrays

    @classmethod
    def data_from_arrays(cls, arrays, neurons_list, parameters, origin):
        data = {}
        for layer, neurons in neurons_list.items():
            low = require_array(arrays, f"min-{layer}", (neurons,), "f", origin)
            high = require_array(arrays, f"max-{layer}", (neurons,), "f", origin)
            if np.any(low > high):
                raise ValueError(f"{origin}: layer {layer!r} has a minimum above its maximum")
            data[layer] = {"min": torch.from_numpy(low.astype(np.float32)), "max": torch.from_numpy(high.astype(np.float32))}
        return data


def _filled(value: float) -> Callable[[int, dict[str, Any], torch.device], torch.Tensor]:
    def initial(neurons: int, parameters: dict[str, Any], device: torch.device) -> torch.Tensor:
        return torch.full((neurons,), value, dtype=torch.float32, device=device)

    return initial


class RangesAccumulator(Accumulator):
    """Running per-neuron minimum and maximum."""

    dna_class = VDNAActivationRanges
    states = (State("min", _filled(float("inf")), MIN), State("max", _filled(float("-inf")), MAX))

    def _update_layer(self, layer: str, activations: torch.Tensor) -> None:
        values = activations.to(torch.float32)
        if torch.isnan(values).any():
            raise ValueError(f"layer {layer!r}: the extractor produced NaN activations")
        low, high = torch.aminmax(values.transpose(0, 1).reshape(values.shape[1], -1), dim=1)
        MIN.merge(self.values["min"][layer], low)
        MAX.merge(self.values["max"][layer], high)

    def layer_data(self) -> dict[str, dict[str, torch.Tensor]]:
        return {
            layer: {
                "min": self.values["min"][layer].to("cpu", torch.float32, copy=True),
                "max": self.values["max"][layer].to("cpu", torch.float32, copy=True),
            }
            for layer in self.layers
        }


__all__ = [
    "RangesAccumulator",
    "VDNAActivationRanges",
]
