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
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from .config import RunConfig, declared, given_settings, run_settings, split_settings, value_settings
from .distances import get_distance
from .distributions import Accumulator, DNAType, parse_distribution
from .distributions.state import state_key
from .dna import VDNA, check_comparable
from .engine import (
    Run,
    RunRecord,
    collate,
    forward_function,
    forward_step,
    prepare_image,
    resolve_ranges,
    run_preprocessor,
    run_provenance,
)
from .extractors import Extractor, create_extractor
from .io import load_vdna_from_files
from .plans import ForwardPlan

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


# -- the metrics ----------------------------------------------------------------------------------------
class DNAMetric(Metric):
    """The DNA of every image given to :meth:`update`, merged exactly across processes (a torchmetrics ``Metric``).

    ``update(images)`` takes a batch ``(N, 3, H, W)``, uint8 in 0..255 or float in [0, 1], of any
    size and on any device; the images are resized on the CPU with the clean resize files get, and
    go through the extractor on the metric's device (``metric.to(device)`` moves it), so the DNA
    equals :meth:`vdna.VDNAProcessor.make_vdna` of the same images given as numpy arrays (on the CPU
    with as many torch threads, bit for bit for histograms and ranges, to float64 round-off for
    Gaussians). ``compute()`` returns that DNA; ``reset()`` empties it and keeps the extractor.

    Any distribution (``distribution_name``): its accumulator's declared states become the
    metric's states (:mod:`vdna.distributions.state`), reduced across processes as the
    accumulators merge. The settings are :class:`~vdna.RunConfig`'s, as ``config=`` or keywords
    (``activation_ranges`` a file or ranges in memory, ``extractor_weights`` a weights file,
    ``precision`` (autocast; ``"float32"`` runs in float32 even inside an autocast region of the
    training loop), ``forward_batch_size`` (images per forward pass; default one at a time on the
    CPU, the whole batch elsewhere)); settings of reading a source of files (``num_images``,
    ``checkpoint``, ``streams``, ...: declared ``reading``) are refused. Other keyword arguments go to ``torchmetrics.Metric``
    (``sync_on_compute``, ``process_group``, ...).

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
        feat_extractor_name: str = RunConfig.feat_extractor_name,
        distribution_name: str = RunConfig.distribution_name,
        activation_ranges: Any = RunConfig.activation_ranges,
        extractor_weights: str | os.PathLike | None = RunConfig.extractor_weights,
        *,
        config: RunConfig | None = None,
        **options: Any,
    ):
        (run_options,), metric_options = split_settings(options, RunConfig)
        super().__init__(**metric_options)
        named = given_settings(config, feat_extractor_name=feat_extractor_name, distribution_name=distribution_name,
                               activation_ranges=activation_ranges, extractor_weights=extractor_weights)
        config, ranges = run_settings(config, type(self).__name__, **named, **run_options)
        unused = [item.name for item, setting in declared(RunConfig)
                  if setting.reading and getattr(config, item.name) != item.default]
        if unused:
            raise ValueError(f"{type(self).__name__} takes images from update(): {', '.join(unused)} "
                             "describe reading a source of files and do not apply")
        dna_class, parameters = parse_distribution(config.distribution_name)
        self._config = replace(config, num_workers=0, verbose=False, n_sample_images=0)
        self._frozen = _FrozenExtractor(config.feat_extractor_name, config.extractor_weights, self.device)
        info = self.extractor.info
        self._dna_class, self._distribution_parameters = dna_class, parameters
        given_ranges = config.activation_ranges if ranges is None else ranges
        self._ranges = resolve_ranges(given_ranges, self.extractor) if dna_class.needs_ranges else None
        self._preprocessor = run_preprocessor(info, self._config)
        self._forwards: dict[str, tuple[Callable, int | None]] = {}  # per device: forward pass, and the plan's step
        self._accumulators: dict[str, Accumulator] = {}
        self._interrupted = False
        self._state_names: dict[tuple[str, str], str] = {}
        accumulator = self._accumulator()
        for state, reductions in accumulator.reductions().items():
            for index, (layer, reduction) in enumerate(reductions.items()):
                name = self._state_names[state, layer] = state_key(state, index)
                self.add_state(name, accumulator.values[state][layer], dist_reduce_fx=reduction.across_processes)
        self.add_state("num_images", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    @property
    def extractor(self) -> Extractor:
        """The frozen extractor, on the metric's device."""
        return self._frozen.extractor

    def _accumulator(self) -> Accumulator:
        """The accumulator of this distribution on the metric's device, made once per device."""
        key = str(self.device)
        if key not in self._accumulators:
            self._accumulators[key] = self._dna_class.accumulator(
                self._distribution_parameters, self.extractor.info.layers, self._ranges, self.device
            )
        return self._accumulators[key]

    def _bound(self) -> Accumulator:
        """The accumulator holding the metric's states (the same tensors and lists, not copies)."""
        accumulator = self._accumulator()
        for (state, layer), name in self._state_names.items():
            accumulator.values[state][layer] = getattr(self, name)
        accumulator.num_images = int(self.num_images)
        return accumulator

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
        if str(device) not in self._forwards:  # the plan is resolved once per device, not read at every update
            step = forward_step(self._config, device, self.extractor.info.name, None)
            self._forwards[str(device)] = (forward_function(self.extractor, device, self._config), step)
        forward, step = self._forwards[str(device)]
        step = step or len(pixels)  # None on CUDA without forward_batch_size: each update's batch at once
        accumulator = self._bound()
        self._interrupted = True  # until the batch is in every state
        with _float32_region(device):  # precision= may still ask for autocast, inside
            Run(forward, [accumulator], device, step).add(batch)
        accumulator.flush()
        for (state, layer), name in self._state_names.items():
            setattr(self, name, accumulator.values[state][layer])
        self.num_images = self.num_images + len(pixels)  # not in place: the state may be an inference tensor
        self._interrupted = False

    def merge_state(self, incoming_state: dict[str, Any] | Metric) -> None:
        """Add the images of another metric (or its states, as a dict) to this one's, after this one's.

        Each state merges as its accumulator declares (:mod:`vdna.distributions.state`); a metric
        of other settings (extractor, weights, distribution, ranges or precision) is refused, and
        the next ``compute()`` reflects the merge.
        """
        if isinstance(incoming_state, DNAMetric):
            self._check_same_settings(incoming_state)
            states = incoming_state.metric_state
        elif isinstance(incoming_state, dict):
            states = incoming_state
        else:
            raise ValueError(f"merge_state takes a {type(self).__name__} or a dict of its states, "
                             f"got {type(incoming_state).__name__}")
        missing = sorted(set(self._defaults) - set(states))
        if missing:
            raise ValueError(f"the incoming state lacks {', '.join(missing)}")
        reductions = self._accumulator().reductions()
        for (state, layer), name in self._state_names.items():
            setattr(self, name, reductions[state][layer].merge(getattr(self, name), states[name]))
        self.num_images = self.num_images + states["num_images"]
        self._computed = None

    def _settings(self) -> dict[str, Any]:
        """What two metrics must share for their states to merge: the distribution, the extractor's weights and
        ranges, and every setting each image's activations depend on."""
        return {
            "distribution_name": self._config.distribution_name,
            **{name: getattr(self._config, name) for name in value_settings()},
            "weights_sha256": self.extractor.info.weights_sha256,
            "ranges_sha256": None if self._ranges is None else self._ranges.digest,
        }

    def _check_same_settings(self, other: DNAMetric) -> None:
        mine, theirs = self._settings(), other._settings()
        differing = [f"{name} ({_shown(name, mine[name])} vs {_shown(name, theirs[name])})"
                     for name in mine if mine[name] != theirs[name]]
        if differing:
            raise ValueError(f"cannot merge the states of metrics made with other settings: {'; '.join(differing)}")

    def _dna(self, num_images: int) -> DNAType:
        info = self.extractor.info
        provenance = run_provenance(
            self._config, SOURCE, info, self._ranges, self._dna_class, self._distribution_parameters, RunRecord(),
            device=self.device, workers=0, threads=torch.get_num_threads(), backend="metric",
            plan=ForwardPlan(forward_step(self._config, self.device, info.name, None)),  # None: each update's batch
        )
        accumulator = self._bound()
        accumulator.num_images = num_images
        return accumulator.result(info.name, provenance)

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
        state["_accumulators"], state["_forwards"] = {}, {}  # rebuilt where needed; copies and pickles need not carry them
        return state

    def _apply(self, fn: Callable, exclude_state: Any = "") -> DNAMetric:
        states = tuple(self._defaults)
        this = super()._apply(fn, exclude_state=states)  # dtypes stay: the states are exact sums
        device = this.device
        for name in states:
            this._defaults[name] = _on(this._defaults[name], device)
            setattr(this, name, _on(getattr(this, name), device))
        this._frozen = this._frozen.on(device)
        return this


