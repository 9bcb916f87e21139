"""The Visual DNA object: metadata plus one set of arrays per layer, and nothing of the model.

Each distribution (histogram, gaussian, layer-gaussian, activation-ranges) is a subclass defined in
:mod:`vdna.distributions`; this module holds what they share: metadata, layer and neuron selection,
merging and saving.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any, ClassVar

import torch

from ._version import __version__
from .config import value_settings
from .fileformat import DATA_SETTINGS_011, EXTRACTION_SETTINGS_011, jsonable, write_dna_files


def now_text() -> str:
    """A timestamp in vdna 0.1.1's ``time_of_compute`` style."""
    return datetime.datetime.now().strftime("%I:%M%p on %B %d, %Y")


@dataclass
class Provenance:
    """Where a DNA comes from: weights and ranges used, images used and skipped, settings."""

    weights_sha256: str | None = None
    ranges_sha256: str | None = None
    images: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    data_settings: dict[str, Any] = field(default_factory=dict)
    extraction_settings: dict[str, Any] = field(default_factory=dict)
    time_of_compute: str = field(default_factory=now_text)
    library_version: str = __version__


class Settings(SimpleNamespace):
    """Settings read as attributes, as vdna 0.1.1's ``DataSettings`` and ``ExtractionSettings`` are."""


def _settings(defaults: dict[str, Any], recorded: dict[str, Any]) -> Settings:
    return Settings(**jsonable({**defaults, **recorded}))


class VDNA:
    """A Visual DNA: distributions of neuron activations, by layer.

    Attributes match vdna 0.1.1: ``name`` (e.g. ``"histogram-1000"``), ``type``,
    ``feature_extractor_name``, ``num_images``, ``neurons_list`` (neurons per layer, in order),
    ``data`` (per-layer arrays) and ``device``.
    """

    type: ClassVar[str] = ""

    def __init__(
        self,
        name: str,
        feature_extractor_name: str,
        neurons_list: dict[str, int],
        data: dict[str, Any],
        num_images: int,
        provenance: Provenance | None = None,
    ):
        self.name = name
        self.feature_extractor_name = feature_extractor_name
        self.neurons_list = dict(neurons_list)
        self.data = data
        self.num_images = int(num_images)
        self.provenance = provenance or Provenance()
        self.loaded_from_path = "NotLoaded"
        self.device = "cpu"

    # -- description ---------------------------------------------------------------------------
    @property
    def layers(self) -> list[str]:
        """Layer names, in order."""
        return list(self.neurons_list)

    @property
    def num_neurons(self) -> int:
        """Neurons over all layers."""
        return sum(self.neurons_list.values())

    @property
    def data_settings_used(self) -> Settings:
        """The data settings this DNA was made with (vdna 0.1.1's names and defaults, then ours)."""
        return _settings(DATA_SETTINGS_011, self.provenance.data_settings)

    @property
    def extraction_settings_used(self) -> Settings:
        """The extraction settings this DNA was made with (vdna 0.1.1's names and defaults, then ours)."""
        return _settings(EXTRACTION_SETTINGS_011, self.provenance.extraction_settings)

    def distribution_metadata(self) -> dict[str, Any]:
        """The ``distribution`` entry of the metadata file."""
        return {}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, extractor={self.feature_extractor_name!r}, "
            f"num_images={self.num_images}, layers={len(self.neurons_list)}, neurons={self.num_neurons})"
        )

    # -- selection -----------------------------------------------------------------------------
    def check_layer(self, layer: str) -> None:
        """Raise ``ValueError`` unless ``layer`` is one of this DNA's layers."""
        if layer not in self.neurons_list:
            raise ValueError(f"layer {layer!r} is not in this DNA; its layers are: {', '.join(self.neurons_list)}")

    def check_neuron(self, layer: str, index: int) -> None:
        """Raise ``ValueError`` unless neuron ``index`` exists in ``layer``."""
        self.check_layer(layer)
        count = self.neurons_list[layer]
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < count:
            raise ValueError(f"neuron index {index!r} is out of range for layer {layer!r}, which has {count} neurons")

    # -- vdna 0.1.1 accessors --------------------------------------------------------------------
    def get_neuron_dist(self, layer_name: str, neuron_idx: int) -> Any:
        """The distribution of one neuron."""
        raise NotImplementedError

    def get_all_neurons_in_layer_dist(self, layer_name: str) -> Any:
        """The distributions of every neuron of one layer."""
        raise NotImplementedError

    def get_all_neurons_dists(self) -> Any:
        """The distributions of every neuron of every layer."""
        raise NotImplementedError

    # -- merging -------------------------------------------------------------------------------
    def _merged_data(self, other: VDNA) -> dict[str, Any]:
        raise NotImplementedError

    def _check_mergeable(self, other: VDNA) -> None:
        """Refuse a DNA that cannot be merged with this one: not comparable, or made with other settings
        that each image's activations depend on (as far as both DNAs record them)."""
        check_comparable(self, other)
        mine, theirs = self.recorded_settings(), other.recorded_settings()
        differing = [f"{name} ({mine[name]!r} vs {theirs[name]!r})" for name in value_settings()
                     if name in mine and name in theirs and mine[name] != theirs[name]]
        if differing:
            raise ValueError("cannot merge DNAs made with other settings: " + "; ".join(differing))

    def recorded_settings(self) -> dict[str, Any]:
        """Every setting the DNA records, data and extraction settings together."""
        return {**self.provenance.data_settings, **self.provenance.extraction_settings}

    def merge(self, other: VDNA) -> VDNA:
        """The DNA of the union of both image sets (exact for histograms and ranges)."""
        self._check_mergeable(other)
        provenance = replace(
            self.provenance,
            images=self.provenance.images + other.provenance.images,
            skipped=self.provenance.skipped + other.provenance.skipped,
            time_of_compute=now_text(),
            library_version=__version__,
        )
        return type(self)(
            self.name,
            self.feature_extractor_name,
            self.neurons_list,
            self._merged_data(other),
            self.num_images + other.num_images,
            provenance,
        )

    def __add__(self, other: VDNA) -> VDNA:
        if not isinstance(other, VDNA):
            return NotImplemented
        return self.merge(other)

    # -- devices and files -----------------------------------------------------------------------
    def _map_tensors(self, function) -> dict[str, Any]:
        def apply(value: Any) -> Any:
            if isinstance(value, torch.Tensor):
                return function(value)
            if isinstance(value, dict):
                return {key: apply(item) for key, item in value.items()}
            return value

        return {layer: apply(value) for layer, value in self.data.items()}

    def to(self, device: str | torch.device) -> VDNA:
        """This DNA with its arrays on ``device`` (in place; returns self)."""
        self.data = self._map_tensors(lambda tensor: tensor.to(device))
        self.device = str(device)
        return self

    def save(self, file_path: str | os.PathLike, compact: bool = False) -> None:
        """Write ``file_path.json`` and ``file_path.npz`` (vdna 0.1.1's format), atomically.

        ``compact=True`` (histograms) writes a lossless, several times smaller ``file_path.vdnz``
        instead of the npz; :func:`vdna.load_vdna_from_files` reads both.
        """
        write_dna_files(self, file_path, compact=compact)


