"""Making DNAs: images flow from a source through preprocessing and the extractor into an accumulator.

Decoding and resizing run in DataLoader worker processes; the network and the accumulator run in
the main process under ``torch.inference_mode``, one layer's activations at a time, and nothing is
kept per image (histograms gather the activations of a few images, a fixed amount of memory, to
bin them in one pass). On the CPU each image goes through the network on its own (faster there than
batching, and it makes a DNA independent of the batch size and of the number of workers).
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
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, IterableDataset
from tqdm.auto import tqdm

from .checkpoint import Checkpoint
from .distributions import Accumulator, VDNAActivationRanges, parse_distribution
from .dna import VDNA, Provenance, merge_vdnas
from .extractors import DEFAULT_EXTRACTOR, Extractor, check_ranges_match, create_extractor, resolve_device
from .preprocess import DEFAULT_MAX_IMAGE_PIXELS, ImageError, Preprocessor, decode_image
from .ranges import ActivationRanges, load_activation_ranges
from .sources import ImageCollection, ItemStream, open_source

logger = logging.getLogger(__name__)

ON_ERROR = ("raise", "skip")
PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def available_cores() -> int:
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@dataclass
class Batch:
    """Preprocessed images of one loader step, and the images of that step that failed.

    ``images`` is ``None`` when none could be used, or when streams have used them already.
    ``positions`` are the images' positions in the whole run (used ones, then failed ones).
    """

    names: list[str]
    images: torch.Tensor | None
    failures: list[tuple[str, str]]
    positions: list[int]


def _prepare(raw: Any, name: str, position: int, preprocessor: Preprocessor, max_pixels: int) -> tuple:
    try:
        return position, name, preprocessor(decode_image(raw, name, max_pixels), position), None
    except ImageError as error:
        return position, name, None, error.reason
    except Exception as error:  # a failure to read an item is reported with its name
        return position, name, None, f"{type(error).__name__}: {error}"


class _CollectionImages(Dataset):
    def __init__(
        self, collection: ImageCollection, preprocessor: Preprocessor, max_pixels: int, positions: list[int] | None = None
    ):
        self.collection = collection
        self.preprocessor = preprocessor
        self.max_pixels = max_pixels
        self.positions = list(range(len(collection))) if positions is None else positions

    def __len__(self) -> int:
        return len(self.collection)

    def __getitem__(self, index: int) -> tuple:
        position, name, raw, reason = _load(self.collection, index, self.positions[index])
        return (position, name, None, reason) if reason else _prepare(raw, name, position, self.preprocessor, self.max_pixels)


def _load(collection: ImageCollection, index: int, position: int) -> tuple:
    """``(position, name, raw item, None)``, or ``(position, name, None, reason)`` if it cannot be read."""
    name = collection.names[index]
    try:
        return position, name, collection.load(index), None
    except Exception as error:
        return position, name, None, f"cannot be read ({type(error).__name__}: {error})"


def raw_batches(
    source: ImageCollection | ItemStream, batch_size: int, positions: list[int] | None = None
) -> Iterator[list[tuple]]:
    """Lists of up to ``batch_size`` ``(position, name, raw item, reason it cannot be read or None)``, read in turn."""
    if isinstance(source, ItemStream):
        items = ((index, name, raw, None) for index, (name, raw) in enumerate(source))
    else:
        where = list(range(len(source))) if positions is None else positions
        items = (_load(source, index, where[index]) for index in range(len(source)))
    while batch := list(itertools.islice(items, batch_size)):
        yield batch


class _StreamImages(IterableDataset):
    def __init__(self, stream: ItemStream, preprocessor: Preprocessor, max_pixels: int):
        self.stream = stream
        self.preprocessor = preprocessor
        self.max_pixels = max_pixels

    def __iter__(self) -> Iterator[tuple]:
        for index, (name, raw) in enumerate(self.stream):
            yield _prepare(raw, name, index, self.preprocessor, self.max_pixels)


def _collate(samples: list[tuple], keep_images: bool = True) -> Batch:
    """A :class:`Batch` of ``(position, name, image, reason it failed or None)`` samples, in their order."""
    good = [sample for sample in samples if sample[3] is None]
    bad = [sample for sample in samples if sample[3] is not None]
    return Batch(
        names=[name for _, name, _, _ in good],
        images=torch.stack([image for _, _, image, _ in good]) if good and keep_images else None,
        failures=[(name, reason) for _, name, _, reason in bad],
        positions=[position for position, _, _, _ in good + bad],
    )


def image_loader(
    source: ImageCollection | ItemStream,
    preprocessor: Preprocessor,
    batch_size: int,
    num_workers: int,
    pin_memory: bool = False,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    positions: list[int] | None = None,
) -> DataLoader:
    """A DataLoader of :class:`Batch` es; streams of unknown length are read in the main process.

    ``positions`` give each image of ``source`` its position in the whole run (it seeds random
    crops), when ``source`` holds only part of it.
    """
    if isinstance(source, ItemStream):
        dataset: Dataset = _StreamImages(source, preprocessor, max_pixels)
        num_workers = 0
    else:
        dataset = _CollectionImages(source, preprocessor, max_pixels, positions)
        num_workers = min(num_workers, len(source))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_collate,
        pin_memory=pin_memory,
    )


@dataclass
class ExtractionReport:
    """What a run used and what it skipped."""

    used: list[str]
    skipped: list[dict[str, str]]
    done: list[int]


def forward_function(
    extractor: Extractor, device: torch.device, precision: str = "float32", compile: bool = False
) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
    """The extractor's forward pass, optionally compiled and under autocast (both change results slightly)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {tuple(PRECISIONS)}, got {precision!r}")
    network = torch.compile(extractor) if compile else extractor
    dtype = PRECISIONS[precision]
    if dtype is None:
        return network

    def forward(images: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.autocast(device.type, dtype=dtype):
            return network(images)

    return forward


def extract(
    extractor: Callable[[torch.Tensor], dict[str, torch.Tensor]],
    accumulator: Accumulator,
    loader: DataLoader,
    device: torch.device,
    forward_batch_size: int,
    on_error: str = "raise",
    progress: Callable[[int], None] | None = None,
    report: ExtractionReport | None = None,
    after_batch: Callable[[ExtractionReport], None] | None = None,
) -> ExtractionReport:
    """Run every image of ``loader`` through ``extractor`` (an extractor or its forward function) into ``accumulator``.

    ``report`` continues an earlier run's; ``after_batch`` is called with the report after each batch.
    """
    report = report or ExtractionReport([], [], [])
    with torch.inference_mode():
        for batch in loader:
            _record_failures(batch.failures, on_error, report)
            if batch.images is not None:
                images = batch.images.to(device, non_blocking=True)
                for chunk in images.split(forward_batch_size):
                    accumulator.update(extractor(chunk))
            _record_batch(batch, report, progress, after_batch)
    return report


@contextlib.contextmanager
def one_thread_streams(streams: int) -> Iterator[Callable[[Callable[[int], None]], None]]:
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


def extract_in_streams(
    extractors: list[Callable[[torch.Tensor], dict[str, torch.Tensor]]],
    accumulators: list[Accumulator],
    batches: Iterable[list[tuple]],
    preprocessor: Preprocessor,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    on_error: str = "raise",
    progress: Callable[[int], None] | None = None,
    report: ExtractionReport | None = None,
    after_batch: Callable[[ExtractionReport], None] | None = None,
) -> ExtractionReport:
    """Like :func:`extract` on the CPU, with each batch's images shared among one-thread streams.

    ``batches`` are :func:`raw_batches`. Streams take a batch's images in chunks that shrink as
    the batch runs out (:class:`_ShrinkingChunks`), decode and preprocess a chunk, then run their
    own extractor on its images, one at a time, into their own accumulator; the accumulators are
    then merged into the first. (Decoding a chunk in one go, rather than between forward passes,
    finds the decoder's data still in the cache; small last chunks let the streams finish a batch
    together.) ``after_batch`` is called between batches, when no stream is running.
    """
    report = ExtractionReport([], [], []) if report is None else report
    streams = len(extractors)

    def run(stream: int, chunks: _ShrinkingChunks) -> list[tuple]:
        samples: list[tuple] = []
        with torch.inference_mode():
            while chunk := chunks.take():
                prepared = [
                    (position, name, None, reason) if reason is not None else _prepare(raw, name, position, preprocessor, max_pixels)
                    for position, name, raw, reason in chunk
                ]
                for _, _, image, _ in prepared:
                    if image is not None:
                        accumulators[stream].update(extractors[stream](image[None]))
                samples.extend((position, name, None, reason) for position, name, _, reason in prepared)  # images let go
        return samples

    with one_thread_streams(streams) as run_streams:
        for items in batches:
            chunks = _ShrinkingChunks(items, streams)
            samples = sorted(itertools.chain.from_iterable(run_streams(functools.partial(run, chunks=chunks))))
            batch = _collate(samples, keep_images=False)
            _record_failures(batch.failures, on_error, report)
            _record_batch(batch, report, progress, after_batch)
    for part in accumulators[1:]:
        accumulators[0].merge(part)
    return report


def _record_failures(failures: list[tuple[str, str]], on_error: str, report: ExtractionReport) -> None:
    for name, reason in failures:
        if on_error == "raise":
            raise ImageError(name, reason)
        logger.info("skipped %s: %s", name, reason)
        report.skipped.append({"name": name, "reason": reason})


def _record_batch(
    batch: Batch,
    report: ExtractionReport,
    progress: Callable[[int], None] | None,
    after_batch: Callable[[ExtractionReport], None] | None,
) -> None:
    report.used.extend(batch.names)
    report.done.extend(batch.positions)
    if progress is not None:
        progress(len(batch.names) + len(batch.failures))
    if after_batch is not None:
        after_batch(report)


class _PeriodicCheckpoint:
    """Saves a run's state (the images of all its accumulators) each time ``every`` more images are done."""

    def __init__(self, store: Checkpoint, accumulators: list[Accumulator], extractor_name: str, every: int, done: int):
        self.store, self.accumulators, self.extractor_name = store, accumulators, extractor_name
        self.every, self.saved_at = every, done

    def __call__(self, report: ExtractionReport) -> None:
        if len(report.done) - self.saved_at >= self.every:
            partial = merge_vdnas([part.result(self.extractor_name) for part in self.accumulators])
            self.store.save(partial, report.used, report.skipped, report.done)
            self.saved_at = len(report.done)


def resolve_ranges(
    activation_ranges: str | os.PathLike | ActivationRanges | VDNA | None, extractor: Extractor
) -> ActivationRanges | None:
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
            f"activation_ranges must be a path, ActivationRanges or an activation-ranges VDNA, "
            f"got {type(activation_ranges).__name__}"
        )
    check_ranges_match(ranges, extractor.info)
    return ranges


