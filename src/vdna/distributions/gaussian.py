"""DNA-Gauss: Gaussians fitted to each image's spatially averaged activations.

``gaussian`` keeps one mean and variance per neuron; ``layer-gaussian`` one mean vector and full
covariance per layer (so FD on Inception's last block is FID). Both accumulate the count, mean and
sum of squared deviations in float64 and merge them with Chan et al.'s parallel formula, so the
DNA of A plus the DNA of B equals the DNA of A and B to float64 round-off.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypedDict

import numpy as np
import torch

from .base import Accumulator, DNAType, require_array
from .state import Moments, State, combine_moments, moments_size, unpacked


def spread_from_m2(m2: torch.Tensor, count: int) -> torch.Tensor:
    """Unbiased (co)variance from the sum of squared deviations; zero for a single image."""
    return m2 / (count - 1) if count > 1 else torch.zeros_like(m2)


def _m2_from_spread(spread: torch.Tensor, count: int) -> torch.Tensor:
    """The inverse of :func:`spread_from_m2`."""
    return spread * (count - 1) if count > 1 else torch.zeros_like(spread)


class NeuronMoments(TypedDict):
    """One layer of a ``gaussian`` DNA: float64 ``(neurons,)`` means and variances."""

    mu: torch.Tensor
    var: torch.Tensor


class LayerMoments(TypedDict):
    """One layer of a ``layer-gaussian`` DNA: float64 ``(neurons,)`` mean and ``(neurons, neurons)`` covariance."""

    mu: torch.Tensor
    sigma: torch.Tensor


class _MomentsDNA(DNAType):
    """Shared by both Gaussian DNAs: data ``{layer: {"mu": mean, <spread_key>: (co)variance}}`` in float64."""

    full_covariance = False
    spread_key = "var"

    def _merged_data(self, other: _MomentsDNA) -> dict[str, dict[str, torch.Tensor]]:
        merged = {}
        key = self.spread_key
        for layer, mine in self.data.items():
            theirs = {name: value.to(mine["mu"].device) for name, value in other.data[layer].items()}
            mean, m2 = combine_moments(
                self.num_images,
                mine["mu"],
                _m2_from_spread(mine[key], self.num_images),
                other.num_images,
                theirs["mu"],
                _m2_from_spread(theirs[key], other.num_images),
            )
            merged[layer] = {"mu": mean, key: spread_from_m2(m2, self.num_images + other.num_images)}
        return merged

    def get_all_neurons_in_layer_dist(self, layer_name: str) -> dict[str, torch.Tensor]:
        """``{"mu": ..., spread: ...}`` of one layer."""
        self.check_layer(layer_name)
        return self.data[layer_name]

    def neuron_moments(self, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Each neuron's mean and variance in ``layer`` (a layer-Gaussian's are its covariance's diagonal)."""
        data = self.data[layer]
        return data["mu"], torch.diagonal(data["sigma"]) if self.full_covariance else data["var"]


class VDNAGauss(_MomentsDNA):
    """Per-neuron mean ``mu`` and variance ``var`` of spatially averaged activations."""

    data: dict[str, NeuronMoments]

    type = "gaussian"
    extraction_flags: ClassVar[dict[str, bool]] = {"average_feats_spatially": True}

    @classmethod
    def accumulator(cls, parameters, layers, ranges, device) -> NeuronMomentsAccumulator:
        return NeuronMomentsAccumulator(parameters, layers, device)

    def get_neuron_dist(self, layer_name: str, neuron_idx: int) -> dict[str, torch.Tensor]:
        """``{"mu", "var"}`` of one neuron."""
        self.check_neuron(layer_name, neuron_idx)
        layer = self.data[layer_name]
        return {"mu": layer["mu"][neuron_idx], "var": layer["var"][neuron_idx]}

    def get_all_neurons_dists(self) -> dict[str, torch.Tensor]:
        """``{"mu", "var"}`` over all neurons, layers in order."""
        return {
            key: torch.cat([self.data[layer][key] for layer in self.neurons_list]) for key in ("mu", "var")
        }

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {}
        for layer in self.neurons_list:
            mu, var = self.data[layer]["mu"].cpu().numpy(), self.data[layer]["var"].cpu().numpy()
            arrays[f"mu-{layer}"] = mu.astype(np.float32)
            arrays[f"var-{layer}"] = var.astype(np.float32)
            # vdna 0.1.1 keeps float32 only; float64 copies keep saved DNAs exactly mergeable.
            arrays[f"mu64-{layer}"] = mu.astype(np.float64)
            arrays[f"var64-{layer}"] = var.astype(np.float64)
        return arrays

    @classmethod
    def data_from_arrays(cls, arrays, neurons_list, parameters, origin):
        data = {}
        for layer, neurons in neurons_list.items():
            exact = f"mu64-{layer}" in arrays
            prefix = ("mu64-", "var64-") if exact else ("mu-", "var-")
            mu = require_array(arrays, prefix[0] + layer, (neurons,), "f", origin)
            var = require_array(arrays, prefix[1] + layer, (neurons,), "f", origin)
            if np.any(var < 0):
                raise ValueError(f"{origin}: layer {layer!r} has negative variances")
            data[layer] = {"mu": torch.from_numpy(mu.astype(np.float64)), "var": torch.from_numpy(var.astype(np.float64))}
        return data


