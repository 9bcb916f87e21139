"""Distances by name: one record per distance, registered as extractors and distributions are.

A record says everything the rest of the library needs of a distance: the DNAs it compares as
whole sets and the per-image DNAs it resamples, the distributions to make from images for each,
the function comparing two DNAs, its per-unit values (neurons, or layers), how a whole set's DNA
follows from per-image DNAs, how many resamples of per-image DNAs are compared at once (for
intervals and p-values) and which interval reflects its noise. The command line, the statistics,
the applications, the report and the training-loop metric look distances up here and nowhere
else, so a new distance is one module (registering its record) and its tests.

A built-in distance is a module of this package named ``<name>_distance.py`` that registers its
record, an underscore of the module's name standing for a hyphen of the distance's (``mmd_rbf_distance.py``
registers ``mmd-rbf``); this module imports neither torch nor numpy, and finds the built-in distances by their
modules' names, importing one only when it is looked up, so listing names costs nothing.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SUFFIX = "_distance"
BUILTIN_DISTANCES: dict[str, str] = {
    module.name[: -len(_SUFFIX)].replace("_", "-"): f"{__package__}.{module.name}"
    for module in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda module: module.name)
    if module.name.endswith(_SUFFIX)
}
"""Built-in distances: name -> the module that registers it (``emd`` -> ``vdna.distances.emd_distance``,
``mmd-rbf`` -> ``vdna.distances.mmd_rbf_distance``)."""


@dataclass(frozen=True)
class Distance:
    """One distance between DNAs, and how it is computed, made from images and resampled.

    - ``name`` (``"emd"``), ``label`` (as reports name it, ``"dna-emd"``) and ``description``;
    - ``set_types``: the DNA types it compares as whole sets; ``image_type``: the per-image DNA type
      whose resamples it compares (``None``: not resampled);
    - ``set_distribution``, ``image_distribution``: the distributions to make from images for each,
      ``{bins}`` standing for the histogram bins;
    - ``compare(a, b, neurons=None, neuron_weights=None)``: the distance of two set DNAs (a 0-d tensor);
    - ``unit_values(a, b, neurons=None)``: ``{layer: per-unit distances}``, the values ``compare``
      averages (or weights): one per neuron, or one per layer when ``unit`` is ``"layer"``;
    - ``of_images(per_image_dna, indices=None)``: the set DNA of those images (None: the per-image
      DNA's own ``set_dna`` of the first of ``set_types``, e.g. the summed histograms of ``image-histogram``);
    - ``resample(a, b, layer, index, paired, splits)``: ``(units, resamples)`` distances of weighted
      resamples of the per-image DNAs, all at once (see :func:`vdna.stats.resampled_distances`);
      None: the statistics make each resample's set DNAs with ``of_images`` and compare them;
    - ``interval``: the bootstrap interval (:func:`vdna.stats.bootstrap_interval`'s method) that
      removes its sampling noise: ``"squared"`` where noise adds in quadrature, ``"basic"`` where
      it adds linearly;
    - ``lower_is_closer``: whether smaller values mean closer sets.
    """

    name: str
    label: str
    description: str
    set_types: tuple[str, ...]
    set_distribution: str
    compare: Callable[..., Any]
    unit_values: Callable[..., dict[str, Any]]
    image_type: str | None = None
    image_distribution: str | None = None
    of_images: Callable[..., Any] | None = None
    resample: Callable[..., tuple[Any, Any]] | None = None
    unit: str = "neuron"
    interval: str = "squared"
    lower_is_closer: bool = True

    def distribution(self, bins: int = 1000) -> str:
        """The distribution of the set DNAs it compares, made from images (``bins`` for histograms)."""
        return self.set_distribution.format(bins=bins)

    def per_image_distribution(self, bins: int = 1000) -> str:
        """The distribution of the per-image DNAs it resamples, made from images."""
        if self.image_distribution is None:
            raise ValueError(f"{self.name} is not computed from per-image DNAs")
        return self.image_distribution.format(bins=bins)

    def set_of(self, images: Any, indices: Any = None) -> Any:
        """The set DNA this distance compares of the images ``indices`` (all by default) of per-image DNAs."""
        if self.of_images is not None:
            return self.of_images(images, indices)
        return images.set_dna(self.set_types[0], indices)

    def compares(self, dna: Any) -> bool:
        """Whether ``dna`` is a set DNA this distance compares."""
        return getattr(dna, "type", None) in self.set_types

    def resamples(self, dna: Any) -> bool:
        """Whether ``dna`` holds per-image DNAs this distance resamples."""
        return self.image_type is not None and getattr(dna, "type", None) == self.image_type

    def set_dna(self, dna: Any, position: str = "DNA") -> Any:
        """The set DNA this distance compares: ``dna`` itself, or the set DNA of its per-image DNAs.

        ``TypeError`` naming ``position`` and the DNAs that would do otherwise.
        """
        if self.resamples(dna):
            return self.set_of(dna)
        if self.compares(dna):
            return dna
        raise TypeError(f"metric {self.name!r} compares {self.accepted()}; the {position} is a {type(dna).__name__}")

    def accepted(self) -> str:
        """The DNAs it takes, in words: its set types, or per-image ones."""
        kinds = " or ".join(self.set_types)
        return f"{kinds} DNAs (or per-image {self.image_type} DNAs)" if self.image_type else f"{kinds} DNAs"


_REGISTERED: dict[str, Distance] = {}


def register_distance(distance: Distance) -> Distance:
    """Register ``distance`` under its name; refused if another record has that name."""
    if not isinstance(distance, Distance):
        raise TypeError(f"register a Distance record, got {type(distance).__name__}")
    existing = _REGISTERED.get(distance.name)
    if existing is not None and _origin(existing) != _origin(distance):  # a module imported again registers again
        raise ValueError(f"a distance named {distance.name!r} is already registered")
    _REGISTERED[distance.name] = distance
    return distance


def _origin(distance: Distance) -> tuple[str, str]:
    return getattr(distance.compare, "__module__", ""), getattr(distance.compare, "__qualname__", "")


def unregister_distance(name: str) -> None:
    """Remove a distance registered with :func:`register_distance` (built-in ones stay)."""
    if name in BUILTIN_DISTANCES:
        raise ValueError(f"{name!r} is a built-in distance and cannot be unregistered")
    if name not in _REGISTERED:
        raise ValueError(f"no distance named {name!r} is registered; registered: {', '.join(list_distances())}")
    del _REGISTERED[name]


def list_distances() -> list[str]:
    """Names of the built-in and registered distances, sorted."""
    return sorted({*BUILTIN_DISTANCES, *_REGISTERED})


def get_distance(name: str) -> Distance:
    """The record of the distance ``name``; ``ValueError`` listing the valid names if there is none."""
    if isinstance(name, str) and name not in _REGISTERED and name in BUILTIN_DISTANCES:
        importlib.import_module(BUILTIN_DISTANCES[name])
    if not isinstance(name, str) or name not in _REGISTERED:
        raise ValueError(f"unknown distance {name!r}; valid: {', '.join(list_distances())}")
    if _REGISTERED[name].name != name:  # pragma: no cover - a module registering under another name
        raise ValueError(f"{BUILTIN_DISTANCES.get(name)} registers a distance named {_REGISTERED[name].name!r}")
    return _REGISTERED[name]


__all__ = ["BUILTIN_DISTANCES", "Distance", "get_distance", "list_distances", "register_distance", "unregister_distance"]
