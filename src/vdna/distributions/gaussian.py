"""DNA-Gauss: Gaussians fitted to each image's spatially averaged activations.

``gaussian`` keeps one mean and variance per neuron; ``layer-gaussian`` one mean vector and full
covariance per layer (so FD on Inception's last block is FID). Both accumulate the count, mean and
sum of squared deviations in float64 and merge them with Chan et al.'s parallel formula, so the
DNA of A plus the DNA of B equals the DNA of A and B to float64 round-off.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypedDict

import numpy as np
import torch

from .base import Accumulator, DNAType, require_array


def combine_moments(
    count_a: int, mean_a: torch.Tensor, m2_a: torch.Tensor, count_b: int, mean_b: torch.Tensor, m2_b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and sum of squared deviations (vector, or matrix of cross products) of two merged samples."""
    if count_a == 0:
        return mean_b.clone(), m2_b.clone()
    if count_b == 0:
        return mean_a.clone(), m2_a.clone()
    total = count_a + count_b
    delta = mean_b - mean_a
    mean = mean_a + delta * (count_b / total)
    spread = torch.outer(delta, delta) if m2_a.ndim == 2 else delta * delta
    return mean, m2_a + m2_b + spread * (count_a * count_b / total)


def sample_moments(samples: torch.Tensor, full: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and sum of squared deviations of ``(count, neurons)`` float64 samples."""
    mean = samples.mean(dim=0)
    centred = samples - mean
    m2 = centred.T @ centred if full else (centred * centred).sum(dim=0)
    return mean, m2


def spread_from_m2(m2: torch.Tensor, count: int) -> torch.Tensor:
    """Unbiased (co)variance from the sum of squared deviations; zero for a single image."""
    return m2 / (count - 1) if count > 1 else torch.zeros_like(m2)


def m2_from_spread(spread: torch.Tensor, count: int) -> torch.Tensor:
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

    @classmethod
    def accumulator(cls, parameters, layers, ranges, device) -> MomentsAccumulator:
        return MomentsAccumulator(parameters, layers, device, cls)

    def _merged_data(self, other: _MomentsDNA) -> dict[str, dict[str, torch.Tensor]]:
        merged = {}
        key = self.spread_key
        for layer, mine in self.data.items():
            theirs = {name: value.to(mine["mu"].device) for name, value in other.data[layer].items()}
            mean, m2 = combine_moments(
                self.num_images,
                mine["mu"],
                m2_from_spread(mine[key], self.num_images),
                other.num_images,
                theirs["mu"],
                m2_from_spread(theirs[key], other.num_images),
            )
            merged[layer] = {"mu": mean, key: spread_from_m2(m2, self.num_images + other.num_images)}
        return merged

    def get_all_neurons_in_layer_dist(self, layer_name: str) -> dict[str, torch.Tensor]:
        """``{"mu": ..., spread: ...}`` of one layer."""
        self.check_layer(layer_name)
        return self.data[layer_name]


class VDNAGauss(_MomentsDNA):
    """Per-neuron mean ``mu`` and variance ``var`` of spatially averaged activations."""

    data: dict[str, NeuronMoments]

    type = "gaussian"
    extraction_flags: ClassVar[dict[str, bool]] = {"average_feats_spatially": True}

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


class MomentsAccumulator(Accumulator):
    """Count, mean and sum of squared deviations (float64) of each image's spatially averaged activations."""

    def __init__(
        self, parameters: dict[str, Any], layers: Mapping[str, int], device: torch.device, dna_class: type[_MomentsDNA]
    ):
        super().__init__(parameters, layers, device)
        self.dna_class = dna_class
        full = dna_class.full_covariance
        self.mean = {layer: torch.zeros(n, dtype=torch.float64, device=self.device) for layer, n in self.layers.items()}
        self.m2 = {
            layer: torch.zeros((n, n) if full else (n,), dtype=torch.float64, device=self.device)
            for layer, n in self.layers.items()
        }
        self._layer_counts = dict.fromkeys(self.layers, 0)

    def _update_layer(self, layer: str, activations: torch.Tensor) -> None:
        per_image = activations.to(torch.float64).mean(dim=2)
        if torch.isnan(per_image).any():
            raise ValueError(f"layer {layer!r}: the extractor produced NaN activations")
        batch_mean, batch_m2 = sample_moments(per_image, self.dna_class.full_covariance)
        count = self._layer_counts[layer]
        self.mean[layer], self.m2[layer] = combine_moments(
            count, self.mean[layer], self.m2[layer], per_image.shape[0], batch_mean, batch_m2
        )
        self._layer_counts[layer] = count + per_image.shape[0]

    def _merge_state(self, other: MomentsAccumulator) -> None:
        for layer in self.layers:
            self.mean[layer], self.m2[layer] = combine_moments(
                self._layer_counts[layer],
                self.mean[layer],
                self.m2[layer],
                other._layer_counts[layer],
                other.mean[layer].to(self.device),
                other.m2[layer].to(self.device),
            )
            self._layer_counts[layer] += other._layer_counts[layer]

    def _load_state(self, vdna: _MomentsDNA) -> None:
        key = self.dna_class.spread_key
        for layer in self.layers:
            self.mean[layer] = vdna.data[layer]["mu"].to(self.device, torch.float64, copy=True)
            self.m2[layer] = m2_from_spread(vdna.data[layer][key].to(self.device, torch.float64), vdna.num_images)
            self._layer_counts[layer] = vdna.num_images

    def layer_data(self) -> dict[str, dict[str, torch.Tensor]]:
        key = self.dna_class.spread_key
        return {
            layer: {
                "mu": self.mean[layer].to("cpu", copy=True),
                key: spread_from_m2(self.m2[layer], self._layer_counts[layer]).to("cpu", copy=True),
            }
            for layer in self.layers
        }
