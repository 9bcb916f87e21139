"""The run engine: every way of making DNAs repeats one step, written here once.

The step (:class:`Run`): a batch of decoded images goes through the extractor's forward pass and
into the accumulators; the images that could not be used meet one bad-image policy (raise, or skip
and record); progress advances per image; the record of images used and skipped becomes the DNA's
provenance (:func:`run_provenance`). The backends only decide where batches come from and where
accumulators are merged: :func:`make_dnas` reads a source with DataLoader workers, or in one-thread
streams on the CPU; :mod:`vdna.distributed` feeds Ray actors; :mod:`vdna.metrics` feeds tensors
from a training loop.

On the CPU each image goes through the network on its own (faster there than batching, and it
makes a DNA independent of the batch size and of the number of workers).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, IterableDataset
from tqdm.auto import tqdm

from ._files import writable_file
from .checkpoint import Checkpoint
from .config import RunConfig, declared, option, settings_of
from .distributions import Accumulator, DNAType, VDNAActivationRanges, parse_distribution
from .dna import VDNA, Provenance
from .extractors import Extractor, ExtractorInfo, check_ranges_match, resolve_device
from .fileformat import DATA_SETTINGS_011
from .kernels import compile_kernels, uncached_kernels
from .plans import ForwardPlan, resolve_plan
from .preprocess import ImageError, Preprocessor, decode_image
from .ranges import ActivationRanges, load_activation_ranges
from .sources import ImageCollection, ItemStream, open_source

logger = logging.getLogger(__name__)

_AUTOCAST = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}

Forward = Callable[[torch.Tensor], Mapping[str, torch.Tensor]]
Progress = Callable[[int], None]


def available_cores() -> int:
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# -- images in, batches out --------------------------------------------------------------------------
@dataclass
class Batch:
    """Preprocessed images of one step, and the images of that step that failed.

    ``images`` is ``None`` when none could be used, or when streams have used them already.
    ``positions`` are the images' positions in the whole run (used ones, then failed ones).
    """

    names: list[str]
    images: torch.Tensor | None
    failures: list[tuple[str, str]]
    positions: list[int]


def prepare_image(raw: Any, name: str, position: int, preprocessor: Preprocessor, max_pixels: int) -> tuple:
    """``(position, name, network input, None)``, or ``(position, name, None, reason)`` if the image cannot be used."""
    try:
        return position, name, preprocessor(decode_image(raw, name, max_pixels), position), None
    except ImageError as error:
        return position, name, None, error.reason
    except Exception as error:  # a failure to read an item is reported with its name
        return position, name, None, f"{type(error).__name__}: {error}"


def load_item(collection: ImageCollection, index: int, position: int) -> tuple:
    """``(position, name, raw item, None)``, or ``(position, name, None, reason)`` if it cannot be read."""
    name = collection.names[index]
    try:
        return position, name, collection.load(index), None
    except Exception as error:
        return position, name, None, f"cannot be read ({type(error).__name__}: {error})"


def collate(samples: list[tuple], keep_images: bool = True) -> Batch:
    """A :class:`Batch` of ``(position, name, image, reason it failed or None)`` samples, in their order."""
    good = [sample for sample in samples if sample[3] is None]
    bad = [sample for sample in samples if sample[3] is not None]
    return Batch(
        names=[name for _, name, _, _ in good],
        images=torch.stack([image for _, _, image, _ in good]) if good and keep_images else None,
        failures=[(name, reason) for _, name, _, reason in bad],
        positions=[position for position, _, _, _ in good + bad],
    )


class _CollectionImages(Dataset):
    def __init__(self, collection: ImageCollection, preprocessor: Preprocessor, max_pixels: int, positions: list[int]):
        self.collection, self.preprocessor, self.max_pixels, self.positions = collection, preprocessor, max_pixels, positions

    def __len__(self) -> int:
        return len(self.collection)

    def __getitem__(self, index: int) -> tuple:
        position, name, raw, reason = load_item(self.collection, index, self.positions[index])
        return (position, name, None, reason) if reason else prepare_image(raw, name, position, self.preprocessor, self.max_pixels)


class _StreamImages(IterableDataset):
    def __init__(self, stream: ItemStream, preprocessor: Preprocessor, max_pixels: int):
        self.stream, self.preprocessor, self.max_pixels = stream, preprocessor, max_pixels

    def __iter__(self) -> Iterator[tuple]:
        for index, (name, raw) in enumerate(self.stream):
            yield prepare_image(raw, name, index, self.preprocessor, self.max_pixels)


def image_loader(
    source: ImageCollection | ItemStream,
    preprocessor: Preprocessor,
    batch_size: int,
    num_workers: int,
    pin_memory: bool,
    max_pixels: int,
    positions: list[int],
) -> DataLoader:
    """A DataLoader of :class:`Batch` es decoded by ``num_workers`` processes; streams of unknown length are read here.

    ``positions`` give each image of ``source`` its position in the whole run (it seeds random crops).
    """
    if isinstance(source, ItemStream):
        dataset: Dataset = _StreamImages(source, preprocessor, max_pixels)
        num_workers = 0
    else:
        dataset = _CollectionImages(source, preprocessor, max_pixels, positions)
        num_workers = min(num_workers, len(source))
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate, pin_memory=pin_memory
    )


def raw_batches(source: ImageCollection | ItemStream, batch_size: int, positions: list[int]) -> Iterator[list[tuple]]:
    """Lists of up to ``batch_size`` ``(position, name, raw item, reason it cannot be read or None)``, read in turn."""
    if isinstance(source, ItemStream):
        items = ((index, name, raw, None) for index, (name, raw) in enumerate(source))
    else:
        items = (load_item(source, index, positions[index]) for index in range(len(source)))
    while batch := list(itertools.islice(items, batch_size)):
        yield batch


# -- the step -------------------------------------------------------------------------------------------
def forward_function(extractor: Extractor, device: torch.device, config: RunConfig) -> Forward:
    """The extractor's forward pass as ``config`` runs it: optionally compiled and under autocast (both change
    results slightly). Every backend (local, streams, Ray, training-loop metric) runs the network through this."""
    network = torch.compile(extractor) if config.compile else extractor
    if config.channels_last:
        network = functools.partial(_channels_last, network)
    dtype = _AUTOCAST[config.precision]
    if dtype is None:
        return network

    def forward(images: torch.Tensor) -> Mapping[str, torch.Tensor]:
        with torch.autocast(device.type, dtype=dtype):
            return network(images)

    return forward


def _channels_last(network: Forward, images: torch.Tensor) -> Mapping[str, torch.Tensor]:
    return network(images.contiguous(memory_format=torch.channels_last))


def forward_step(config: RunConfig, device: torch.device, extractor: str, batch: int | None) -> int | None:
    """Images per forward pass without streams: the plan's on the CPU; on CUDA ``forward_batch_size``, else ``batch``
    (None: each batch as it comes)."""
    if device.type == "cpu":
        return resolve_plan(config, extractor, device, available_cores()).forward_batch_size
    return config.forward_batch_size or batch


@dataclass
class RunRecord:
    """What a run used and skipped: image names, ``{"name", "reason"}`` entries and the positions done."""

    used: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    done: list[int] = field(default_factory=list)


class Tracker(Protocol):
    """Something a run feeds besides its DNAs, that keeps images by their positions in the run (e.g. where neurons fire most).

    Like an accumulator it starts ``fresh()`` for a stream and ``merge`` s another's images; it is
    fed each batch's activations with the positions of its images.
    """

    def update(self, activations: Mapping[str, torch.Tensor], positions: Sequence[int]) -> None: ...

    def fresh(self) -> Tracker: ...

    def merge(self, other: Tracker) -> None: ...


class Run:
    """The step every backend repeats: images through the forward pass into the accumulators, bad images by policy.

    ``on_error="raise"`` raises :class:`~vdna.ImageError` for the first image that cannot be used;
    ``"skip"`` records it in :attr:`record`. ``progress`` is called with the number of images done,
    image by image on the CPU. ``trackers`` are fed the same activations, with the images' positions.
    """

    def __init__(
        self,
        forward: Forward,
        accumulators: Sequence[Accumulator],
        device: torch.device,
        forward_batch_size: int = 1,
        on_error: str = "raise",
        progress: Progress | None = None,
        record: RunRecord | None = None,
        trackers: Sequence[Tracker] = (),
    ):
        self.forward = forward
        self.accumulators = list(accumulators)
        self.device = device
        self.forward_batch_size = forward_batch_size
        self.on_error = on_error
        self.progress = progress or (lambda done: None)
        self.record = record or RunRecord()
        self.trackers = list(trackers)

    def fork(self, forward: Forward) -> Run:
        """A run with the same settings on another forward pass, into fresh accumulators and trackers (for a stream)."""
        return Run(
            forward, [accumulator.fresh() for accumulator in self.accumulators], self.device, self.forward_batch_size,
            self.on_error, self.progress, trackers=[tracker.fresh() for tracker in self.trackers],
        )

    def add_images(self, images: torch.Tensor, positions: Sequence[int] | None = None) -> None:
        """Run network inputs ``(N, 3, H, W)`` through the network into every accumulator and tracker.

        ``positions``: the images' positions in the run, which trackers need.
        """
        if self.trackers and (positions is None or len(positions) != images.shape[0]):
            raise ValueError(f"trackers need the positions of the {images.shape[0]} images in the run, got {positions!r}")
        done = 0
        with torch.inference_mode():
            for chunk in images.to(self.device, non_blocking=True).split(self.forward_batch_size):
                activations = self._forward_whole(chunk)
                for accumulator in self.accumulators:
                    accumulator.update(activations)
                for tracker in self.trackers:
                    tracker.update(activations, positions[done : done + chunk.shape[0]])
                done += chunk.shape[0]
                self.progress(chunk.shape[0])

    def _forward_whole(self, images: torch.Tensor) -> Mapping[str, torch.Tensor]:
        """The activations of ``images`` from a forward pass of exactly ``forward_batch_size`` images.

        A shorter chunk (a batch's last) is padded with blank images whose outputs are dropped, so
        every image goes through the same computation whatever the batches and the number of images.
        """
        count = images.shape[0]
        if count == self.forward_batch_size:
            return self.forward(images)
        padding = images.new_zeros((self.forward_batch_size - count, *images.shape[1:]))
        activations = self.forward(torch.cat([images, padding]))
        return {layer: values[:count] for layer, values in activations.items()}

    def add(self, batch: Batch) -> None:
        """One batch: its failures meet the policy, its images go through the network, and it is recorded."""
        for name, reason in batch.failures:
            if self.on_error == "raise":
                raise ImageError(name, reason)
            logger.info("skipped %s: %s", name, reason)
            self.record.skipped.append({"name": name, "reason": reason})
        if batch.images is not None:
            self.add_images(batch.images, batch.positions[: len(batch.names)])
        if batch.failures:
            self.progress(len(batch.failures))
        self.record.used.extend(batch.names)
        self.record.done.extend(batch.positions)

    def merge(self, other: Run) -> None:
        """Add the accumulators and trackers of a fork into this run's."""
        for mine, theirs in zip(self.accumulators + self.trackers, other.accumulators + other.trackers):
            mine.merge(theirs)


# -- backends ---------------------------------------------------------------------------------------------
def run_loader(run: Run, loader: Iterable[Batch], after_batch: Callable[[], None]) -> None:
    """Every batch of ``loader`` through ``run``."""
    for batch in loader:
        run.add(batch)
        after_batch()


@contextlib.contextmanager
def one_thread_streams(streams: int) -> Iterator[Callable[[Callable[[int], Any]], list]]:
    """A runner calling ``work(stream)`` for every stream at once, each in its own thread.

    torch runs on one thread meanwhile (each stream is one thread), and gets its thread count back.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(streams, thread_name_prefix="vdna-stream") as pool:
            yield lambda work: list(pool.map(work, range(streams)))
    finally:
        torch.set_num_threads(threads)


class _ShrinkingChunks:
    """A batch's items handed out to streams a chunk at a time: half of an even share of what is left."""

    def __init__(self, items: list[tuple], streams: int):
        self._items, self._streams, self._taken = items, streams, 0
        self._lock = threading.Lock()

    def take(self) -> list[tuple]:
        """The next chunk (empty once every item is taken)."""
        with self._lock:
            left = len(self._items) - self._taken
            size = max(1, -(-left // (2 * self._streams)))
            chunk = self._items[self._taken : self._taken + size]
            self._taken += len(chunk)
        return chunk


class _InOrder:
    """A batch's items handed out one at a time; each image's part of the run's distributions is merged in item order.

    An item is handed out only within ``window`` items of the next to merge, which bounds the parts
    waiting. Merging in order makes distributions whose merges round (Gaussians) or keep the images'
    order (per-image DNAs) the same as one stream's, bit for bit.
    """

    def __init__(self, items: list[tuple], into: list[Accumulator], window: int):
        self._items, self._into, self._window = items, into, window
        self._taken = self._next = 0
        self._parts: dict[int, list[Accumulator]] = {}
        self._turn = threading.Condition()
        self._stopped = False

    def take(self) -> tuple[int, tuple] | None:
        """The next item and its index (None once every item is taken, or once a stream has failed)."""
        with self._turn:
            index = self._taken
            if index == len(self._items) or self._stopped:
                return None
            self._taken += 1
            self._turn.wait_for(lambda: self._stopped or index < self._next + self._window)
            return None if self._stopped else (index, self._items[index])

    def put(self, index: int, parts: list[Accumulator]) -> None:
        """An item's parts (none for an image that could not be used), merged once every earlier item's are."""
        with self._turn:
            self._parts[index] = parts
            while self._next in self._parts:
                for accumulator, part in zip(self._into, self._parts.pop(self._next)):
                    accumulator.merge(part)
                self._next += 1
            self._turn.notify_all()

    def stop(self) -> None:
        """A stream failed: hand out nothing more, and wake the streams waiting for their turn."""
        with self._turn:
            self._stopped = True
            self._turn.notify_all()


def run_streams(
    run: Run,
    streams: Sequence[Run],
    batches: Iterable[list[tuple]],
    preprocessor: Preprocessor,
    max_pixels: int,
    after_batch: Callable[[], None],
) -> None:
    """Each batch's images shared among one-thread streams (CPU): ``streams`` are ``run`` or forks of it.

    ``batches`` are :func:`raw_batches`; each stream decodes and preprocesses its images (the
    decoder's data is still in the cache), then runs them one at a time. Distributions whose parts
    add up exactly in any order (histograms, ranges) stay in each stream until the end, and streams
    take a batch's images in chunks that shrink as the batch runs out (so they finish it together).
    Any other distribution is merged image by image in the images' order (:class:`_InOrder`), and
    ``run`` itself then runs no image. The batch's failures and record go through ``run``, between
    batches, when no stream is running; the forks are merged into it at the end.
    """
    in_order = [index for index, accumulator in enumerate(run.accumulators) if not accumulator.dna_class.exact_merge]

    def prepared(item: tuple) -> tuple:
        position, name, raw, reason = item
        return (position, name, None, reason) if reason is not None else prepare_image(raw, name, position, preprocessor, max_pixels)

    def chunks_work(stream: int, chunks: _ShrinkingChunks) -> list[tuple]:
        outcomes: list[tuple] = []
        while chunk := chunks.take():
            ready = [prepared(item) for item in chunk]
            for position, _, image, _ in ready:
                if image is not None:
                    streams[stream].add_images(image[None], [position])
            outcomes.extend((position, name, None, reason) for position, name, _, reason in ready)  # images let go
        return outcomes

    def ordered_work(stream: int, order: _InOrder) -> list[tuple]:
        outcomes: list[tuple] = []
        try:
            while (taken := order.take()) is not None:
                index, item = taken
                position, name, image, reason = prepared(item)
                parts = []
                if image is not None:
                    streams[stream].add_images(image[None], [position])
                    parts = [streams[stream].accumulators[k].take() for k in in_order]
                order.put(index, parts)
                outcomes.append((position, name, None, reason))
        except BaseException:
            order.stop()
            raise
        return outcomes

    with one_thread_streams(len(streams)) as each_stream:
        for items in batches:
            if in_order:
                into = [run.accumulators[k] for k in in_order]
                work = functools.partial(ordered_work, order=_InOrder(items, into, 2 * len(streams)))
            else:
                work = functools.partial(chunks_work, chunks=_ShrinkingChunks(items, len(streams)))
            outcomes = sorted(itertools.chain.from_iterable(each_stream(work)))
            run.add(collate(outcomes, keep_images=False))
            after_batch()
    for fork in streams:
        if fork is not run:
            run.merge(fork)


# -- what a run needs and what it records -----------------------------------------------------------------
def resolve_ranges(activation_ranges: Any, extractor: Extractor) -> ActivationRanges | None:
    """The ranges a histogram uses: the given ones (file, object or activation-ranges DNA), else the extractor's."""
    if activation_ranges is None:
        return extractor.info.ranges
    if isinstance(activation_ranges, VDNAActivationRanges):
        ranges = activation_ranges.to_ranges()
    elif isinstance(activation_ranges, ActivationRanges):
        ranges = activation_ranges
    elif isinstance(activation_ranges, (str, os.PathLike)):
        ranges = load_activation_ranges(activation_ranges, extractor.info.name)
    else:
        raise TypeError(
            f"activation ranges must be a path, ActivationRanges or an activation-ranges VDNA, "
            f"got {type(activation_ranges).__name__}"
        )
    check_ranges_match(ranges, extractor.info)
    return ranges


def describe_source(source: Any) -> str:
    """A short description of a source for metadata and messages."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, (list, tuple)):
        return f"list of {len(source)} items"
    return type(source).__name__


def run_provenance(
    config: RunConfig,
    source: Any,
    info: ExtractorInfo,
    ranges: ActivationRanges | None,
    dna_class: type[DNAType],
    parameters: dict[str, Any],
    record: RunRecord,
    *,
    device: torch.device,
    workers: int,
    threads: int,
    plan: ForwardPlan,
    backend: str = "local",
) -> Provenance:
    """What a DNA records about how it was made: vdna 0.1.1's settings, every setting of ``config``, what the run resolved.

    ``threads``: torch's intra-op threads on the CPU, recorded because CPU convolutions round
    differently with different thread counts. ``plan``: the forward passes the run made.
    """
    return Provenance(
        weights_sha256=info.weights_sha256,
        ranges_sha256=ranges.digest if ranges is not None else None,
        images=list(record.used),
        skipped=list(record.skipped),
        data_settings={
            "source": describe_source(source),
            "crop_to_square_pre_resize": config.crop_to_square_pre_resize,
            "resize_mode": "clean",
            "shuffle_files": config.shuffle_files,
            "num_images": config.num_images,
        },
        extraction_settings={
            **{name: value for name, value in settings_of(config).items() if name not in DATA_SETTINGS_011},
            **dna_class.extraction_flags,
            "range_scale_for_norm_params": 1 + ranges.margin if ranges is not None else 1.2,
            "hist_range": [-1.0, 1.0],
            "hist_nb_bins": parameters.get("bins", 0),
            "num_workers": workers,
            "batch_size": config.batch_size,
            "device": str(device),
            "verbose": config.verbose,
            "n_sample_images": config.n_sample_images,
            "seed": config.seed,
            "margin_mode": ranges.margin_mode if ranges is not None else None,
            "input_size": list(info.input_size),
            "mean": list(info.mean),
            "std": list(info.std),
            "weights_source": info.weights_source,
            "precision": config.precision,
            "compile": config.compile,
            "torch_threads": threads,
            "forward_batch_size": plan.forward_batch_size,
            "streams": plan.streams,
            "backend": backend,
        },
    )


def _checkpoint(config: RunConfig, source: Any, collection: Any, extractor: Extractor, ranges, threads: int, device) -> Checkpoint:
    if not isinstance(collection, ImageCollection):
        raise ValueError("checkpoints need a source of known length; this iterable has none")
    try:
        writable_file(config.checkpoint)
    except ValueError as error:
        raise ValueError(f"{option('checkpoint')}: {error}") from None
    identity = {
        **{item.name: getattr(config, item.name) for item, setting in declared(RunConfig) if setting.identity},
        "source": describe_source(source),
        "images_sha256": hashlib.sha256("\n".join(collection.names).encode("utf-8", "surrogateescape")).hexdigest(),
        "images": len(collection),
        "weights_sha256": extractor.info.weights_sha256,
        "ranges_sha256": ranges.digest if ranges is not None else None,
        "torch_threads": threads if device.type == "cpu" else None,  # CPU convolutions round by thread count
    }
    return Checkpoint(config.checkpoint, identity)


class _PeriodicCheckpoint:
    """Saves a run's state (the images of all its accumulators) each time ``every`` more images are done."""

    def __init__(self, store: Checkpoint, streams: list[Run], every: int):
        self.store, self.streams = store, streams
        self.every, self.saved_at = every, len(streams[0].record.done)

    def __call__(self) -> None:
        record = self.streams[0].record
        if len(record.done) - self.saved_at >= self.every:
            parts = [stream.accumulators[0] for stream in self.streams]
            state = parts[0]
            if len(parts) > 1:
                state = parts[0].fresh()
                for part in parts:
                    state.merge(part)
            self.store.save(state, record.used, record.skipped, record.done)
            self.saved_at = len(record.done)


def _save_sample_images(folder: str | os.PathLike, collection: ImageCollection | ItemStream, preprocessor: Preprocessor, count: int, seed: int) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(collection, ItemStream):
        chosen = [(index, name, raw) for index, (name, raw) in zip(range(count), collection)]
    else:
        indices = random.Random(seed).sample(range(len(collection)), min(count, len(collection)))
        chosen = [(index, collection.names[index], collection.load(index)) for index in indices]
    for number, (index, name, raw) in enumerate(chosen):
        try:
            pixels = preprocessor.resized(decode_image(raw, name), index)
        except ImageError as error:
            logger.warning("sample image %s not saved: %s", name, error.reason)
            continue
        Image.fromarray(np.rint(pixels).astype(np.uint8)).save(folder / f"{number}.png")


def _compile_phase(verbose: bool) -> None:
    """Compile the kernels a run calls where their on-disk cache is missing (a first run), as a phase of its own."""
    if not uncached_kernels():
        return
    started = time.perf_counter()
    with tqdm(total=1, desc="compiling kernels, once", unit="step", disable=not verbose) as bar:
        compile_kernels()
        bar.update(1)
    logger.info("kernels compiled in %.1f s, cached for later runs", time.perf_counter() - started)


ExtractorSource = Callable[[int], list[Extractor]]
"""``extractors(count)``: the run's extractor first, then ``count - 1`` more that streams may run at once."""


def run_preprocessor(info: ExtractorInfo, config: RunConfig) -> Preprocessor:
    """What a run of ``config`` does to each image before the network of ``info``."""
    return Preprocessor(info.input_size, info.mean, info.std, config.crop_to_square_pre_resize, config.seed)


def make_dnas(
    source: Any,
    config: RunConfig,
    extractors: ExtractorSource,
    distributions: Sequence[str] | None = None,
    trackers: Sequence[Tracker] = (),
    ranges: ActivationRanges | VDNAActivationRanges | None = None,
) -> list[VDNA]:
    """The DNAs of the images of ``source`` made in one pass, one per distribution name (``config``'s by default).

    ``trackers`` are fed the same pass (they are filled in place); with trackers, ``distributions``
    may be empty, and the pass makes no DNA. ``ranges``: activation ranges held in memory, used
    instead of ``config.activation_ranges``.
    """
    names = list(distributions) if distributions is not None else [config.distribution_name]
    if not names and not trackers:
        raise ValueError("at least one distribution is needed")
    kinds = [parse_distribution(name) for name in names]
    device = resolve_device(config.device)
    if (config.streams or 1) > 1 and device.type != "cpu":
        raise ValueError(f"{option('streams')} run the network on CPU threads; the device is {device}")
    if (config.streams or 1) > 1 and (config.forward_batch_size or 1) > 1:
        raise ValueError(f"{option('streams')} run images one at a time; {option('forward_batch_size')} does not apply")
    if config.checkpoint is not None and (len(names) != 1 or trackers):
        raise ValueError(f"{option('checkpoint')} saves the state of one DNA; make one distribution at a time to checkpoint")
    extractor = extractors(1)[0]
    plan = resolve_plan(config, extractor.info.name, device, available_cores())
    streams = plan.streams
    forward = forward_function(extractor, device, config)
    needed = any(c.needs_ranges for c, _ in kinds)
    ranges = resolve_ranges(config.activation_ranges if ranges is None else ranges, extractor) if needed else None
    layers = extractor.info.layers
    accumulators = [dna_class.accumulator(parameters, layers, ranges, device) for dna_class, parameters in kinds]
    collection = open_source(source, config.num_images, config.shuffle_files, config.seed)
    if config.save_sample_images is not None and isinstance(collection, ItemStream) and iter(source) is source:
        raise ValueError("save_sample_images needs a source that can be read twice; this iterator can be read once")
    info = extractor.info
    preprocessor = run_preprocessor(info, config)
    workers = available_cores() if config.num_workers is None else config.num_workers
    threads = 1 if streams > 1 else torch.get_num_threads()
    total = len(collection) if isinstance(collection, ImageCollection) else None
    record, todo, positions = RunRecord(), collection, list(range(total or 0))
    store = _checkpoint(config, source, collection, extractor, ranges, threads, device) if config.checkpoint else None
    if store is not None:
        state = store.load()
        if state is not None:
            accumulators[0].load_state_tensors(state.tensors, state.num_images)
            record = RunRecord(state.used, state.skipped, state.done)
            finished = set(state.done)
            positions = [i for i in range(len(collection)) if i not in finished]
            todo = collection.subset(positions)
    _compile_phase(config.verbose)
    description = f"{'DNA ' + ', '.join(names) if names else 'neuron maxima'} ({plan})"
    with tqdm(total=total, initial=len(record.done), unit="img", desc=description, disable=not config.verbose) as bar:
        lock = threading.Lock()

        def progress(done: int) -> None:
            with lock:
                bar.update(done)

        run = Run(forward, accumulators, device, plan.forward_batch_size, config.on_error, progress, record, trackers)
        runners = [run]
        if streams > 1:
            copies = [extractor] * (streams - 1) if extractor.concurrent_calls and not config.compile else extractors(streams)[1:]
            runners += [run.fork(forward_function(copy, device, config)) for copy in copies]
            if not all(dna_class.exact_merge for dna_class, _ in kinds):
                runners[0] = run.fork(forward)  # the run merges each image's parts in order: it runs none itself
        parts = [run] + [runner for runner in runners if runner is not run]
        saver = _PeriodicCheckpoint(store, parts, config.checkpoint_every) if store is not None else lambda: None
        if streams > 1:
            run_streams(run, runners, raw_batches(todo, config.batch_size, positions), preprocessor, config.max_image_pixels, saver)
        else:
            loader = image_loader(
                todo, preprocessor, config.batch_size, workers, device.type == "cuda", config.max_image_pixels, positions
            )
            run_loader(run, loader, saver)
    if not record.used:
        raise ValueError(f"none of the {len(record.skipped)} images of {describe_source(source)} could be used")
    dnas = [
        accumulator.result(info.name, run_provenance(
            config, source, info, ranges if dna_class.needs_ranges else None, dna_class, parameters, record,
            device=device, workers=workers if streams == 1 else 0, threads=threads, plan=plan,
        ))
        for accumulator, (dna_class, parameters) in zip(accumulators, kinds)
    ]
    if store is not None:
        store.remove()
    if config.save_sample_images is not None and config.n_sample_images > 0:
        _save_sample_images(
            config.save_sample_images, open_source(source, config.num_images, config.shuffle_files, config.seed),
            preprocessor, config.n_sample_images, config.seed,
        )
    return dnas


__all__ = [
    "Batch",
    "Run",
    "RunRecord",
    "Tracker",
    "collate",
    "describe_source",
    "forward_function",
    "image_loader",
    "load_item",
    "make_dnas",
    "one_thread_streams",
    "prepare_image",
    "raw_batches",
    "resolve_ranges",
    "run_loader",
    "run_preprocessor",
    "run_provenance",
    "run_streams",
]
