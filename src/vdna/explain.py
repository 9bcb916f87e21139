"""The images behind a neuron: where in each set the neurons that tell two sets apart fire most.

A :class:`NeuronMaxima` rides along a run (a :class:`vdna.engine.Tracker`, fed by the same pass
through the network that makes DNAs): for every image and neuron it takes the maximum activation
over positions and where it is reached, and keeps for each neuron only its ``per_set`` best images,
so its memory does not depend on the number of images. A position of a layer is mapped back to a
box of the network's input (:func:`layer_geometry`): for a convolutional map, the input pixels
that influence it, measured once per layer from the support of the gradient; for a ViT token, its
patch (class and register tokens: the whole image). :func:`crop_examples` then reads the chosen
images again, without the network, and crops each box from the image as the network saw it
(cropped and resized, before normalisation).

:func:`neuron_examples` does all of it for two image sets.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .config import RunConfig, run_settings
from .engine import run_preprocessor
from .extractors import Extractor, ExtractorInfo
from .preprocess import decode_image
from .processor import VDNAProcessor
from .sources import ItemStream, open_source

NeuronKey = tuple[str, int]
"""A neuron: its layer and its index in the layer."""

_GRADIENT_SEED = 0


def _check_per_set(per_set: Any) -> None:
    if not isinstance(per_set, int) or isinstance(per_set, bool) or per_set < 1:
        raise ValueError(f"per_set must be a positive integer (images kept per neuron and set), got {per_set!r}")


def _span(indices: list[int]) -> str:
    return f"0 to {len(indices) - 1}" if indices == list(range(len(indices))) else str(indices)


@dataclass(frozen=True)
class Maximum:
    """One image's maximum activation of a neuron: the image's position in the run, the value and where it is."""

    image: int
    activation: float
    position: int


def _maxima(values: torch.Tensor) -> torch.Tensor:
    """``values.amax(dim=2)`` of ``(batch, neurons, positions)``; on positions-major memory with few neurons,
    a row of several positions at a time (torch reduces a row of a few neurons slowly)."""
    batch, neurons, positions = values.shape
    group = min(8, positions & -positions)  # positions per row: a power of two that divides them
    if values.stride(1) != 1 or neurons >= 64 or group == 1:
        return values.amax(dim=2)
    rows = values.transpose(1, 2).reshape(batch, positions // group, group * neurons)
    return rows.amax(dim=1).reshape(batch, group, neurons).amax(dim=1)


class NeuronMaxima:
    """For each neuron, the ``per_set`` images where it fires most, tracked during a run.

    Each image counts with its maximum activation over the layer's positions, reached first at
    ``position`` (row-major on a map; tokens in order). Images with equal maxima (a ReLU6 network
    saturates at 6) are ranked by their mean activation over positions, then by their position in
    the run, so the result does not depend on how the run was split into batches or streams.
    ``neurons`` (``{layer: indices}``) limits tracking to those neurons; by default every neuron of
    every layer is tracked (3120 for the default extractor: 450 kB for ``per_set=6``).
    """

    def __init__(self, per_set: int, neurons: Mapping[str, Sequence[int]] | None = None):
        _check_per_set(per_set)
        self.per_set = per_set
        self.neurons = None if neurons is None else {layer: [int(i) for i in indices] for layer, indices in neurons.items()}
        self.num_images = 0
        self._columns: dict[str, tuple[int, int, torch.Tensor | None]] | None = None  # layer -> first column, count, indices
        self._values: torch.Tensor | None = None  # (kept, columns) float32, best first
        self._means: torch.Tensor | None = None  # (kept, columns) float32, mean over positions
        self._images: torch.Tensor | None = None  # (kept, columns) positions of the images in the run
        self._positions: torch.Tensor | None = None  # (kept, columns) where in the layer the maximum is

    def fresh(self) -> NeuronMaxima:
        """An empty tracker of the same neurons."""
        return NeuronMaxima(self.per_set, self.neurons)

    def _layout(self, activations: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, int, torch.Tensor | None]]:
        if self._columns is None:
            chosen = self.neurons if self.neurons is not None else dict.fromkeys(activations)
            columns, start = {}, 0
            for layer, indices in chosen.items():
                if layer not in activations:
                    raise ValueError(f"no layer {layer!r} among the activations; layers: {', '.join(activations)}")
                size = activations[layer].shape[1]
                if indices is not None:
                    outside = [i for i in indices if not 0 <= i < size]
                    if outside:
                        raise ValueError(f"layer {layer!r} has {size} neurons; indices {outside} are out of range")
                count = size if indices is None else len(indices)
                columns[layer] = (start, count, None if indices is None else torch.tensor(indices, dtype=torch.int64))
                start += count
            self._columns = columns
        return self._columns

    def update(self, activations: Mapping[str, torch.Tensor], positions: Sequence[int]) -> None:
        """Add a batch: ``{layer: (batch, neurons, positions)}`` and the images' positions in the run.

        Every tracked neuron's maximum and mean are taken; where the maximum lies, only for the
        neurons where an image of the batch enters the best ``per_set`` (few, once a few images are in).
        """
        layout = self._layout(activations)
        chosen = []
        for layer, (_, _, indices) in layout.items():
            values = activations[layer]
            chosen.append(values if indices is None else values.index_select(1, indices.to(values.device)))
        maxima = torch.cat([_maxima(values).float() for values in chosen], dim=1).cpu()
        means = torch.cat([values.mean(dim=2).float() for values in chosen], dim=1).cpu()
        if len(positions) != maxima.shape[0]:
            raise ValueError(f"{maxima.shape[0]} images but {len(positions)} positions")
        if torch.isnan(maxima).any():
            raise ValueError("the extractor produced NaN activations")
        images = torch.as_tensor(list(positions), dtype=torch.int64).unsqueeze(1).expand_as(maxima)
        full = self._values is not None and self._values.shape[0] == self.per_set
        if full:  # the columns where an image beats the last kept one (by maximum, mean, then position)
            last = self._values[-1], self._means[-1], self._images[-1]
            beats = (maxima > last[0]) | (maxima == last[0]) & ((means > last[1]) | (means == last[1]) & (images < last[2]))
            columns = beats.any(dim=0).nonzero().flatten()
        else:
            columns = torch.arange(maxima.shape[1])
        if columns.numel():
            where = torch.empty((maxima.shape[0], columns.numel()), dtype=torch.int64)
            firsts = [first for first, _, _ in layout.values()]
            bounds = torch.searchsorted(columns, torch.tensor([*firsts, maxima.shape[1]])).tolist()  # columns by layer
            for first, values, start, end in zip(firsts, chosen, bounds, bounds[1:]):
                if start < end:
                    local = (columns[start:end] - first).to(values.device)
                    where[:, start:end] = values.index_select(1, local).argmax(dim=2).cpu()  # the first maximum
            candidates = tuple(values[:, columns] for values in (maxima, means, images))
            self._keep((*candidates, where), columns if full else None)
        self.num_images += maxima.shape[0]

    def _state(self) -> tuple[torch.Tensor, ...] | None:
        return None if self._values is None else (self._values, self._means, self._images, self._positions)

    def _keep(self, candidates: tuple[torch.Tensor, ...], columns: torch.Tensor | None = None) -> None:
        """Keep the best ``per_set`` of the kept and the ``candidates`` (maxima, means, images, positions) of
        ``columns`` (all columns when None)."""
        kept = self._state()
        if kept is not None:
            mine = kept if columns is None else tuple(values[:, columns] for values in kept)
            candidates = tuple(torch.cat([old, new]) for old, new in zip(mine, candidates))
        for key, descending in ((2, False), (1, True), (0, True)):  # stable sorts: the last key sorts first
            order = candidates[key].argsort(dim=0, descending=descending, stable=True)
            candidates = tuple(values.gather(0, order) for values in candidates)
        best = tuple(values[: self.per_set] for values in candidates)
        if columns is None:
            self._values, self._means, self._images, self._positions = best
        else:
            for values, chosen in zip(kept, best):
                values[:, columns] = chosen

    def merge(self, other: NeuronMaxima) -> None:
        """Add the images another tracker of the same neurons has seen."""
        if not isinstance(other, NeuronMaxima) or other.per_set != self.per_set or other.neurons != self.neurons:
            raise ValueError("only trackers of the same neurons and per_set can merge")
        theirs = other._state()
        if theirs is not None:
            if self._columns is None:
                self._columns = other._columns
            self._keep(theirs)
        self.num_images += other.num_images

    def best(self, layer: str, index: int) -> list[Maximum]:
        """The neuron's best images, highest maximum first (fewer than ``per_set`` if fewer images were seen)."""
        if self._columns is None or self._values is None:
            raise ValueError("no images have been tracked yet")
        if layer not in self._columns:
            raise ValueError(f"layer {layer!r} is not tracked; tracked layers: {', '.join(self._columns)}")
        start, count, indices = self._columns[layer]
        tracked = list(range(count)) if indices is None else indices.tolist()
        if index not in tracked:
            raise ValueError(f"neuron {index!r} of layer {layer!r} is not tracked; tracked: {_span(tracked)}")
        column = start + tracked.index(index)
        return [
            Maximum(int(image), float(value), int(position))
            for value, image, position in zip(self._values[:, column], self._images[:, column], self._positions[:, column])
        ]



