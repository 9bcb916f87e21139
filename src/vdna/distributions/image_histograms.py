"""Per-image DNA-hist of a whole image set, made in one pass and kept sparse.

An image's histograms hold few non-empty bins (a layer of 49 positions fills at most 49 of a
neuron's 1000 bins), so each layer stores, image after image and neuron after neuron, only the
non-empty bins and their counts (compressed sparse rows). From that, any image's DNA, the DNA of
any subset (sums of counts: exactly what ``make_vdna`` gives for those images) and the EMD of
every image to a reference DNA (section 5.1 of the paper) are computed without densifying.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar, TypedDict

import numba
import numpy as np
import torch

from ..dna import Provenance
from ..kernels import accumulate_histograms, compiled_by
from ..ranges import ActivationRanges
from .base import NAMES_KEY, Accumulator, PerImageDNA, require_array
from .histogram import BinnedDNA, VDNAHist, binnings
from .state import CAT, State

_NAME = re.compile(r"image-histogram-(\d+)")
def _layer_keys(layer: str) -> tuple[str, str, str]:
    return f"{layer}/row_sizes", f"{layer}/bins", f"{layer}/counts"


class SparseHistograms(TypedDict):
    """One layer of per-image histograms, image after image and neuron after neuron (compressed sparse rows).

    ``offsets`` (images x neurons + 1, int64): where each image's neuron starts in ``bins`` and
    ``counts``, which hold its non-empty bins (ascending, int16 or int32) and their counts.
    """

    offsets: torch.Tensor
    bins: torch.Tensor
    counts: torch.Tensor


class VDNAImageHist(BinnedDNA, PerImageDNA):
    """One DNA-hist per image: ``data[layer]`` holds ``offsets`` (images x neurons + 1), ``bins`` and ``counts``.

    ``offsets[i * neurons + n]`` is where neuron ``n`` of image ``i`` starts in ``bins``/``counts``
    (its non-empty bins, ascending, and their counts). ``names[i]`` names image ``i``.
    """

    data: dict[str, SparseHistograms]

    type = "image-histogram"
    extraction_flags: ClassVar[dict[str, bool]] = {"accumulate_spatial_feats_in_hist": True, "normalise_feats": True}
    set_types: ClassVar[dict[str, str]] = {"histogram": "subset"}
    name_pattern = _NAME

    @classmethod
    def create(cls, parameters, feature_extractor_name, neurons_list, data, num_images, provenance=None):
        name = f"image-histogram-{parameters['bins']}"
        return cls(name, feature_extractor_name, dict(neurons_list), data, num_images, provenance)

    @classmethod
    def accumulator(cls, parameters, layers, ranges, device) -> ImageHistogramsAccumulator:
        return ImageHistogramsAccumulator(parameters, layers, ranges, device)

    # -- images ------------------------------------------------------------------------------------
    def _check_image(self, index: int) -> None:
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool) or not 0 <= index < self.num_images:
            raise IndexError(f"image index {index!r} is out of range for {self.num_images} images")

    def _image_provenance(self, names: list[str]) -> Provenance:
        return replace(self.provenance, images=names, skipped=[])

    def image(self, index: int) -> VDNAHist:
        """The DNA-hist of image ``index`` (as ``make_vdna`` would make it from that image alone)."""
        self._check_image(index)
        return self.subset([index])

    def subset(self, indices: Sequence[int] | np.ndarray | None = None) -> VDNAHist:
        """The DNA-hist of the images ``indices`` (all by default): their histograms summed."""
        chosen = np.arange(self.num_images) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
        for index in chosen.tolist():
            self._check_image(index)
        data = {}
        for layer, neurons in self.neurons_list.items():
            part = self.data[layer]
            counts = np.zeros((neurons, self.hist_nb_bins), dtype=np.int64)
            _add_rows(
                part["offsets"].numpy(), part["bins"].numpy(), part["counts"].numpy(), chosen, neurons, counts
            )
            data[layer] = torch.from_numpy(counts)
        names = [self.provenance.images[i] for i in chosen.tolist()]
        return VDNAHist(
            f"histogram-{self.hist_nb_bins}", self.feature_extractor_name, self.neurons_list, data,
            len(chosen), self._image_provenance(names),
        )

    def select_images(self, indices: Sequence[int] | np.ndarray) -> VDNAImageHist:
        """The per-image DNAs of the images ``indices`` only, in that order (no summing)."""
        chosen = np.asarray(indices, dtype=np.int64).reshape(-1)
        if chosen.size == 0:
            raise ValueError("no images chosen")
        for index in chosen.tolist():
            self._check_image(index)
        data = {}
        for layer, neurons in self.neurons_list.items():
            part = self.data[layer]
            offsets = part["offsets"]
            starts, ends = offsets[chosen * neurons].tolist(), offsets[(chosen + 1) * neurons].tolist()
            entries = torch.cat([torch.arange(start, end) for start, end in zip(starts, ends)])
            sizes = torch.cat([torch.diff(offsets[i * neurons : (i + 1) * neurons + 1]) for i in chosen.tolist()])
            data[layer] = {
                "offsets": torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(sizes, 0)]),
                "bins": part["bins"][entries], "counts": part["counts"][entries],
            }
        names = [self.provenance.images[i] for i in chosen.tolist()]
        return VDNAImageHist(self.name, self.feature_extractor_name, self.neurons_list, data, len(chosen),
                             self._image_provenance(names))

    # -- storage -------------------------------------------------------------------------------------
    def _merged_data(self, other: VDNAImageHist) -> dict[str, dict[str, torch.Tensor]]:
        merged = {}
        for layer, part in self.data.items():
            theirs = other.data[layer]
            merged[layer] = {
                "offsets": torch.cat([part["offsets"][:-1], theirs["offsets"] + part["offsets"][-1]]),
                "bins": torch.cat([part["bins"], theirs["bins"]]),
                "counts": torch.cat([part["counts"], theirs["counts"]]),
            }
        return merged

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = self.names_array()
        for layer in self.neurons_list:
            part = self.data[layer]
            sizes_key, bins_key, counts_key = _layer_keys(layer)
            arrays[sizes_key] = np.diff(part["offsets"].numpy()).astype(np.uint32)
            arrays[bins_key] = part["bins"].numpy()
            arrays[counts_key] = part["counts"].numpy()
        return arrays

    @classmethod
    def data_from_arrays(cls, arrays, neurons_list, parameters, origin):
        expected = {NAMES_KEY, *(key for layer in neurons_list for key in _layer_keys(layer))}
        extra = sorted(set(arrays) - expected)
        if extra:
            raise ValueError(f"{origin}: arrays {extra} are not part of an image-histogram DNA")
        images = cls.stored_image_count(arrays, origin)
        data = {}
        for layer, neurons in neurons_list.items():
            sizes_key, bins_key, counts_key = _layer_keys(layer)
            sizes = require_array(arrays, sizes_key, (images * neurons,), "u", origin).astype(np.int64)
            total = int(sizes.sum())
            bins = require_array(arrays, bins_key, (total,), "iu", origin)
            counts = require_array(arrays, counts_key, (total,), "iu", origin)
            if total and (bins.min() < 0 or bins.max() >= parameters["bins"]):
                raise ValueError(f"{origin}: layer {layer!r} has bin indices outside [0, {parameters['bins']})")
            if total and counts.min() <= 0:
                raise ValueError(f"{origin}: layer {layer!r} stores empty or negative counts")
            data[layer] = {
                "offsets": torch.from_numpy(np.concatenate([[0], np.cumsum(sizes)])),
                "bins": torch.from_numpy(bins.astype(np.int16 if parameters["bins"] <= 32768 else np.int32)),
                "counts": torch.from_numpy(counts.astype(np.int16 if counts.max(initial=0) < 32768 else np.int32)),
            }
        return data


@numba.njit(cache=True, boundscheck=False)
def _add_rows(offsets, bins, counts, images, neurons, out):  # pragma: no cover - compiled
    for image in images:
        for neuron in range(neurons):
            row = image * neurons + neuron
            for entry in range(offsets[row], offsets[row + 1]):
                out[neuron, bins[entry]] += counts[entry]


@numba.njit(cache=True, boundscheck=False)
def _drain(scratch, sizes, bins, counts):  # pragma: no cover - compiled
    """Move the non-empty bins of ``scratch`` (neurons, bins) to sparse rows, leaving it all zeros."""
    stored = 0
    for neuron in range(scratch.shape[0]):
        row = scratch[neuron]
        start = stored
        for k in range(row.shape[0]):
            if row[k] != 0:
                bins[stored] = k
                counts[stored] = row[k]
                row[k] = 0
                stored += 1
        sizes[neuron] = stored - start
    return stored


def _narrowest(largest: int) -> torch.dtype:
    return torch.int16 if largest <= torch.iinfo(torch.int16).max else torch.int32


def _no_parts(neurons: int, parameters: dict[str, Any], device: torch.device) -> list[torch.Tensor]:
    return []


class ImageHistogramsAccumulator(Accumulator):
    """The histograms of each image, binned with the same exact rule as :class:`VDNAHist`, stored sparse.

    Per layer, image after image: each neuron's number of non-empty bins (``row_sizes``), those
    bins (``bins``) and their counts (``counts``), concatenated in order.
    """

    dna_class = VDNAImageHist
    states = (State("row_sizes", _no_parts, CAT), State("bins", _no_parts, CAT), State("counts", _no_parts, CAT))

    def __init__(
        self, parameters: dict[str, Any], layers: Mapping[str, int], ranges: ActivationRanges | None, device: torch.device
    ):
        super().__init__(parameters, layers, device, ranges)
        bins = parameters["bins"]
        self.binning = binnings(layers, ranges, bins, self.device)
        self._scratch = {
            layer: torch.zeros((neurons, bins), dtype=torch.int64, device=self.device) for layer, neurons in layers.items()
        }
        self._bin_dtype = _narrowest(bins - 1)

    def _update_layer(self, layer: str, activations: torch.Tensor) -> None:
        scratch = self._scratch[layer]  # all zeros between images
        neurons, bins = scratch.shape
        for image in activations.split(1):
            nans = accumulate_histograms(image, scratch, self.binning[layer])
            if nans:
                scratch.zero_()
                raise ValueError(f"layer {layer!r}: the extractor produced {nans} NaN activation(s)")
            if scratch.device.type == "cpu":
                capacity = neurons * min(bins, image.shape[2])
                sizes = np.empty(neurons, dtype=np.int64)
                filled_bins = np.empty(capacity, dtype=np.int32)
                counts = np.empty(capacity, dtype=np.int64)
                stored = _drain(scratch.numpy(), sizes, filled_bins, counts)
                sizes_t, bins_t, counts_t = (torch.from_numpy(a) for a in (sizes, filled_bins[:stored], counts[:stored]))
            else:
                filled = scratch > 0
                sizes_t, bins_t, counts_t = filled.sum(dim=1).cpu(), filled.nonzero()[:, 1].cpu(), scratch[filled].cpu()
                scratch.zero_()
            largest = int(counts_t.max()) if counts_t.numel() else 0
            self.values["row_sizes"][layer].append(sizes_t)
            self.values["bins"][layer].append(bins_t.to(self._bin_dtype))
            self.values["counts"][layer].append(counts_t.to(_narrowest(largest)))

    def layer_data(self) -> dict[str, dict[str, torch.Tensor]]:
        data = {}
        for layer in self.layers:
            sizes, bins, counts = (self.values[state][layer] for state in ("row_sizes", "bins", "counts"))
            total_sizes = torch.cat(sizes).to(torch.int64) if sizes else torch.zeros(0, dtype=torch.int64)
            data[layer] = {
                "offsets": torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(total_sizes, 0)]),
                "bins": torch.cat(bins) if bins else torch.zeros(0, dtype=torch.int32),
                "counts": torch.cat(counts) if counts else torch.zeros(0, dtype=torch.int32),
            }
        return data


def _warm_up() -> None:
    _drain(np.zeros((2, 3), dtype=np.int64), np.empty(2, dtype=np.int64), np.empty(6, dtype=np.int32), np.empty(6, dtype=np.int64))


compiled_by(_warm_up, _drain)


__all__ = [
    "ImageHistogramsAccumulator",
    "VDNAImageHist",
]
