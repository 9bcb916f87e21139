"""DNA-hist: one histogram of normalised activations per neuron (eq. 1-2 of the paper)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch

from ..config import option
from ..kernels import Binning, Gathering, accumulate_histograms, layer_binnings
from ..ranges import ActivationRanges
from .base import Accumulator, DNAType, require_array
from .state import SUM, State

_NAME = re.compile(r"histogram-(\d+)")
_INT32_MAX = np.iinfo(np.int32).max


def _parse_bins(pattern: re.Pattern, name: str) -> dict[str, Any] | None:
    """``{"bins": B}`` from a name such as ``histogram-B``; None if ``pattern`` does not match."""
    match = pattern.fullmatch(name)
    if match is None:
        return None
    bins = int(match.group(1))
    if not 2 <= bins <= _INT32_MAX:
        raise ValueError(f"a histogram needs at least 2 bins, got {name!r}")
    return {"bins": bins}


class BinnedDNA(DNAType):
    """What histogram DNAs share: ``B`` bins named in the distribution (``<type>-B``), activation ranges."""

    needs_ranges = True
    name_pattern: re.Pattern

    def __init__(self, name, feature_extractor_name, neurons_list, data, num_images, provenance=None):
        super().__init__(name, feature_extractor_name, neurons_list, data, num_images, provenance)
        parameters = self.parse_name(name)
        if parameters is None:
            raise ValueError(f"not a {self.type} distribution name: {name!r}")
        self.hist_nb_bins = parameters["bins"]

    @classmethod
    def parse_name(cls, name: str) -> dict[str, Any] | None:
        return _parse_bins(cls.name_pattern, name)

    @classmethod
    def from_metadata(cls, distribution: Mapping[str, Any], name: str) -> dict[str, Any]:
        parameters = super().from_metadata(distribution, name)
        stored = distribution.get("hist_nb_bins", parameters["bins"])
        if stored != parameters["bins"]:
            raise ValueError(f"name {name!r} and hist_nb_bins {stored!r} disagree")
        return parameters

    def distribution_metadata(self) -> dict[str, Any]:
        return {"hist_nb_bins": self.hist_nb_bins}


class VDNAHist(BinnedDNA):
    """Histograms ``(neurons, bins)`` of int64 counts per layer, over [-1, 1] after normalisation."""

    data: dict[str, torch.Tensor]

    type = "histogram"
    extraction_flags: ClassVar[dict[str, bool]] = {
        "accumulate_spatial_feats_in_hist": True, "accumulate_sample_feats_in_hist": True, "normalise_feats": True,
    }
    name_pattern = _NAME
    exact_merge = True

    @classmethod
    def create(cls, parameters, feature_extractor_name, neurons_list, data, num_images, provenance=None):
        name = f"histogram-{parameters['bins']}"
        return cls(name, feature_extractor_name, dict(neurons_list), data, num_images, provenance)

    @classmethod
    def accumulator(cls, parameters, layers, ranges, device) -> HistogramAccumulator:
        return HistogramAccumulator(parameters, layers, ranges, device)

    def get_neuron_dist(self, layer_name: str, neuron_idx: int) -> torch.Tensor:
        """Counts of one neuron, shaped ``(1, bins)``."""
        self.check_neuron(layer_name, neuron_idx)
        return self.data[layer_name][neuron_idx].reshape(1, -1)

    def get_all_neurons_in_layer_dist(self, layer_name: str) -> torch.Tensor:
        """Counts ``(neurons, bins)`` of one layer."""
        self.check_layer(layer_name)
        return self.data[layer_name]

    def get_all_neurons_dists(self) -> torch.Tensor:
        """Counts ``(all neurons, bins)``, layers in order."""
        return torch.cat([self.data[layer] for layer in self.neurons_list])

    def _merged_data(self, other: VDNAHist) -> dict[str, torch.Tensor]:
        return {layer: self.data[layer] + other.data[layer].to(self.data[layer].device) for layer in self.data}

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {}
        for layer in self.neurons_list:
            counts = self.data[layer].cpu().numpy()
            # vdna 0.1.1 stores int32; counts beyond its range keep int64 rather than wrap around.
            arrays[layer] = counts.astype(np.int32) if counts.max(initial=0) <= _INT32_MAX else counts
        return arrays

    @classmethod
    def data_from_arrays(cls, arrays, neurons_list, parameters, origin):
        extra = sorted(set(arrays) - set(neurons_list))
        if extra:
            raise ValueError(f"{origin}: arrays {extra} are not layers of this DNA")
        data = {}
        for layer, neurons in neurons_list.items():
            counts = require_array(arrays, layer, (neurons, parameters["bins"]), "iu", origin)
            if counts.dtype.kind == "i" and counts.min(initial=0) < 0:
                raise ValueError(f"{origin}: layer {layer!r} has negative histogram counts")
            data[layer] = torch.from_numpy(counts.astype(np.int64))
        return data


def binnings(
    layers: Mapping[str, int], ranges: ActivationRanges | None, bins: int, device: torch.device
) -> dict[str, Binning]:
    """Each layer's binning of activations normalised with its activation ranges (which histograms need)."""
    if ranges is None:
        raise ValueError(
            "histogram DNAs need per-neuron activation ranges, and this extractor has none: "
            f"give {option('activation_ranges')} (a ranges file made with `vdna calibrate`)"
        )
    return layer_binnings(ranges, layers, bins, device)


def _empty_counts(neurons: int, parameters: dict[str, Any], device: torch.device) -> torch.Tensor:
    return torch.zeros((neurons, parameters["bins"]), dtype=torch.int64, device=device)


class HistogramAccumulator(Accumulator):
    """Running per-neuron counts; activations are normalised with the extractor's ranges, then binned.

    On the CPU, the activations of a few images are gathered per layer and binned together
    (:class:`vdna.kernels.Gathering`). Counts are exact sums, so they do not depend on how images
    are grouped.
    """

    dna_class = VDNAHist
    states = (State("counts", _empty_counts, SUM),)

    def __init__(
        self,
        parameters: dict[str, Any],
        layers: Mapping[str, int],
        ranges: ActivationRanges | None,
        device: torch.device,
    ):
        super().__init__(parameters, layers, device, ranges)
        self.binning = binnings(self.layers, ranges, parameters["bins"], self.device)
        self._gathering = Gathering(parameters["bins"], self._bin)

    def update(self, activations: Mapping[str, torch.Tensor]) -> None:
        self._gathering.plan({layer: activations[layer] for layer in self.layers if layer in activations})
        super().update(activations)

    def _update_layer(self, layer: str, activations: torch.Tensor) -> None:
        self._gathering.add(layer, activations)

    def _bin(self, layer: str, activations: torch.Tensor) -> None:
        nans = accumulate_histograms(activations, self.values["counts"][layer], self.binning[layer])
        if nans:
            raise ValueError(f"layer {layer!r}: the extractor produced {nans} NaN activation(s)")

    def flush(self) -> None:
        """Bin every gathered activation now."""
        self._gathering.flush()

    def discard(self) -> None:
        self._gathering.discard()

    def layer_data(self) -> dict[str, torch.Tensor]:
        return {layer: counts.to("cpu", copy=True) for layer, counts in self.values["counts"].items()}


__all__ = [
    "BinnedDNA",
    "HistogramAccumulator",
    "VDNAHist",
    "binnings",
]
