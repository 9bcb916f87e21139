"""What every distribution provides: a DNA class and a streaming accumulator.

An accumulator keeps running sums only (counts; count, mean and sum of squared deviations in
float64; minima and maxima), so its memory does not grow with the number of images, and two
accumulators, or two DNAs, merge exactly into the one of the union of their images.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
import torch

from ..dna import VDNA, Provenance
from .state import Reduction, State, state_key


class DNAType(VDNA):
    """A DNA of one distribution type: how it is named, stored and accumulated."""

    needs_ranges: ClassVar[bool] = False
    """Whether making it needs per-neuron activation ranges (histograms do)."""
    exact_merge: ClassVar[bool] = False
    """Whether DNAs of parts of a set add up to the DNA of the set bit for bit, in any order."""
    extraction_flags: ClassVar[dict[str, bool]] = {}
    """vdna 0.1.1's extraction settings that say how this distribution uses activations."""

    @classmethod
    def parse_name(cls, name: str) -> dict[str, Any] | None:
        """The parameters encoded in a distribution name (e.g. bins), or None if not this type's name."""
        return {} if name == cls.type else None

    @classmethod
    def from_metadata(cls, distribution: Mapping[str, Any], name: str) -> dict[str, Any]:
        """Parameters from a metadata file's ``distribution`` entry and ``name``."""
        parameters = cls.parse_name(name)
        if parameters is None:
            raise ValueError(f"distribution name {name!r} does not match type {cls.type!r}")
        return parameters

    @classmethod
    def accumulator(
        cls, parameters: dict[str, Any], layers: Mapping[str, int], ranges: Any, device: torch.device
    ) -> Accumulator:
        """A fresh accumulator for ``layers`` (neurons per layer)."""
        raise NotImplementedError

    @classmethod
    def create(
        cls,
        parameters: dict[str, Any],
        feature_extractor_name: str,
        neurons_list: Mapping[str, int],
        data: dict[str, Any],
        num_images: int,
        provenance: Provenance | None = None,
    ) -> DNAType:
        """A DNA of this type from its parts."""
        return cls(cls.type, feature_extractor_name, dict(neurons_list), data, num_images, provenance)

    # -- storage ---------------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        """The arrays of the npz file (vdna 0.1.1's keys and dtypes)."""
        raise NotImplementedError

    @classmethod
    def data_from_arrays(
        cls, arrays: Mapping[str, np.ndarray], neurons_list: Mapping[str, int], parameters: dict[str, Any], origin: str
    ) -> dict[str, Any]:
        """Per-layer data from the npz arrays, validated (``ValueError`` naming the problem)."""
        raise NotImplementedError

    @classmethod
    def provenance_from_arrays(cls, arrays: Mapping[str, np.ndarray], provenance: Provenance, origin: str) -> Provenance:
        """The provenance of the metadata completed with what the arrays store of it (nothing, for most types)."""
        return provenance


NAMES_KEY = "image_names"
"""The array holding the image names of per-image DNAs, however many images there are."""


class PerImageDNA(DNAType):
    """What DNAs with one entry per image share: one name per image, in order, stored with the arrays."""

    set_types: ClassVar[dict[str, str]] = {}
    """The DNA types of whole sets that follow exactly from these per-image DNAs: ``{type: method giving it}``."""

    def set_dna(self, kind: str, indices: Any = None) -> DNAType:
        """The DNA of type ``kind`` (one of :attr:`set_types`) of the images ``indices`` (all by default)."""
        if kind not in self.set_types:
            raise ValueError(f"{self.type} DNAs give {' or '.join(self.set_types)} DNAs of their images, not {kind}")
        return getattr(self, self.set_types[kind])(indices)

    def __init__(self, name, feature_extractor_name, neurons_list, data, num_images, provenance=None):
        super().__init__(name, feature_extractor_name, neurons_list, data, num_images, provenance)
        if not self.provenance.images:
            self.provenance = replace(self.provenance, images=[str(i) for i in range(self.num_images)])
        if len(self.provenance.images) != self.num_images:
            raise ValueError(f"{self.num_images} images but {len(self.provenance.images)} image names")

    @property
    def names(self) -> list[str]:
        """Image names, in the order of the DNAs."""
        return list(self.provenance.images)

    def __len__(self) -> int:
        return self.num_images

    def names_array(self) -> dict[str, np.ndarray]:
        """The array of image names :meth:`to_arrays` stores."""
        return {NAMES_KEY: np.array(self.names, dtype=np.str_)}

    @classmethod
    def stored_image_count(cls, arrays: Mapping[str, np.ndarray], origin: str) -> int:
        """How many images the arrays hold (one name each)."""
        return len(require_array(arrays, NAMES_KEY, None, "U", origin))

    @classmethod
    def provenance_from_arrays(cls, arrays: Mapping[str, np.ndarray], provenance: Provenance, origin: str) -> Provenance:
        names = require_array(arrays, NAMES_KEY, None, "U", origin)
        return replace(provenance, images=[str(name) for name in names.tolist()])