# -- positions back to the input ---------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerGeometry:
    """Where the positions of one layer lie on the network's input of ``input_size`` (H, W).

    The first ``prefix`` positions (a ViT's class and register tokens) see the whole image; the
    others lie on a ``grid`` (rows, columns), row by row. Row ``r`` of the grid covers input rows
    ``[start[0] + r * stride[0], end[0] + r * stride[0])`` clipped to the image, and likewise for
    columns: for a convolutional map, the rows the position's activation depends on; for tokens, the
    patch.
    """

    input_size: tuple[int, int]
    grid: tuple[int, int]
    stride: tuple[float, float]
    start: tuple[float, float]
    end: tuple[float, float]
    prefix: int = 0

    @property
    def positions(self) -> int:
        """Positions of the layer."""
        return self.prefix + self.grid[0] * self.grid[1]

    def _cell(self, position: int) -> tuple[int, int] | None:
        if not 0 <= position < self.positions:
            raise ValueError(f"position {position} is outside the layer's {self.positions} positions")
        return None if position < self.prefix else divmod(position - self.prefix, self.grid[1])

    def box(self, position: int) -> tuple[int, int, int, int]:
        """``(top, left, bottom, right)`` of the input pixels ``position`` sees (bottom and right excluded)."""
        cell = self._cell(position)
        height, width = self.input_size
        if cell is None:
            return 0, 0, height, width
        top, left = (math.floor(self.start[axis] + cell[axis] * self.stride[axis]) for axis in (0, 1))
        bottom, right = (math.ceil(self.end[axis] + cell[axis] * self.stride[axis]) for axis in (0, 1))
        return min(max(top, 0), height), min(max(left, 0), width), min(max(bottom, 0), height), min(max(right, 0), width)

    def cell(self, position: int) -> tuple[int, int, int, int]:
        """``(top, left, bottom, right)`` of a stride-sized square centred on what ``position`` sees, within its
        :meth:`box`: where on the input the position lies (a token's patch; a class token's, the whole image)."""
        if self._cell(position) is None:
            return 0, 0, *self.input_size
        centre = self.centre(position)
        top, left = (math.floor(centre[axis] - self.stride[axis] / 2) for axis in (0, 1))
        bottom, right = (math.ceil(centre[axis] + self.stride[axis] / 2) for axis in (0, 1))
        box = self.box(position)
        return max(top, box[0]), max(left, box[1]), min(bottom, box[2]), min(right, box[3])

    def centre(self, position: int) -> tuple[float, float]:
        """The centre ``(y, x)`` of what ``position`` sees, before clipping to the image (the image's for a class token)."""
        cell = self._cell(position)
        if cell is None:
            return self.input_size[0] / 2, self.input_size[1] / 2
        return tuple((self.start[axis] + self.end[axis]) / 2 + cell[axis] * self.stride[axis] for axis in (0, 1))