def _describe_source(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, (list, tuple)):
        return f"list of {len(source)} items"
    return type(source).__name__


def _save_sample_images(
    folder: str | os.PathLike, collection: ImageCollection | ItemStream, preprocessor: Preprocessor, count: int, seed: int
) -> None:
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


def run_provenance(
    info: Any,
    ranges: ActivationRanges | None,
    parameters: dict[str, Any],
    used: list[str],
    skipped: list[dict[str, str]],
    *,
    source: Any,
    crop: str,
    shuffle_files: bool,
    num_images: int,
    workers: int,
    batch_size: int,
    device: torch.device,
    verbose: bool,
    n_sample_images: int,
    seed: int,
    precision: str,
    compile: bool,
    threads: int | None = None,
    streams: int = 1,
) -> Provenance:
    """What a DNA records about how it was made (vdna 0.1.1's settings, then ours).

    ``threads``: torch's intra-op threads on the CPU (default: this process's), recorded because
    CPU convolutions round differently with different thread counts.
    """
    return Provenance(
        weights_sha256=info.weights_sha256,
        ranges_sha256=ranges.digest if ranges is not None else None,
        images=used,
        skipped=skipped,
        data_settings={
            "source": _describe_source(source),
            "crop_to_square_pre_resize": crop,
            "resize_mode": "clean",
            "shuffle_files": shuffle_files,
            "num_images": num_images,
        },
        extraction_settings={
            "range_scale_for_norm_params": 1 + ranges.margin if ranges is not None else 1.2,
            "hist_range": [-1.0, 1.0],
            "hist_nb_bins": parameters.get("bins", 0),
            "num_workers": workers,
            "batch_size": batch_size,
            "device": str(device),
            "verbose": verbose,
            "n_sample_images": n_sample_images,
            "seed": seed,
            "margin_mode": ranges.margin_mode if ranges is not None else None,
            "input_size": list(info.input_size),
            "mean": list(info.mean),
            "std": list(info.std),
            "weights_source": info.weights_source,
            "precision": precision,
            "compile": compile,
            "torch_threads": threads or torch.get_num_threads(),
            "streams": streams,
        },
    )