class Accumulator:
    """Running state of one distribution over a stream of activation batches.

    Each subclass declares its :attr:`states` (one value per layer); merging, checkpoints
    (:meth:`state_tensors`, :meth:`load_state_tensors`) and the training-loop metric's states derive
    from that declaration. ``values[state][layer]`` holds the current values.
    """

    dna_class: ClassVar[type[DNAType]]
    states: ClassVar[tuple[State, ...]] = ()

    def __init__(
        self, parameters: dict[str, Any], layers: Mapping[str, int], device: torch.device, ranges: Any = None
    ):
        self.parameters = parameters
        self.layers = dict(layers)
        self.device = torch.device(device)
        self.ranges = ranges
        self.num_images = 0
        self.values = self._initial_values()

    def _initial_values(self) -> dict[str, dict[str, Any]]:
        return {
            state.name: {layer: state.initial(neurons, self.parameters, self.device) for layer, neurons in self.layers.items()}
            for state in self.states
        }

    def fresh(self) -> Accumulator:
        """An empty accumulator like this one: same distribution, layers, ranges and device."""
        return self.dna_class.accumulator(self.parameters, self.layers, self.ranges, self.device)

    def take(self) -> Accumulator:
        """The images added so far, handed over as an accumulator of their own; this one starts again empty.

        Merging what is taken image by image, in the images' order, gives what :meth:`update` gives
        (a stream makes each image's part; the run merges them in order).
        """
        self.flush()
        part = copy.copy(self)
        self.values, self.num_images = self._initial_values(), 0
        return part

    def update(self, activations: Mapping[str, torch.Tensor]) -> None:
        """Add a batch: ``{layer: (batch, neurons, positions)}`` for every layer."""
        missing = [layer for layer in self.layers if layer not in activations]
        if missing:
            raise ValueError(f"activations are missing layers {missing}")
        batch = None
        for layer, neurons in self.layers.items():
            values = activations[layer]
            if values.ndim != 3 or values.shape[1] != neurons:
                raise ValueError(
                    f"layer {layer!r}: expected activations (batch, {neurons}, positions), got {tuple(values.shape)}"
                )
            if batch is not None and values.shape[0] != batch:
                raise ValueError(f"layer {layer!r}: batch of {values.shape[0]} images, other layers {batch}")
            batch = values.shape[0]
            self._update_layer(layer, values)
        self.num_images += batch or 0

    def _update_layer(self, layer: str, activations: torch.Tensor) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        """Complete any work kept for later, so that :attr:`values` hold every image added (nothing to do by default)."""

    def reductions(self) -> dict[str, dict[str, Reduction]]:
        """``{state: {layer: its reduction}}``."""
        return {
            state.name: {layer: state.reduction_for(neurons) for layer, neurons in self.layers.items()}
            for state in self.states
        }

    def check_mergeable(self, other: Accumulator) -> None:
        """Refuse another accumulator whose images were not made into the same distribution the same way."""
        if type(other) is not type(self) or other.layers != self.layers or other.parameters != self.parameters:
            raise ValueError("only accumulators of the same distribution and layers can merge")
        mine, theirs = (getattr(a.ranges, "digest", None) for a in (self, other))
        if mine != theirs:
            raise ValueError("only accumulators of the same activation ranges can merge")

    def merge(self, other: Accumulator) -> None:
        """Add another accumulator's images to this one."""
        self.check_mergeable(other)
        self.flush()
        other.flush()
        for state, reductions in self.reductions().items():
            for layer, reduction in reductions.items():
                self.values[state][layer] = reduction.merge(self.values[state][layer], other.values[state][layer])
        self.num_images += other.num_images

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Every state's value as one tensor per layer, named :func:`state_key` (``counts_0``, ...), on the CPU."""
        self.flush()
        return {
            state_key(state, index): reduction.stored(self.values[state][layer]).cpu()
            for state, reductions in self.reductions().items()
            for index, (layer, reduction) in enumerate(reductions.items())
        }

    def load_state_tensors(self, tensors: Mapping[str, torch.Tensor], num_images: int) -> None:
        """Continue from :meth:`state_tensors` of the ``num_images`` images already added (they replace this state)."""
        expected = set(self.state_tensors())
        if set(tensors) != expected:
            raise ValueError(f"a saved state must hold {sorted(expected)}, got {sorted(tensors)}")
        self.discard()
        for state, reductions in self.reductions().items():
            for index, (layer, reduction) in enumerate(reductions.items()):
                stored = torch.as_tensor(tensors[state_key(state, index)]).to(self.device)
                self.values[state][layer] = reduction.restored(stored)
        self.num_images = int(num_images)

    def discard(self) -> None:
        """Forget work kept for later (before the state is replaced); nothing to do by default."""

    def layer_data(self) -> dict[str, Any]:
        """Per-layer data of the DNA, on the CPU."""
        raise NotImplementedError

    def result(self, feature_extractor_name: str, provenance: Provenance | None = None) -> DNAType:
        """The DNA of every image added so far."""
        self.flush()
        return self.dna_class.create(
            self.parameters, feature_extractor_name, self.layers, self.layer_data(), self.num_images, provenance
        )


def require_array(
    arrays: Mapping[str, np.ndarray], key: str, shape: tuple[int, ...] | None, kinds: str, origin: str
) -> np.ndarray:
    """``arrays[key]`` checked for presence, shape (unless None), dtype kind (numpy ``kind`` letters) and finiteness.

    Where ``arrays`` can ``peek(key)`` at an array's shape and dtype, they are checked before the
    array is read, so a file declaring a huge array is refused without allocating it.
    """
    if key not in arrays:
        raise ValueError(f"{origin}: array {key!r} is missing")

    def check(found_shape: tuple[int, ...], dtype: np.dtype) -> None:
        if dtype.kind not in kinds:
            raise ValueError(f"{origin}: array {key!r} has dtype {dtype}, expected kind {kinds!r}")
        if shape is not None and tuple(found_shape) != shape:
            raise ValueError(f"{origin}: array {key!r} has shape {tuple(found_shape)}, expected {shape}")

    peek = getattr(arrays, "peek", None)
    if peek is not None:
        check(*peek(key))
    array = arrays[key]
    check(array.shape, array.dtype)
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise ValueError(f"{origin}: array {key!r} contains NaN or infinite values")
    return array


__all__ = [
    "NAMES_KEY",
    "Accumulator",
    "DNAType",
    "PerImageDNA",
    "require_array",
]