_GEOMETRY: weakref.WeakKeyDictionary[Extractor, dict[str, LayerGeometry]] = weakref.WeakKeyDictionary()


def _grid(info: ExtractorInfo, layer: str) -> tuple[int, int]:
    if layer not in info.layers:
        raise ValueError(f"extractor {info.name} has no layer {layer!r}; layers: {', '.join(info.layers)}")
    if layer not in info.grids:
        raise ValueError(f"extractor {info.name} does not say where the positions of layer {layer!r} lie on its input")
    return info.grids[layer]


def _patches(info: ExtractorInfo, layer: str, positions: int) -> LayerGeometry:
    rows, columns = _grid(info, layer)
    height, width = info.input_size
    stride = (height / rows, width / columns)
    return LayerGeometry(info.input_size, (rows, columns), stride, (0.0, 0.0), stride, prefix=positions - rows * columns)


def _supports(extractor: Extractor, probes: list[tuple[str, int]]) -> list[tuple[int, int, int, int]]:
    """The bounding box ``(top, left, bottom, right)`` of the input pixels each ``(layer, position)`` depends on.

    Measured as the support of the gradient of the sum of the layer's activations at the position
    with respect to a noise image (all channels at once, so that no path is left out for being
    inactive in one of them): one forward pass, then one backward pass per probe.
    """
    height, width = extractor.info.input_size
    noise = torch.randn((1, 3, height, width), generator=torch.Generator().manual_seed(_GRADIENT_SEED)).to(_device(extractor))
    image = noise.requires_grad_(True)
    boxes = []
    with torch.enable_grad():
        activations = extractor(image)
        for number, (layer, position) in enumerate(probes):
            (gradient,) = torch.autograd.grad(
                activations[layer][0, :, position].sum(), image, retain_graph=number < len(probes) - 1
            )
            touched = gradient[0].abs().sum(dim=0).cpu() != 0
            rows, columns = touched.any(dim=1).nonzero().flatten(), touched.any(dim=0).nonzero().flatten()
            if rows.numel() == 0:
                raise RuntimeError(f"layer {layer!r}, position {position}: the activation depends on no input pixel")
            boxes.append((int(rows[0]), int(columns[0]), int(rows[-1]) + 1, int(columns[-1]) + 1))
    return boxes