def check_comparable(vdna1: VDNA, vdna2: VDNA, same_type: bool = True) -> None:
    """Raise ``ValueError`` naming what differs if two DNAs cannot be compared or merged."""
    for position, vdna in (("first", vdna1), ("second", vdna2)):
        if not isinstance(vdna, VDNA):
            raise TypeError(f"the {position} argument is a {type(vdna).__name__}, not a VDNA")
    differences = []
    if same_type and vdna1.name != vdna2.name:
        differences.append(f"distributions differ ({vdna1.name!r} vs {vdna2.name!r})")
    if vdna1.feature_extractor_name != vdna2.feature_extractor_name:
        differences.append(
            f"feature extractors differ ({vdna1.feature_extractor_name!r} vs {vdna2.feature_extractor_name!r})"
        )
    if vdna1.neurons_list != vdna2.neurons_list:
        differences.append(f"layers differ ({_describe_layers(vdna1)} vs {_describe_layers(vdna2)})")
    for key, label in (("weights_sha256", "extractor weights"), ("ranges_sha256", "activation ranges")):
        first, second = getattr(vdna1.provenance, key), getattr(vdna2.provenance, key)
        if key == "ranges_sha256" and not getattr(vdna1, "needs_ranges", False):
            continue
        if first and second and first != second:
            differences.append(f"{label} differ (sha256 {first[:12]}... vs {second[:12]}...)")
    if differences:
        raise ValueError("cannot compare these DNAs: " + "; ".join(differences))


def _describe_layers(vdna: VDNA) -> str:
    shown = ", ".join(f"{layer}: {count}" for layer, count in list(vdna.neurons_list.items())[:4])
    more = ", ..." if len(vdna.neurons_list) > 4 else ""
    return f"{{{shown}{more}}} ({len(vdna.neurons_list)} layers, {vdna.num_neurons} neurons)"


def merge_vdnas(vdnas: Sequence[VDNA]) -> VDNA:
    """The DNA of the union of all the DNAs' image sets: ``merge_vdnas([a, b, c]) == a + b + c``."""
    if not vdnas:
        raise ValueError("merge_vdnas needs at least one DNA")
    merged = vdnas[0]
    for vdna in vdnas[1:]:
        merged = merged.merge(vdna)
    return merged


__all__ = [
    "VDNA",
    "Provenance",
    "Settings",
    "check_comparable",
    "merge_vdnas",
    "now_text",
]
