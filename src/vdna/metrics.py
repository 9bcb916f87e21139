"""DNAs inside training loops: torchmetrics metrics whose states merge exactly across processes.

:class:`DNAMetric` takes batches of image tensors (``update``) and gives the DNA of every image
seen (``compute``); :class:`DNADistance` gives their distance to a reference DNA, e.g. generated
samples against the training set. Each batch goes through the run engine (:class:`vdna.engine.Run`)
as a list of images would in :meth:`vdna.VDNAProcessor.make_vdna`: the same clean resize on the
CPU, the same forward pass, the same accumulators. Nothing grows with the number of images.

The states reduce across processes (DDP) into the DNA of the union of every process's images:

- histograms: int64 counts per layer, summed: exact, bit for bit;
- activation ranges: float32 minima and maxima: exact;
- Gaussians: per layer one float64 vector packing the count, the mean and the sum of squared
  deviations (or of cross products); the vectors of the processes are gathered and merged with
  Chan et al.'s formula, as the accumulators merge, so the result equals the DNA of all images to
  float64 round-off, without the cancellation of raw sums of squares.

torchmetrics is optional: ``pip install "vdna[metrics]"``.
"""

from __future__ import annotations

try:
    from torchmetrics import Metric
except ModuleNotFoundError as error:  # pragma: no cover - exercised with torchmetrics hidden
    if error.name != "torchmetrics":
        raise
    raise ImportError('vdna.metrics needs torchmetrics: pip install "vdna[metrics]"') from None

import contextlib
import functools
import os
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from .config import DEFAULT_DISTRIBUTION, DEFAULT_EXTRACTOR, RunConfig
from .distances import EMD, FD, NFD
from .distributions import Accumulator, DNAType, parse_distribution
from .distributions.gaussian import combine_moments, spread_from_m2
from .dna import VDNA, check_comparable
from .engine import Run, RunRecord, collate, forward_function, prepare_image, resolve_ranges, run_provenance
from .extractors import Extractor, create_extractor
from .io import load_vdna_from_files
from .preprocess import Preprocessor

SOURCE = "image tensors given to update()"
"""What a metric's DNAs record as their source."""


# -- the extractor: frozen, shared, outside the module tree -----------------------------------------
_EXTRACTORS: weakref.WeakValueDictionary[tuple, Extractor] = weakref.WeakValueDictionary()
_EXTRACTORS_LOCK = threading.Lock()
_LAST_EXTRACTOR: list[Extractor] = []  # the last one built stays, for the next metric that needs it


def shared_extractor(name: str, weights: str | os.PathLike | None, device: torch.device) -> Extractor:
    """The extractor ``name`` on ``device``, built once and shared by the metrics of this process that use it.

    It lives while a metric uses it; the last one built stays until another is built.
    """
    key = (name, None if weights is None else os.fspath(weights), str(device))
    with _EXTRACTORS_LOCK:
        extractor = _EXTRACTORS.get(key)
        if extractor is None:
            extractor = create_extractor(name, weights=weights, device=device)
            _EXTRACTORS[key] = extractor
            _LAST_EXTRACTOR[:] = [extractor]
    return extractor


class _FrozenExtractor:
    """A metric's extractor, kept out of its module tree.

    So it is never a trained parameter, ``metric.train()`` never switches it out of eval mode, DDP
    never broadcasts its buffers and it is not in the metric's ``state_dict``. Copies of a metric
    share it; a pickled metric names it and rebuilds it where it is unpickled.
    """

    def __init__(self, name: str, weights: str | os.PathLike | None, device: torch.device):
        self.name, self.weights, self.device = name, weights, torch.device(device)
        self.extractor = shared_extractor(name, weights, self.device)

    def on(self, device: torch.device) -> _FrozenExtractor:
        """This extractor on ``device`` (itself if it is there)."""
        return self if torch.device(device) == self.device else _FrozenExtractor(self.name, self.weights, device)

    def __deepcopy__(self, memo: dict) -> _FrozenExtractor:
        return self

    def __reduce__(self) -> tuple:
        return _FrozenExtractor, (self.name, self.weights, str(self.device))