def _axis(size: int, cells: int, first_end: int, second_end: int, last_start: int, before_last_start: int) -> tuple[float, float, float]:
    """``(stride, start, end)`` of one axis from the supports of the first two and the last two cells.

    A support clipped by the image's edge says nothing of the unclipped interval; but then every
    cell is clipped on that side too, which the clipped value expresses exactly.
    """
    if cells == 1:
        stride = float(size)
    elif second_end < size:  # neither of the first two is clipped at the end
        stride = float(second_end - first_end)
    elif before_last_start > 0:  # neither of the last two is clipped at the start
        stride = float(last_start - before_last_start)
    else:
        stride = size / cells
    return stride, last_start - (cells - 1) * stride, float(first_end)


def _maps(extractor: Extractor, layers: list[str]) -> dict[str, LayerGeometry]:
    info = extractor.info
    corners = {}
    for layer in layers:
        rows, columns = _grid(info, layer)
        cells = [(0, 0), (min(1, rows - 1), min(1, columns - 1)), (rows - 1, columns - 1), (max(rows - 2, 0), max(columns - 2, 0))]
        corners[layer] = [r * columns + c for r, c in cells]
    boxes = iter(_supports(extractor, [(layer, position) for layer in layers for position in corners[layer]]))
    found = {}
    for layer in layers:
        first, second, last, before_last = (next(boxes) for _ in range(4))
        grid = _grid(info, layer)
        axes = [
            _axis(info.input_size[axis], grid[axis], first[axis + 2], second[axis + 2], last[axis], before_last[axis])
            for axis in (0, 1)
        ]
        stride, start, end = zip(*axes)
        found[layer] = LayerGeometry(info.input_size, grid, stride, start, end)
    return found