def _shown(name: str, value: Any) -> str:
    """A setting's value as a message shows it: a digest by its first characters."""
    return f"{value[:12]}..." if name.endswith("sha256") and isinstance(value, str) else repr(value)


def _on(state: torch.Tensor | list[torch.Tensor], device: torch.device) -> torch.Tensor | list[torch.Tensor]:
    """A state (a tensor, or a list of them) on ``device``, its dtype kept."""
    return [part.to(device) for part in state] if isinstance(state, list) else state.to(device)


def _load_reference(reference: Any) -> VDNA:
    if isinstance(reference, VDNA):
        return reference
    if isinstance(reference, (str, os.PathLike)):
        return load_vdna_from_files(reference)
    raise TypeError(f"reference must be a VDNA or the path of a saved DNA, got {type(reference).__name__}")


class DNADistance(DNAMetric):
    """The distance of the images given to :meth:`update` to a reference DNA (a torchmetrics ``Metric``):
    ``compare(reference, images)``.

    ``reference``: a :class:`~vdna.VDNA` or the path of a saved DNA, e.g. the training set's;
    ``metric``: a registered distance (:func:`vdna.distances.list_distances`: ``"emd"`` between
    histogram DNAs, ``"nfd"`` between Gaussian DNAs, ``"fd"`` between layer-Gaussian DNAs, the
    metrics of per-image embeddings such as ``"kid"`` between ``image-mean`` DNAs, the reference
    in the role of the real images),
    computed as its record's ``compare`` does, with ``neurons`` (``{layer: indices or None}``; whole
    layers for ``"fd"``) and ``neuron_weights`` (one per compared neuron, or layer for ``"fd"``).
    The extractor and distribution default to the reference's; the other settings are
    :class:`DNAMetric`'s (``extractor_weights`` is the extractor's weights file). The reference's
    extractor, weights, layers, distribution and activation ranges must match the metric's.
    ``compute()`` returns a float64 scalar tensor; ``reset()`` forgets the images and keeps the reference.
    """

    plot_lower_bound = 0.0

    @property
    def higher_is_better(self) -> bool:  # type: ignore[override]
        """False for distances; True where larger means closer (precision, recall, ...)."""
        return not self._lower_is_closer

    def __init__(
        self,
        reference: VDNA | str | os.PathLike,
        metric: str = "emd",
        neurons: Mapping[str, Any] | None = None,
        neuron_weights: Any = None,
        *,
        feat_extractor_name: str | None = None,
        distribution_name: str | None = None,
        **options: Any,
    ):
        if "weights" in options:
            raise TypeError("weights= is ambiguous here: give neuron_weights= (one weight per compared neuron) or "
                            "extractor_weights= (the extractor's weights file)")
        reference = _load_reference(reference)
        distance = get_distance(metric)
        if not distance.compares(reference):
            raise ValueError(f"metric={metric!r} compares {' or '.join(distance.set_types)} DNAs; "
                             f"the reference DNA is {reference.type}")
        super().__init__(
            feat_extractor_name or reference.feature_extractor_name, distribution_name or reference.name, **options,
        )
        try:
            check_comparable(self._dna(0), reference)
        except ValueError as error:
            raise ValueError(f"the reference DNA does not match this metric's DNAs: {error}") from None
        self._lower_is_closer = distance.lower_is_closer
        self._distance = functools.partial(distance.compare, neurons=neurons, neuron_weights=neuron_weights)
        self._distance(reference, reference)  # a bad selection or bad weights fail here, not after an epoch
        self._reference = reference

    @property
    def reference(self) -> VDNA:
        """The DNA the images are compared with."""
        return self._reference

    def compute(self) -> torch.Tensor:
        """The distance (float64 scalar) of every image given to :meth:`update` since the last reset to the reference."""
        return torch.as_tensor(self._distance(self._reference, super().compute()), dtype=torch.float64)


__all__ = ["DNADistance", "DNAMetric", "batch_pixels", "shared_extractor"]
