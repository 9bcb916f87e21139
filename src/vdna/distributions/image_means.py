"""Per-image spatially averaged activations of a whole image set: the samples the Gaussian DNAs fit.

DNA-Gauss and the layer-Gaussian (FD) DNAs fit one sample per image, its activations averaged over
positions. Keeping those samples (``images x neurons`` float64, a few kB per image) gives the
Gaussian DNA of any subset of the images (equal, to float64 round-off, to ``make_vdna`` on that
subset) without running the network again: for sample-size curves and attribute splits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
import torch

from .base import NAMES_KEY, Accumulator, DNAType, PerImageDNA, require_array
from .gaussian import VDNAGauss, VDNALayerGauss, spread_from_m2
from .state import CAT, State, sample_moments


class VDNAImageMeans(PerImageDNA):
    """``data[layer]``: ``(images, neurons)`` float64, each image's activations averaged over positions."""

    data: dict[str, torch.Tensor]

    type = "image-mean"
    extraction_flags: ClassVar[dict[str, bool]] = {"average_feats_spatially": True}
    set_types: ClassVar[dict[str, str]] = {"gaussian": "gaussian", "layer-gaussian": "layer_gaussian"}

    @classmethod
    def create(cls, parameters, feature_extractor_name, neurons_list, data, num_images, provenance=None):
        return cls(cls.type, feature_extractor_name, dict(neurons_list), data, num_images, provenance)

    @classmethod
    def accumulator(cls, parameters, layers, ranges, device) -> ImageMeansAccumulator:
        return ImageMeansAccumulator(parameters, layers, device)

    def _chosen(self, indices: Sequence[int] | np.ndarray | None) -> torch.Tensor:
        if indices is None:
            return torch.arange(self.num_images)
        chosen = torch.as_tensor(np.asarray(indices, dtype=np.int64).reshape(-1))
        if chosen.numel() == 0:
            raise ValueError("no images chosen")
        if chosen.min() < 0 or chosen.max() >= self.num_images:
            raise IndexError(f"image indices must lie in [0, {self.num_images}), got {chosen.tolist()[:10]}")
        return chosen

    def _fit(self, dna_class: type, indices: Sequence[int] | np.ndarray | None) -> DNAType:
        chosen = self._chosen(indices)
        data = {}
        for layer in self.neurons_list:
            mean, m2 = sample_moments(self.data[layer][chosen.to(self.data[layer].device)], dna_class.full_covariance)
            data[layer] = {"mu": mean, dna_class.spread_key: spread_from_m2(m2, chosen.numel())}
        names = [self.provenance.images[i] for i in chosen.tolist()]
        return dna_class.create({}, self.feature_extractor_name, self.neurons_list, data, chosen.numel(),
                                replace(self.provenance, images=names, skipped=[]))

    def gaussian(self, indices: Sequence[int] | np.ndarray | None = None) -> VDNAGauss:
        """The per-neuron Gaussian DNA (``gaussian``) of the images ``indices`` (all by default)."""
        return self._fit(VDNAGauss, indices)

    def layer_gaussian(self, indices: Sequence[int] | np.ndarray | None = None) -> VDNALayerGauss:
        """The layer-Gaussian DNA (``layer-gaussian``, for FD) of the images ``indices`` (all by default)."""
        return self._fit(VDNALayerGauss, indices)

    def select_images(self, indices: Sequence[int] | np.ndarray) -> VDNAImageMeans:
        """The rows of the images ``indices`` only, in that order."""
        chosen = self._chosen(indices)
        names = [self.provenance.images[i] for i in chosen.tolist()]
        data = {layer: self.data[layer][chosen.to(self.data[layer].device)] for layer in self.neurons_list}
        return VDNAImageMeans(self.name, self.feature_extractor_name, self.neurons_list, data, chosen.numel(),
                              replace(self.provenance, images=names, skipped=[]))

    def _merged_data(self, other: VDNAImageMeans) -> dict[str, torch.Tensor]:
        return {layer: torch.cat([self.data[layer], other.data[layer].to(self.data[layer].device)]) for layer in self.data}

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = self.names_array()
        arrays.update({layer: self.data[layer].cpu().numpy() for layer in self.neurons_list})
        return arrays

    @classmethod
    def data_from_arrays(cls, arrays, neurons_list, parameters, origin):
        extra = sorted(set(arrays) - {NAMES_KEY, *neurons_list})
        if extra:
            raise ValueError(f"{origin}: arrays {extra} are not part of an image-mean DNA")
        images = cls.stored_image_count(arrays, origin)
        return {
            layer: torch.from_numpy(require_array(arrays, layer, (images, neurons), "f", origin).astype(np.float64))
            for layer, neurons in neurons_list.items()
        }


def _no_rows(neurons: int, parameters: dict[str, Any], device: torch.device) -> list[torch.Tensor]:
    return []


class ImageMeansAccumulator(Accumulator):
    """Each image's activations averaged over positions, in float64, as the Gaussian accumulators average them."""

    dna_class = VDNAImageMeans
    states = (State("rows", _no_rows, CAT),)

    def _update_layer(self, layer: str, activations: torch.Tensor) -> None:
        per_image = activations.to(torch.float64).mean(dim=2)
        if torch.isnan(per_image).any():
            raise ValueError(f"layer {layer!r}: the extractor produced NaN activations")
        self.values["rows"][layer].append(per_image.cpu())

    def layer_data(self) -> dict[str, torch.Tensor]:
        return {
            layer: torch.cat(rows).to(torch.float64) if rows else torch.zeros((0, self.layers[layer]), dtype=torch.float64)
            for layer, rows in self.values["rows"].items()
        }


__all__ = [
    "ImageMeansAccumulator",
    "VDNAImageMeans",
]