def layer_geometry(extractor: Extractor, layers: Iterable[str]) -> dict[str, LayerGeometry]:
    """Where the positions of each of ``layers`` lie on the extractor's input, measured once per extractor and layer."""
    info = extractor.info
    wanted = list(dict.fromkeys(layers))
    for layer in wanted:
        _grid(info, layer)
    known = _GEOMETRY.setdefault(extractor, {})
    missing = [layer for layer in wanted if layer not in known]
    if missing:
        if info.tokens:
            positions = _token_counts(extractor, missing)
            known.update({layer: _patches(info, layer, positions[layer]) for layer in missing})
        else:
            known.update(_maps(extractor, missing))
    return {layer: known[layer] for layer in wanted}


def _device(extractor: Extractor) -> torch.device:
    parameter = next(extractor.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


@torch.inference_mode()
def _token_counts(extractor: Extractor, layers: list[str]) -> dict[str, int]:
    """How many positions (tokens) each layer has."""
    activations = extractor(torch.zeros((1, 3, *extractor.info.input_size), device=_device(extractor)))
    return {layer: activations[layer].shape[2] for layer in layers}


# -- the examples -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NeuronExample:
    """An image where a neuron fires strongly: its maximum ``activation``, reached at ``position`` of the layer.

    ``box`` ``(top, left, bottom, right)`` is what that position sees of the network's input, and
    ``crop`` (uint8 ``(h, w, 3)``) those pixels of the image as the network saw it (cropped and
    resized, before normalisation). ``cell`` (same convention) is where on the input the position
    lies (:meth:`LayerGeometry.cell`), within ``box``. ``image`` is the image's position in its source.
    """

    name: str
    image: int
    activation: float
    position: int
    box: tuple[int, int, int, int]
    cell: tuple[int, int, int, int]
    crop: np.ndarray

    @property
    def outline(self) -> tuple[int, int, int, int] | None:
        """``cell`` in the crop's pixels, to outline where the cell is at most a quarter of ``box``; else None."""
        top, left, bottom, right = self.box
        cell_top, cell_left, cell_bottom, cell_right = self.cell
        if 4 * (cell_bottom - cell_top) * (cell_right - cell_left) > (bottom - top) * (right - left):
            return None
        return cell_top - top, cell_left - left, cell_bottom - top, cell_right - left


@dataclass(frozen=True)
class NeuronExamples:
    """A neuron's best examples in set A and in set B, highest activation first."""

    layer: str
    index: int
    a: tuple[NeuronExample, ...]
    b: tuple[NeuronExample, ...]


def neuron_list(neurons: Any, info: ExtractorInfo) -> list[NeuronKey]:
    """``neurons`` (``(layer, index)`` pairs, objects with ``layer`` and ``index`` such as ranked
    :class:`~vdna.neurons.Neuron` s, or ``{layer: indices}``) as ``(layer, index)`` pairs, checked against ``info``."""
    if isinstance(neurons, Mapping):
        pairs = [(layer, index) for layer, indices in neurons.items() for index in indices]
    else:
        pairs = [(n.layer, n.index) if hasattr(n, "layer") else tuple(n) for n in neurons]
    if not pairs:
        raise ValueError("no neurons given; give (layer, index) pairs or {layer: indices}")
    checked = []
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"a neuron is a (layer, index) pair, got {pair!r}")
        layer, index = pair
        if layer not in info.layers:
            raise ValueError(f"extractor {info.name} has no layer {layer!r}; layers: {', '.join(info.layers)}")
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < info.layers[layer]:
            raise ValueError(f"layer {layer!r} of {info.name} has {info.layers[layer]} neurons; neuron {index!r} is not one of them")
        checked.append((layer, int(index)))
    return list(dict.fromkeys(checked))


def can_read_twice(source: Any) -> bool:
    """Whether the images of ``source`` can be read again after a run (not a one-shot iterator)."""
    return not isinstance(source, Iterator)