class VDNALayerGauss(_MomentsDNA):
    """Per-layer mean vector ``mu`` and full covariance ``sigma`` of spatially averaged activations."""

    data: dict[str, LayerMoments]

    type = "layer-gaussian"
    extraction_flags: ClassVar[dict[str, bool]] = {"average_feats_spatially": True}
    full_covariance = True
    spread_key = "sigma"

    @classmethod
    def accumulator(cls, parameters, layers, ranges, device) -> LayerMomentsAccumulator:
        return LayerMomentsAccumulator(parameters, layers, device)

    def get_neuron_dist(self, layer_name: str, neuron_idx: int) -> dict[str, torch.Tensor]:
        """``{"mu", "sigma"}`` of one neuron (``sigma`` is its variance)."""
        self.check_neuron(layer_name, neuron_idx)
        layer = self.data[layer_name]
        return {"mu": layer["mu"][neuron_idx], "sigma": layer["sigma"][neuron_idx, neuron_idx]}

    def get_all_neurons_dists(self) -> dict[str, dict[str, torch.Tensor]]:
        """``{layer: {"mu", "sigma"}}``."""
        return self.data

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {}
        for layer in self.neurons_list:
            arrays[f"mu-{layer}"] = self.data[layer]["mu"].cpu().numpy().astype(np.float64)
            arrays[f"sigma-{layer}"] = self.data[layer]["sigma"].cpu().numpy().astype(np.float64)
        return arrays

    @classmethod
    def data_from_arrays(cls, arrays, neurons_list, parameters, origin):
        data = {}
        for layer, neurons in neurons_list.items():
            mu = require_array(arrays, f"mu-{layer}", (neurons,), "f", origin)
            sigma = require_array(arrays, f"sigma-{layer}", (neurons, neurons), "f", origin).astype(np.float64)
            scale = max(float(np.abs(sigma).max(initial=0.0)), 1e-300)
            if float(np.abs(sigma - sigma.T).max(initial=0.0)) > 1e-6 * scale:
                raise ValueError(f"{origin}: covariance of layer {layer!r} is not symmetric")
            if np.any(np.diagonal(sigma) < 0):
                raise ValueError(f"{origin}: covariance of layer {layer!r} has negative variances")
            data[layer] = {"mu": torch.from_numpy(mu.astype(np.float64)), "sigma": torch.from_numpy(sigma)}
        return data


def moments_state(full: bool) -> State:
    """The state of a Gaussian accumulator: per layer a packed ``[count, mean, m2]`` vector (:class:`Moments`)."""

    def initial(neurons: int, parameters: dict[str, Any], device: torch.device) -> torch.Tensor:
        return torch.zeros(moments_size(neurons, full), dtype=torch.float64, device=device)

    return State("moments", initial, lambda neurons: Moments(neurons, full))


class MomentsAccumulator(Accumulator):
    """Count, mean and sum of squared deviations (float64) of each image's spatially averaged activations.

    One packed vector per layer (:class:`~vdna.distributions.state.Moments`), merged with Chan et al.'s formula.
    """

    dna_class: ClassVar[type[_MomentsDNA]]

    def _update_layer(self, layer: str, activations: torch.Tensor) -> None:
        per_image = activations.to(torch.float64).mean(dim=2)
        if torch.isnan(per_image).any():
            raise ValueError(f"layer {layer!r}: the extractor produced NaN activations")
        moments = Moments(self.layers[layer], self.dna_class.full_covariance)
        for image in per_image.split(1):  # image by image: the same sums however images are grouped into batches
            moments.add_samples(self.values["moments"][layer], image)

    def layer_data(self) -> dict[str, dict[str, torch.Tensor]]:
        key, full = self.dna_class.spread_key, self.dna_class.full_covariance
        data = {}
        for layer, neurons in self.layers.items():
            count, mean, m2 = unpacked(self.values["moments"][layer], neurons, full)
            data[layer] = {"mu": mean.to("cpu", copy=True), key: spread_from_m2(m2, count).to("cpu", copy=True)}
        return data


class NeuronMomentsAccumulator(MomentsAccumulator):
    """The accumulator of ``gaussian`` DNAs: per-neuron moments."""

    dna_class = VDNAGauss
    states = (moments_state(False),)


class LayerMomentsAccumulator(MomentsAccumulator):
    """The accumulator of ``layer-gaussian`` DNAs: per-layer mean and cross products."""

    dna_class = VDNALayerGauss
    states = (moments_state(True),)


__all__ = [
    "LayerMomentsAccumulator",
    "MomentsAccumulator",
    "NeuronMomentsAccumulator",
    "VDNAGauss",
    "VDNALayerGauss",
    "spread_from_m2",
]
