"""Per-neuron activation ranges, and the normalisation of activations to [-1, 1] they define.

Appendix A.2 of the paper: track each neuron's minimum and maximum activation over a broad set of
images, widen the range by a margin (20%), and normalise activations with eq. 9-11:
``centre = (max + min) / 2``, ``half_width = (max - min) / 2``, ``a_norm = (a - centre) / half_width``.

Two ways to widen are supported, recorded in the ranges file:

- ``"centre"``: the range grows by ``margin`` of its width, split evenly on both sides, so every
  observed activation stays strictly inside (-1, 1). This is the default for ranges made here.
- ``"scale-bounds"``: both bounds are multiplied by ``1 + margin``, as vdna 0.1.1 does; used for
  that project's published ranges, so histograms made with them are interchangeable.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._files import atomic_write_bytes, json_object

MARGIN_MODES = ("centre", "scale-bounds")
RANGES_FORMAT = "vdna-activation-ranges"
_MIN_HALF_WIDTH = 1e-8


@dataclass(frozen=True)
class ActivationRanges:
    """Minimum and maximum activation of every neuron, by layer, with the margin to apply."""

    extractor: str
    minimum: dict[str, np.ndarray]
    maximum: dict[str, np.ndarray]
    margin: float = 0.2
    margin_mode: str = "centre"
    num_images: int | None = None
    description: str = ""
    sha256: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.margin_mode not in MARGIN_MODES:
            raise ValueError(f"margin_mode must be one of {MARGIN_MODES}, got {self.margin_mode!r}")
        if list(self.minimum) != list(self.maximum):
            raise ValueError("activation ranges: minimum and maximum name different layers")
        for layer in self.minimum:
            low, high = self.minimum[layer], self.maximum[layer]
            if low.shape != high.shape or low.ndim != 1:
                raise ValueError(f"activation ranges of layer {layer!r}: minimum and maximum shapes differ")
            if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
                raise ValueError(f"activation ranges of layer {layer!r} contain NaN or infinite values")
            if np.any(low > high):
                raise ValueError(f"activation ranges of layer {layer!r} have a minimum above the maximum")

    @property
    def digest(self) -> str:
        """sha256 of the ranges file these ranges were read from, or of the file they would write."""
        return self.sha256 or hashlib.sha256(self.to_json().encode()).hexdigest()

    @property
    def neurons_list(self) -> dict[str, int]:
        """Neurons per layer, in order."""
        return {layer: len(values) for layer, values in self.minimum.items()}

    def normalisation(self, layer: str) -> tuple[np.ndarray, np.ndarray]:
        """``(centre, half_width)`` float64 arrays of one layer, margin applied."""
        low = self.minimum[layer].astype(np.float64)
        high = self.maximum[layer].astype(np.float64)
        if self.margin_mode == "scale-bounds":
            low, high = low * (1 + self.margin), high * (1 + self.margin)
            centre, half_width = (low + high) / 2, (high - low) / 2
        else:
            centre, half_width = (low + high) / 2, (high - low) / 2 * (1 + self.margin)
        return centre, np.maximum(half_width, _MIN_HALF_WIDTH)

    def to_json(self) -> str:
        """The ranges as the JSON text of a ranges file."""
        document = {
            "format": RANGES_FORMAT,
            "extractor": self.extractor,
            "margin": self.margin,
            "margin_mode": self.margin_mode,
            "num_images": self.num_images,
            "description": self.description,
            "layers": {
                layer: {"min": self.minimum[layer].tolist(), "max": self.maximum[layer].tolist()}
                for layer in self.minimum
            },
        }
        return json.dumps(document, indent=1) + "\n"

    def save(self, path: str | os.PathLike) -> str:
        """Write the ranges file atomically; returns its sha256."""
        data = self.to_json().encode()
        atomic_write_bytes(Path(path), data)
        return hashlib.sha256(data).hexdigest()


def _float32_values(values, where: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: values must be numbers") from None
    if array.ndim != 1:
        raise ValueError(f"{where}: expected a list of numbers")
    return array


def _parse_ours(document: dict, origin: str, sha: str) -> ActivationRanges:
    layers = document.get("layers")
    if not isinstance(layers, dict) or not layers:
        raise ValueError(f"{origin}: no 'layers' in activation ranges file")
    minimum, maximum = {}, {}
    for layer, entry in layers.items():
        if not isinstance(entry, dict) or "min" not in entry or "max" not in entry:
            raise ValueError(f"{origin}: layer {layer!r} needs 'min' and 'max' lists")
        minimum[layer] = _float32_values(entry["min"], f"{origin}, layer {layer!r} min")
        maximum[layer] = _float32_values(entry["max"], f"{origin}, layer {layer!r} max")
    return ActivationRanges(
        extractor=str(document.get("extractor", "")),
        minimum=minimum,
        maximum=maximum,
        margin=float(document.get("margin", 0.2)),
        margin_mode=str(document.get("margin_mode", "centre")),
        num_images=document.get("num_images"),
        description=str(document.get("description", "")),
        sha256=sha,
    )


def _parse_vdna_011(document: dict, origin: str, sha: str, extractor: str) -> ActivationRanges:
    minimum, maximum = {}, {}
    for layer, per_neuron in document["mins_per_neuron"].items():
        highs = document["maxs_per_neuron"].get(layer)
        if not isinstance(per_neuron, dict) or not isinstance(highs, dict):
            raise ValueError(f"{origin}: layer {layer!r} is not a mapping of neuron index to value")
        order = sorted(per_neuron, key=int)
        minimum[layer] = _float32_values([per_neuron[i] for i in order], f"{origin}, layer {layer!r} min")
        maximum[layer] = _float32_values([highs[i] for i in order], f"{origin}, layer {layer!r} max")
    return ActivationRanges(
        extractor=extractor, minimum=minimum, maximum=maximum, margin=0.2, margin_mode="scale-bounds", sha256=sha
    )


def load_activation_ranges(path: str | os.PathLike, extractor: str = "") -> ActivationRanges:
    """Read a ranges file: this library's format, or vdna 0.1.1's ``activation_ranges.json``."""
    path = Path(path)
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    document = json_object(data, path, "activation ranges file")
    if document.get("format") == RANGES_FORMAT:
        return _parse_ours(document, str(path), sha)
    if "mins_per_neuron" in document and "maxs_per_neuron" in document:
        return _parse_vdna_011(document, str(path), sha, extractor)
    raise ValueError(f"{path}: not an activation ranges file (no 'format': {RANGES_FORMAT!r})")


__all__ = [
    "MARGIN_MODES",
    "ActivationRanges",
    "load_activation_ranges",
]