def _check_positive(value: Any, name: str, allow_zero: bool = False) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < (0 if allow_zero else 1):
        bound = "a non-negative" if allow_zero else "a positive"
        raise ValueError(f"{name} must be {bound} integer, got {value!r}")


class VDNAProcessor:
    """Makes DNAs; keeps the last extractor loaded (and the copies streams run) so that several DNAs share it."""

    def __init__(self) -> None:
        self._extractor: Extractor | None = None
        self._extractor_key: tuple | None = None
        self._copies: list[Extractor] = []

    def get_extractor(
        self, name: str = DEFAULT_EXTRACTOR, device: str | torch.device | None = None, weights: str | None = None
    ) -> Extractor:
        """The extractor ``name`` on ``device``, built once and reused."""
        device = resolve_device(device)
        key = (name, str(device), None if weights is None else str(weights))
        if self._extractor_key != key:
            self._extractor = create_extractor(name, weights=weights, device=device)
            self._extractor_key = key
            self._copies = []
        return self._extractor

    def _extractor_copies(self, count: int, name: str, device: torch.device, weights: str | None) -> list[Extractor]:
        """``count`` more copies of the extractor :meth:`get_extractor` last returned, built once and reused."""
        while len(self._copies) < count:
            self._copies.append(create_extractor(name, weights=weights, device=device))
        return self._copies[:count]

    def calibrate(
        self,
        source: Any,
        feat_extractor_name: str = DEFAULT_EXTRACTOR,
        output: str | os.PathLike | None = None,
        margin: float = 0.2,
        **make_options: Any,
    ) -> ActivationRanges:
        """Per-neuron activation ranges of ``feat_extractor_name`` over the images of ``source`` (appendix A.2).

        The minimum and maximum of every neuron, widened by ``margin`` (20% by default) when
        histograms use them. Saved to ``output`` (JSON) when given, for
        ``make_vdna(..., activation_ranges=output)``; ``make_options`` go to :meth:`make_vdna`.
        """
        if not 0 <= margin < 10:
            raise ValueError(f"margin must be a fraction in [0, 10), got {margin}")
        extremes = self.make_vdna(source, feat_extractor_name=feat_extractor_name, distribution_name="activation-ranges", **make_options)
        ranges = extremes.to_ranges(margin, description=f"min/max over {extremes.num_images} images of {_describe_source(source)}")
        if output is not None:
            ranges.save(output)
        return ranges

    def make_vdna(
        self,
        source: Any,
        num_images: int = -1,
        shuffle_files: bool = False,
        feat_extractor_name: str = DEFAULT_EXTRACTOR,
        distribution_name: str = "histogram-1000",
        seed: int = 0,
        batch_size: int = 64,
        device: str | torch.device | None = None,
        verbose: bool = True,
        num_workers: int | None = None,
        save_sample_images: str | os.PathLike | None = None,
        n_sample_images: int = 5,
        crop_to_square_pre_resize: str = "none",
        *,
        activation_ranges: str | os.PathLike | ActivationRanges | VDNA | None = None,
        weights: str | os.PathLike | None = None,
        on_error: str = "raise",
        max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
        forward_batch_size: int | None = None,
        precision: str = "float32",
        compile: bool = False,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int = 1000,
        streams: int = 1,
    ) -> VDNA:
        """Make the DNA of the images of ``source``.

        ``source``: a folder (searched recursively), an image file, a list of paths, a ``.txt``
        index, a ``.zip``, a list of numpy arrays or PIL images, a dataset or any iterable of those.
        ``num_images`` (-1: all) and ``shuffle_files``/``seed`` pick a subset as vdna 0.1.1 did.
        ``distribution_name``: ``histogram-B``, ``gaussian``, ``layer-gaussian`` or
        ``activation-ranges``, or per image ``image-histogram-B`` and ``image-mean``. ``device=None`` is CUDA when available; ``num_workers=None`` uses
        every available core. ``on_error="skip"`` skips unreadable images and records them in the
        DNA's metadata instead of raising. ``forward_batch_size`` (images per forward pass)
        defaults to 1 on the CPU and to ``batch_size`` on CUDA. ``precision="bfloat16"`` or
        ``"float16"`` runs the network under autocast and ``compile=True`` through
        ``torch.compile``: both are faster on suitable GPUs and change results slightly, so both
        are off by default and recorded in the DNA's metadata. With ``checkpoint`` (a file path),
        the state of the run is saved atomically every ``checkpoint_every`` images; running the
        same call again after a crash or a kill resumes from it and gives the same DNA (the
        checkpoint is removed once the DNA is made).
        ``streams`` (CPU, histograms and activation ranges): run the network in that many streams
        side by side, each on one thread, sharing each batch's images; each stream decodes and
        preprocesses its own images (``num_workers`` is not used). The streams share the
        extractor when it allows concurrent calls (the built-in ones do, unless ``compile``) and
        otherwise each run a copy. On a few cores this is faster than one network on several
        threads (the network at one image at a time uses extra threads poorly); the DNA is that
        of a one-thread run, bit for bit.
        """
        _check_positive(batch_size, "batch_size")
        _check_positive(n_sample_images, "n_sample_images", allow_zero=True)
        if num_workers is not None:
            _check_positive(num_workers, "num_workers", allow_zero=True)
        if forward_batch_size is not None:
            _check_positive(forward_batch_size, "forward_batch_size")
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        _check_positive(streams, "streams")
        dna_class, parameters = parse_distribution(distribution_name)
        device = resolve_device(device)
        if streams > 1:
            if device.type != "cpu":
                raise ValueError(f"streams run the network on CPU threads; device is {device}")
            if not dna_class.exact_merge:
                raise ValueError(
                    f"streams need a distribution whose parts add up exactly in any order (histogram-B, "
                    f"activation-ranges); {distribution_name} does not"
                )
        extractor = self.get_extractor(feat_extractor_name, device, weights)
        info = extractor.info
        forward = forward_function(extractor, device, precision, compile)
        ranges = resolve_ranges(activation_ranges, extractor) if dna_class.needs_ranges else None
        accumulator = dna_class.accumulator(parameters, info.layers, ranges, device)
        collection = open_source(source, num_images, shuffle_files, seed)
        if save_sample_images is not None and isinstance(collection, ItemStream) and iter(source) is source:
            raise ValueError("save_sample_images needs a source that can be read twice; this iterator can be read once")
        preprocessor = Preprocessor(info.input_size, info.mean, info.std, crop_to_square_pre_resize, seed)
        workers = available_cores() if num_workers is None else num_workers
        threads = 1 if streams > 1 else torch.get_num_threads()
        store, report, todo, positions = None, ExtractionReport([], [], []), collection, None
        if checkpoint is not None:
            if not isinstance(collection, ImageCollection):
                raise ValueError("checkpoints need a source of known length; this iterable has none")
            _check_positive(checkpoint_every, "checkpoint_every")
            identity = {
                "source": _describe_source(source),
                "images_sha256": hashlib.sha256("\n".join(collection.names).encode("utf-8", "surrogateescape")).hexdigest(),
                "images": len(collection),
                "extractor": info.name,
                "weights_sha256": info.weights_sha256,
                "distribution": distribution_name,
                "ranges_sha256": ranges.digest if ranges is not None else None,
                "crop": crop_to_square_pre_resize,
                "seed": seed,
                "on_error": on_error,
                "max_image_pixels": max_image_pixels,
                "precision": precision,
                "compile": compile,
                "torch_threads": threads if device.type == "cpu" else None,  # CPU convolutions round by thread count
            }
            store = Checkpoint(checkpoint, identity)
            state = store.load()
            if state is not None:
                partial, used, skipped, done = state
                accumulator.resume(partial)
                report = ExtractionReport(used, skipped, done)
                finished = set(done)
                positions = [i for i in range(len(collection)) if i not in finished]
                todo = collection.subset(positions)
        total = len(collection) if isinstance(collection, ImageCollection) else None
        parts = [accumulator] + [dna_class.accumulator(parameters, info.layers, ranges, device) for _ in range(streams - 1)]
        saver = _PeriodicCheckpoint(store, parts, info.name, checkpoint_every, len(report.done)) if store else None
        with tqdm(total=total, initial=len(report.done), unit="img", desc=f"DNA {distribution_name}", disable=not verbose) as bar:
            if streams > 1:
                if extractor.concurrent_calls and not compile:
                    copies = [extractor] * (streams - 1)
                else:
                    copies = self._extractor_copies(streams - 1, feat_extractor_name, device, weights)
                forwards = [forward] + [forward_function(copy, device, precision, compile) for copy in copies]
                batches = raw_batches(todo, batch_size, positions)
                report = extract_in_streams(
                    forwards, parts, batches, preprocessor, max_image_pixels, on_error, bar.update, report, saver
                )
            else:
                loader = image_loader(todo, preprocessor, batch_size, workers, device.type == "cuda", max_image_pixels, positions)
                report = extract(
                    forward,
                    accumulator,
                    loader,
                    device,
                    forward_batch_size or (1 if device.type == "cpu" else batch_size),
                    on_error,
                    bar.update,
                    report,
                    saver,
                )
        if accumulator.num_images == 0:
            raise ValueError(f"none of the {len(report.skipped)} images of {_describe_source(source)} could be used")
        provenance = run_provenance(
            info, ranges, parameters, report.used, report.skipped, source=source, crop=crop_to_square_pre_resize,
            shuffle_files=shuffle_files, num_images=num_images, workers=workers if streams == 1 else 0, batch_size=batch_size, device=device,
            verbose=verbose, n_sample_images=n_sample_images, seed=seed, precision=precision, compile=compile,
            threads=threads, streams=streams,
        )
        vdna = accumulator.result(info.name, provenance)
        if store is not None:
            store.remove()
        if save_sample_images is not None and n_sample_images > 0:
            _save_sample_images(save_sample_images, open_source(source, num_images, shuffle_files, seed), preprocessor, n_sample_images, seed)
        return vdna