def _float32_region(device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast switched off on ``device`` (where autocast exists), so a training loop's mixed precision stays outside."""
    available = getattr(torch.amp, "is_autocast_available", lambda kind: kind in ("cpu", "cuda"))
    return torch.autocast(device.type, enabled=False) if available(device.type) else contextlib.nullcontext()


# -- images in ---------------------------------------------------------------------------------------
def batch_pixels(images: Any) -> np.ndarray:
    """A batch ``(N, 3, H, W)``, uint8 in 0..255 or float in [0, 1], as ``(N, H, W, 3)`` pixels on the CPU.

    Float images become float32 (as :func:`vdna.preprocess.decode_image` makes them); the checks
    come first, so a bad batch changes nothing.
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor of shape (N, 3, H, W), got {type(images).__name__}")
    shape = tuple(images.shape)
    if images.ndim != 4:
        hint = "; for one image (3, H, W) pass images[None]" if images.ndim == 3 else ""
        raise ValueError(f"images must be a batch of shape (N, 3, H, W), got shape {shape}{hint}")
    if shape[1] != 3:
        raise ValueError(
            f"images must have 3 (RGB) channels in dimension 1, (N, 3, H, W), got shape {shape}; "
            "channels-last batches: images.permute(0, 3, 1, 2); grey ones: images.expand(-1, 3, -1, -1)"
        )
    if shape[2] == 0 or shape[3] == 0:
        raise ValueError(f"images have no pixels: shape {shape}")
    if images.dtype == torch.uint8:
        pixels = images
    elif images.is_floating_point():
        if shape[0] and not bool(torch.isfinite(images).all()):
            raise ValueError("float images contain NaN or infinite values")
        if shape[0]:
            low, high = (float(value) for value in torch.aminmax(images))
            if low < 0.0 or high > 1.0:
                raise ValueError(
                    f"float images must lie in [0, 1] (or be uint8 in 0..255), found values in [{low:g}, {high:g}]"
                )
        pixels = images.to(torch.float32)
    else:
        raise TypeError(f"images must be uint8 (0..255) or float in [0, 1], got dtype {images.dtype}")
    return pixels.detach().permute(0, 2, 3, 1).cpu().numpy()


# -- how each distribution's state lives in torchmetrics states ---------------------------------------
class _StateLayout:
    """One distribution's running state as torchmetrics states, one per layer (``<prefix>_<layer index>``).

    ``batch_accumulator`` gives the accumulator a batch goes into, ``absorb`` adds it to the states
    afterwards, ``layer_data`` reads the states as the DNA's per-layer data.
    """

    prefix = ""

    def __init__(self, metric: Metric, layers: Mapping[str, int], parameters: dict[str, Any], dna_class: type[DNAType]):
        self.names = {layer: f"{self.prefix}_{index}" for index, layer in enumerate(layers)}
        for layer, neurons in layers.items():
            default, reduction = self.initial(neurons, parameters)
            metric.add_state(self.names[layer], default, dist_reduce_fx=reduction)

    def initial(self, neurons: int, parameters: dict[str, Any]) -> tuple[torch.Tensor, Any]:
        """A layer's empty state and its reduction across processes."""
        raise NotImplementedError

    def state(self, metric: Metric, layer: str) -> torch.Tensor:
        return getattr(metric, self.names[layer])

    def batch_accumulator(self, metric: Metric, template: Accumulator) -> Accumulator:
        raise NotImplementedError

    def absorb(self, metric: Metric, accumulator: Accumulator) -> None:
        """Add a batch's accumulator to the states (nothing to do where the accumulator wrote into them)."""

    def layer_data(self, metric: Metric, num_images: int) -> dict[str, Any]:
        raise NotImplementedError


class _Counts(_StateLayout):
    """Histograms: int64 ``(neurons, bins)`` counts, summed across processes. The accumulator bins into them."""

    prefix = "counts"

    def initial(self, neurons, parameters):
        return torch.zeros((neurons, parameters["bins"]), dtype=torch.int64), "sum"

    def batch_accumulator(self, metric, template):
        template.counts = {layer: self.state(metric, layer) for layer in self.names}
        return template

    def absorb(self, metric, accumulator):
        accumulator.flush()

    def layer_data(self, metric, num_images):
        return {layer: self.state(metric, layer).to("cpu", copy=True) for layer in self.names}


class _Extremes(_StateLayout):
    """Activation ranges: float32 minima (``min_<i>``) and maxima (``max_<i>``). The accumulator updates them in place."""

    prefix = "min"

    def __init__(self, metric, layers, parameters, dna_class):
        super().__init__(metric, layers, parameters, dna_class)
        self.maxima = {layer: f"max_{index}" for index, layer in enumerate(layers)}
        for layer, neurons in layers.items():
            metric.add_state(self.maxima[layer], torch.full((neurons,), -torch.inf), dist_reduce_fx="max")

    def initial(self, neurons, parameters):
        return torch.full((neurons,), torch.inf), "min"

    def batch_accumulator(self, metric, template):
        template.minimum = {layer: self.state(metric, layer) for layer in self.names}
        template.maximum = {layer: getattr(metric, self.maxima[layer]) for layer in self.names}
        return template

    def layer_data(self, metric, num_images):
        return {
            layer: {
                "min": self.state(metric, layer).to("cpu", torch.float32, copy=True),
                "max": getattr(metric, self.maxima[layer]).to("cpu", torch.float32, copy=True),
            }
            for layer in self.names
        }


def _pack(count: float, mean: torch.Tensor, m2: torch.Tensor) -> torch.Tensor:
    return torch.cat([mean.new_tensor([count]), mean, m2.flatten()])


def _unpack(packed: torch.Tensor, neurons: int, full: bool) -> tuple[int, torch.Tensor, torch.Tensor]:
    m2 = packed[1 + neurons :]
    return int(packed[0]), packed[1 : 1 + neurons], m2.reshape(neurons, neurons) if full else m2


def merge_packed_moments(stacked: torch.Tensor, neurons: int, full: bool) -> torch.Tensor:
    """Rows ``[count, mean (neurons), m2 (neurons, or neurons² if full)]`` of several parts merged into one (Chan et al.)."""
    rows = stacked.reshape(-1, stacked.shape[-1])
    count, mean, m2 = _unpack(rows[0], neurons, full)
    for row in rows[1:]:
        other_count, other_mean, other_m2 = _unpack(row, neurons, full)
        mean, m2 = combine_moments(count, mean, m2, other_count, other_mean, other_m2)
        count += other_count
    return _pack(count, mean, m2)


class _Moments(_StateLayout):
    """Gaussians: per layer one float64 vector ``[count, mean, m2]``; the processes' vectors merge with Chan's formula.

    Counts are exact in float64 up to 2**53 images.
    """

    prefix = "moments"

    def __init__(self, metric, layers, parameters, dna_class):
        self.full = dna_class.full_covariance
        self.spread_key = dna_class.spread_key
        self.neurons = dict(layers)
        super().__init__(metric, layers, parameters, dna_class)

    def initial(self, neurons, parameters):
        size = 1 + neurons + (neurons * neurons if self.full else neurons)
        return torch.zeros(size, dtype=torch.float64), functools.partial(merge_packed_moments, neurons=neurons, full=self.full)

    def batch_accumulator(self, metric, template):
        return template.fresh()

    def absorb(self, metric, accumulator):
        for layer, neurons in self.neurons.items():
            count, mean, m2 = _unpack(self.state(metric, layer), neurons, self.full)
            mean, m2 = combine_moments(
                count, mean, m2, accumulator.num_images, accumulator.mean[layer], accumulator.m2[layer]
            )
            setattr(metric, self.names[layer], _pack(count + accumulator.num_images, mean, m2))

    def layer_data(self, metric, num_images):
        data = {}
        for layer, neurons in self.neurons.items():
            count, mean, m2 = _unpack(self.state(metric, layer), neurons, self.full)
            data[layer] = {"mu": mean.to("cpu", copy=True), self.spread_key: spread_from_m2(m2, count).to("cpu", copy=True)}
        return data


_LAYOUTS: dict[str, type[_StateLayout]] = {
    "histogram": _Counts,
    "activation-ranges": _Extremes,
    "gaussian": _Moments,
    "layer-gaussian": _Moments,
}


# -- the metrics ----------------------------------------------------------------------------------------
class DNAMetric(Metric):
    """The DNA of every image given to :meth:`update`, merged exactly across processes (a torchmetrics ``Metric``).

    ``update(images)`` takes a batch ``(N, 3, H, W)``, uint8 in 0..255 or float in [0, 1], of any
    size and on any device; the images are resized on the CPU with the clean resize files get, and
    go through the extractor on the metric's device (``metric.to(device)`` moves it), so the DNA
    equals :meth:`vdna.VDNAProcessor.make_vdna` of the same images given as numpy arrays (on the CPU
    with as many torch threads, bit for bit for histograms and ranges, to float64 round-off for
    Gaussians). ``compute()`` returns that DNA; ``reset()`` empties it and keeps the extractor.

    ``distribution_name``: ``histogram-B``, ``gaussian``, ``layer-gaussian`` or
    ``activation-ranges``. ``activation_ranges`` and ``weights`` (a weights file for the extractor)
    are :meth:`~vdna.VDNAProcessor.make_vdna`'s; so are ``precision`` (autocast; ``"float32"``
    runs in float32 even inside an autocast region of the training loop) and
    ``forward_batch_size`` (images per forward pass; default one at a time on the CPU, the whole
    batch elsewhere). Other keyword arguments go to ``torchmetrics.Metric`` (``sync_on_compute``,
    ``process_group``, ...).

    The extractor is frozen and outside the module tree: it is no parameter, stays in eval mode,
    is not in ``state_dict`` and is shared by the metrics of a process that use the same one. The
    states keep their dtypes (they are exact sums) whatever ``.to(dtype)``, ``.half()`` or
    ``set_dtype`` asks. They are not saved in ``state_dict`` unless ``metric.persistent(True)``.
    """

    higher_is_better: bool | None = None
    is_differentiable = False
    full_state_update = False

    num_images: torch.Tensor

    def __init__(
        self,
        feat_extractor_name: str = DEFAULT_EXTRACTOR,
        distribution_name: str = DEFAULT_DISTRIBUTION,
        activation_ranges: Any = None,
        weights: str | os.PathLike | None = None,
        *,
        precision: str = "float32",
        forward_batch_size: int | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        dna_class, parameters = parse_distribution(distribution_name)
        if dna_class.type not in _LAYOUTS:
            raise ValueError(
                f"{type(self).__name__} makes histogram-B, gaussian, layer-gaussian and activation-ranges DNAs, "
                f"not {distribution_name!r}; per-image DNAs keep every image: make them with VDNAProcessor.make_vdna"
            )
        self._config = RunConfig(
            feat_extractor_name=feat_extractor_name, distribution_name=distribution_name,
            activation_ranges=activation_ranges, weights=weights, precision=precision,
            forward_batch_size=forward_batch_size, num_workers=0, verbose=False, n_sample_images=0,
        )
        self._frozen = _FrozenExtractor(feat_extractor_name, weights, self.device)
        info = self.extractor.info
        self._dna_class, self._distribution_parameters = dna_class, parameters
        self._ranges = resolve_ranges(activation_ranges, self.extractor) if dna_class.needs_ranges else None
        self._preprocessor = Preprocessor(info.input_size, info.mean, info.std)
        self._templates: dict[str, Accumulator] = {}
        self._interrupted = False
        self._layout = _LAYOUTS[dna_class.type](self, info.layers, parameters, dna_class)
        self.add_state("num_images", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    @property
    def extractor(self) -> Extractor:
        """The frozen extractor, on the metric's device."""
        return self._frozen.extractor

    def _template(self) -> Accumulator:
        """The accumulator of this distribution on the metric's device (the state layouts feed or copy it)."""
        key = str(self.device)
        if key not in self._templates:
            self._templates[key] = self._dna_class.accumulator(
                self._distribution_parameters, self.extractor.info.layers, self._ranges, self.device
            )
        return self._templates[key]

    def update(self, images: torch.Tensor) -> None:
        """Add a batch of images ``(N, 3, H, W)``: uint8 in 0..255 or float in [0, 1], any size, any device."""
        pixels = batch_pixels(images)
        if len(pixels) == 0:
            return
        preprocessor, max_pixels = self._preprocessor, self._config.max_image_pixels
        batch = collate([
            prepare_image(image, f"image {index} of the batch", index, preprocessor, max_pixels)
            for index, image in enumerate(pixels)
        ])
        device = self.device
        step = self._config.forward_batch_size or (1 if device.type == "cpu" else len(pixels))
        forward = forward_function(self.extractor, device, self._config.precision)
        accumulator = self._layout.batch_accumulator(self, self._template())
        self._interrupted = True  # until the batch is in every state
        with _float32_region(device):  # precision= may still ask for autocast, inside
            Run(forward, [accumulator], device, step).add(batch)
        self._layout.absorb(self, accumulator)
        self.num_images = self.num_images + len(pixels)  # not in place: the state may be an inference tensor
        self._interrupted = False

    def _dna(self, num_images: int) -> DNAType:
        info = self.extractor.info
        provenance = run_provenance(
            self._config, SOURCE, info, self._ranges, self._dna_class, self._distribution_parameters, RunRecord(),
            device=self.device, workers=0, threads=torch.get_num_threads(), backend="metric",
        )
        data = self._layout.layer_data(self, num_images)
        return self._dna_class.create(self._distribution_parameters, info.name, info.layers, data, num_images, provenance)

    def compute(self) -> VDNA:
        """The DNA of every image given to :meth:`update` (on every process, once synchronised) since the last reset."""
        if self._interrupted:
            raise RuntimeError("an update failed part way through a batch, so the state is not a DNA; reset() the metric")
        num_images = int(self.num_images)
        if num_images == 0:
            raise ValueError(f"{type(self).__name__} has no images: call update(images) before compute()")
        return self._dna(num_images)

    def reset(self) -> None:
        """Forget every image (the extractor, and a distance's reference, stay)."""
        super().reset()
        self._interrupted = False

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_templates"] = {}  # rebuilt where needed; copies and pickles need not carry them
        return state

    def _apply(self, fn: Callable, exclude_state: Any = "") -> DNAMetric:
        states = tuple(self._defaults)
        this = super()._apply(fn, exclude_state=states)  # dtypes stay: the states are exact sums
        device = this.device
        for name in states:
            this._defaults[name] = this._defaults[name].to(device)
            setattr(this, name, getattr(this, name).to(device))
        this._frozen = this._frozen.on(device)
        return this


def _load_reference(reference: Any) -> VDNA:
    if isinstance(reference, VDNA):
        return reference
    if isinstance(reference, (str, os.PathLike)):
        return load_vdna_from_files(reference)
    raise TypeError(f"reference must be a VDNA or the path of a saved DNA, got {type(reference).__name__}")


_DISTANCES: dict[str, tuple[Callable, tuple[str, ...]]] = {
    "emd": (EMD, ("histogram",)),
    "nfd": (NFD, ("gaussian", "layer-gaussian")),
    "fd": (FD, ("layer-gaussian",)),
}


class DNADistance(DNAMetric):
    """The distance of the images given to :meth:`update` to a reference DNA (a torchmetrics ``Metric``).

    ``reference``: a :class:`~vdna.VDNA` or the path of a saved DNA, e.g. the training set's;
    ``metric``: ``"emd"`` (histogram DNAs), ``"nfd"`` (Gaussian DNAs) or ``"fd"`` (layer-Gaussian
    DNAs), computed as :func:`vdna.EMD`, :func:`vdna.NFD` and :func:`vdna.FD` do, with ``neurons``
    (``{layer: indices or None}``, not for ``"fd"``) and ``weights`` (one per compared neuron, or
    layer for ``"fd"``) as they take them. The extractor and distribution default to the
    reference's; ``extractor_weights`` is :class:`DNAMetric`'s ``weights`` (a weights file), and
    the other options are :class:`DNAMetric`'s. The reference's extractor, weights, layers,
    distribution and activation ranges must match the metric's. ``compute()`` returns a float64
    scalar tensor; ``reset()`` forgets the images and keeps the reference.
    """

    higher_is_better = False
    plot_lower_bound = 0.0

    def __init__(
        self,
        reference: VDNA | str | os.PathLike,
        metric: str = "emd",
        neurons: Mapping[str, Any] | None = None,
        weights: Any = None,
        *,
        feat_extractor_name: str | None = None,
        distribution_name: str | None = None,
        activation_ranges: Any = None,
        extractor_weights: str | os.PathLike | None = None,
        **options: Any,
    ):
        reference = _load_reference(reference)
        if metric not in _DISTANCES:
            raise ValueError(f"metric must be one of {', '.join(map(repr, _DISTANCES))}, got {metric!r}")
        distance, types = _DISTANCES[metric]
        if reference.type not in types:
            raise ValueError(f"metric={metric!r} compares {' or '.join(types)} DNAs; the reference DNA is {reference.type}")
        if metric == "fd" and neurons is not None:
            raise ValueError("metric='fd' compares whole layers; neurons= selects neurons for 'emd' and 'nfd'")
        super().__init__(
            feat_extractor_name or reference.feature_extractor_name, distribution_name or reference.name,
            activation_ranges, extractor_weights, **options,
        )
        try:
            check_comparable(self._dna(0), reference)
        except ValueError as error:
            raise ValueError(f"the reference DNA does not match this metric's DNAs: {error}") from None
        selection = {} if neurons is None else {"neurons": neurons}
        self._distance = functools.partial(distance, weights=weights, **selection)
        self._distance(reference, reference)  # a bad selection or bad weights fail here, not after an epoch
        self._reference = reference

    @property
    def reference(self) -> VDNA:
        """The DNA the images are compared with."""
        return self._reference

    def compute(self) -> torch.Tensor:
        """The distance (float64 scalar) of every image given to :meth:`update` since the last reset to the reference."""
        return torch.as_tensor(self._distance(super().compute(), self._reference), dtype=torch.float64)


__all__ = ["DNADistance", "DNAMetric", "batch_pixels", "merge_packed_moments", "shared_extractor"]