def _resized_images(source: Any, config: RunConfig, info: ExtractorInfo, images: Sequence[int]) -> dict[int, tuple[str, np.ndarray]]:
    """``{position: (name, pixels)}``: the images at those positions of the run, as the network saw them."""
    collection = open_source(source, config.num_images, config.shuffle_files, config.seed)
    wanted = set(images)
    if isinstance(collection, ItemStream):
        items = {index: item for index, item in enumerate(collection) if index in wanted}
    else:
        items = {index: (collection.names[index], collection.load(index)) for index in sorted(wanted)}
    missing = sorted(wanted - set(items))
    if missing:
        raise ValueError(f"images {missing} of the run are no longer in the source; has it changed since?")
    preprocessor = run_preprocessor(info, config)
    return {
        index: (name, preprocessor.resized(decode_image(raw, name, config.max_image_pixels), index))
        for index, (name, raw) in items.items()
    }


def crop_examples(
    maxima: NeuronMaxima, neurons: Sequence[NeuronKey], source: Any, config: RunConfig, extractor: Extractor
) -> dict[NeuronKey, list[NeuronExample]]:
    """Each neuron's best images of a run into ``maxima``, with the crop of each: ``source`` is read again, without the network.

    ``source`` and ``config`` must be those of the run (they say which image each position is).
    """
    geometry = layer_geometry(extractor, [layer for layer, _ in neurons])
    best = {(layer, index): maxima.best(layer, index) for layer, index in neurons}
    pixels = _resized_images(source, config, extractor.info, sorted({m.image for found in best.values() for m in found}))
    examples = {}
    for (layer, index), found in best.items():
        examples[(layer, index)] = []
        for maximum in found:
            name, image = pixels[maximum.image]
            top, left, bottom, right = box = geometry[layer].box(maximum.position)
            crop = np.rint(image[top:bottom, left:right]).astype(np.uint8)
            examples[(layer, index)].append(NeuronExample(
                name, maximum.image, maximum.activation, maximum.position, box, geometry[layer].cell(maximum.position), crop
            ))
    return examples


def neuron_examples(
    source_a: Any,
    source_b: Any,
    neurons: Any,
    per_set: int = 6,
    processor: VDNAProcessor | None = None,
    *,
    config: RunConfig | None = None,
    **options: Any,
) -> dict[NeuronKey, NeuronExamples]:
    """For each neuron, the ``per_set`` images of each set where it fires most, with what it saw of them.

    ``neurons``: ``(layer, index)`` pairs, ranked :class:`~vdna.neurons.Neuron` s (e.g. the first of
    :func:`~vdna.neurons.rank_neurons`) or ``{layer: indices}``. Each set goes through the network
    once, with the run settings ``config`` and ``options`` (:class:`~vdna.RunConfig`'s fields, which
    replace its; no DNA is made); its best images are
    then read again to crop them. Returns ``{(layer, index): NeuronExamples}`` in the order of ``neurons``.
    """
    _check_per_set(per_set)
    config, ranges = run_settings(config, "neuron_examples", **options)
    processor = processor or VDNAProcessor()
    extractor = processor.get_extractor(config.feat_extractor_name, config.device, config.extractor_weights)
    chosen = neuron_list(neurons, extractor.info)
    layer_geometry(extractor, [layer for layer, _ in chosen])  # a layer that cannot be mapped fails before any run
    for source in (source_a, source_b):
        if not can_read_twice(source):
            raise ValueError("neuron_examples reads the best images again to crop them; give a source that can be read twice")
    selection: dict[str, list[int]] = {}
    for layer, index in chosen:
        selection.setdefault(layer, []).append(index)
    found = []
    for source in (source_a, source_b):
        maxima = NeuronMaxima(per_set, selection)
        processor.run(source, config, [], trackers=[maxima], ranges=ranges)
        found.append(crop_examples(maxima, chosen, source, config, extractor))
    return {key: NeuronExamples(key[0], key[1], tuple(found[0][key]), tuple(found[1][key])) for key in chosen}


__all__ = [
    "LayerGeometry",
    "Maximum",
    "NeuronExample",
    "NeuronExamples",
    "NeuronMaxima",
    "can_read_twice",
    "crop_examples",
    "layer_geometry",
    "neuron_examples",
    "neuron_list",
]
