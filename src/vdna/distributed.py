"""Making a DNA on a Ray cluster: Ray Data reads and preprocesses, an actor pool runs the network.

Images are read and preprocessed by Ray Data tasks in parallel, the resulting stream is split
between ``num_actors`` actors that each hold the frozen extractor and one accumulator, and the
actors' accumulators are merged at the end. DNAs are sums, so the result does not depend on which
actor saw which image: histograms are bit-identical to the single-process DNA of the same images
(each image goes through the network on its own, as on the local path), Gaussians equal to float64
round-off. Ray is optional: ``pip install "vdna[ray]"``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from .config import RayConfig, RunConfig, given_settings, option, run_settings, split_settings
from .distributions import parse_distribution
from .dna import VDNA
from .engine import (
    Batch,
    Run,
    RunRecord,
    forward_function,
    forward_step,
    load_item,
    prepare_image,
    resolve_ranges,
    run_preprocessor,
    run_provenance,
)
from .extractors import create_extractor, resolve_device
from .plans import ForwardPlan
from .preprocess import ImageError, Preprocessor
from .sources import ImageCollection, open_source

logger = logging.getLogger(__name__)


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ImportError('the Ray backend needs Ray: pip install "vdna[ray]"') from None
    return ray


_COLLECTIONS: dict[str, ImageCollection] = {}


def _collection(reference: Any) -> ImageCollection:
    """The run's image collection, fetched from the object store once per worker process."""
    ray = _ray()
    if not isinstance(reference, ray.ObjectRef):
        return reference
    key = reference.hex()
    if key not in _COLLECTIONS:
        _COLLECTIONS.clear()
        _COLLECTIONS[key] = ray.get(reference)
    return _COLLECTIONS[key]


def _preprocess(batch: dict[str, np.ndarray], collection: Any, preprocessor: Preprocessor, max_pixels: int) -> dict[str, np.ndarray]:
    """Ray Data batch function: image positions -> network inputs, or the reason an image failed."""
    images = _collection(collection)
    positions, pixels, reasons = [], [], []
    for position in batch["id"].tolist():
        _, name, raw, reason = load_item(images, position, position)
        outcome = (position, name, None, reason) if reason else prepare_image(raw, name, position, preprocessor, max_pixels)
        positions.append(position)
        pixels.append(outcome[2].numpy() if outcome[2] is not None else None)
        reasons.append(outcome[3] or "")
    blank = np.zeros((3, *preprocessor.size), dtype=np.float32)
    return {
        "position": np.asarray(positions, dtype=np.int64),
        "pixels": np.stack([p if p is not None else blank for p in pixels]),
        "reason": np.asarray(reasons, dtype=object),
    }


def _worker_class(ray: Any) -> type:
    @ray.remote
    class ExtractionWorker:
        """Holds the frozen extractor and a run into one accumulator; consumes its share of the preprocessed stream."""

        def __init__(self, config: RunConfig, ranges, device, threads):
            torch.set_num_threads(threads)
            dna_class, parameters = parse_distribution(config.distribution_name)
            device = resolve_device(device)
            extractor = create_extractor(config.feat_extractor_name, weights=config.extractor_weights, device=device)
            accumulator = dna_class.accumulator(parameters, extractor.info.layers, ranges, device)
            step = forward_step(config, device, extractor.info.name, config.batch_size)
            self.run = Run(forward_function(extractor, device, config), [accumulator], device, step, config.on_error)

        def consume(self, shard, batch_size, progress):
            """Every batch of ``shard`` through the run; positions stand for names (the driver knows them)."""
            try:
                for batch in shard.iter_batches(batch_size=batch_size, batch_format="numpy"):
                    good = [i for i, reason in enumerate(batch["reason"]) if not reason]
                    bad = [i for i, reason in enumerate(batch["reason"]) if reason]
                    positions = [int(p) for p in batch["position"]]
                    self.run.add(Batch(
                        names=[str(positions[i]) for i in good],
                        images=torch.from_numpy(np.ascontiguousarray(batch["pixels"][good])) if good else None,
                        failures=[(str(positions[i]), str(batch["reason"][i])) for i in bad],
                        positions=[positions[i] for i in good + bad],
                    ))
                    progress.add.remote(len(positions))
            except ImageError as error:
                return {"error": (int(error.name), error.reason)}
            return {"accumulator": self.run.accumulators[0], "record": self.run.record}

    return ExtractionWorker


def _progress_class(ray: Any) -> type:
    @ray.remote(num_cpus=0)
    class Progress:
        def __init__(self):
            self.done = 0

        def add(self, count: int) -> None:
            self.done += count

        def value(self) -> int:
            return self.done

    return Progress


def make_vdna_ray(
    source: Any,
    num_images: int = RunConfig.num_images,
    shuffle_files: bool = RunConfig.shuffle_files,
    feat_extractor_name: str = RunConfig.feat_extractor_name,
    distribution_name: str = RunConfig.distribution_name,
    seed: int = RunConfig.seed,
    batch_size: int = RunConfig.batch_size,
    device: str | None = RunConfig.device,
    verbose: bool = RunConfig.verbose,
    crop_to_square_pre_resize: str = RunConfig.crop_to_square_pre_resize,
    *,
    config: RunConfig | None = None,
    ray_config: RayConfig | None = None,
    **options: Any,
) -> VDNA:
    """Make the DNA of ``source`` on Ray; the same arguments and result as :meth:`VDNAProcessor.make_vdna`.

    ``options`` are the other settings of :class:`~vdna.RunConfig` and those of :class:`~vdna.RayConfig`:
    ``address`` (``"auto"``, ``"ray://head:10001"``; default: the Ray already initialised in this
    process, or a local one), ``num_actors`` (default: one per GPU with ``num_gpus_per_actor``,
    else one), each holding the extractor (on GPUs with ``num_gpus_per_actor``), and
    ``threads_per_actor``, their torch threads (default: this process's, as a local run would
    use): CPU convolutions round differently with different thread counts, so a DNA is
    bit-identical to a local one made with as many threads. Sources must have a known length
    (folders, lists, indexes, zip files, tar shards).
    """
    (ray_options,), run_options = split_settings(options, RayConfig)
    named = given_settings(
        config, num_images=num_images, shuffle_files=shuffle_files, feat_extractor_name=feat_extractor_name,
        distribution_name=distribution_name, seed=seed, batch_size=batch_size, device=device, verbose=verbose,
        crop_to_square_pre_resize=crop_to_square_pre_resize,
    )
    config, ranges = run_settings(config, "make_vdna_ray", **named, **run_options)
    ray_config = replace(ray_config, **ray_options) if ray_config is not None else RayConfig(**ray_options)
    return run_on_ray(source, config, ray_config, ranges)


def run_on_ray(source: Any, config: RunConfig, ray_config: RayConfig | None = None, ranges: Any = None) -> VDNA:
    """The DNA of ``source`` with the settings of ``config``, made by Ray actors as ``ray_config`` says (see :func:`make_vdna_ray`).

    ``ranges``: activation ranges held in memory, instead of ``config.activation_ranges``.
    """
    ray_config = ray_config or RayConfig()
    num_actors, num_gpus_per_actor = ray_config.num_actors, ray_config.num_gpus_per_actor
    ray = _ray()
    local_only = [name for name in ("checkpoint", "save_sample_images") if getattr(config, name) is not None]
    local_only += [name for name in ("compile",) if config.compile] + [name for name in ("streams",) if config.streams not in (None, 1)]
    if local_only:
        flags = [option(name) for name in local_only]
        named = f"{', '.join(flags[:-1])} and {flags[-1]} are options" if len(flags) > 1 else f"{flags[0]} is an option"
        raise ValueError(f"{named} of local runs, not of Ray runs")
    dna_class, parameters = parse_distribution(config.distribution_name)
    if dna_class.type in ("image-histogram", "image-mean"):
        raise ValueError(
            f"per-image DNAs ({config.distribution_name}) keep images in order: make them with VDNAProcessor.make_vdna"
        )
    collection = open_source(source, config.num_images, config.shuffle_files, config.seed)
    if not isinstance(collection, ImageCollection):
        raise ValueError("the Ray backend needs a source of known length (a folder, list, index, zip or tar shards)")
    actor_device = resolve_device(config.device or ("cuda" if num_gpus_per_actor > 0 else "cpu"))
    extractor = create_extractor(config.feat_extractor_name, weights=config.extractor_weights, device="cpu")
    info = extractor.info
    if dna_class.needs_ranges:
        ranges = resolve_ranges(config.activation_ranges if ranges is None else ranges, extractor)
    else:
        ranges = None
    del extractor  # the actors build their own; the driver keeps only its description
    preprocessor = run_preprocessor(info, config)

    if not ray.is_initialized():
        ray.init(address=ray_config.address or None, ignore_reinit_error=True, log_to_driver=False, logging_level=logging.WARNING)
    if num_actors is None:
        gpus = ray.cluster_resources().get("GPU", 0)
        num_actors = max(1, int(gpus // num_gpus_per_actor)) if num_gpus_per_actor > 0 else 1
    dataset = ray.data.range(len(collection)).map_batches(
        _preprocess,
        fn_kwargs={"collection": ray.put(collection), "preprocessor": preprocessor, "max_pixels": config.max_image_pixels},
        batch_size=8,
    )
    shards = dataset.streaming_split(num_actors, equal=False)
    threads = ray_config.threads_per_actor or torch.get_num_threads()
    worker_class = _worker_class(ray).options(num_cpus=0, num_gpus=num_gpus_per_actor)
    workers = [worker_class.remote(config, ranges, str(actor_device), threads) for _ in range(num_actors)]
    progress = _progress_class(ray).remote()
    pending = [worker.consume.remote(shard, config.batch_size, progress) for worker, shard in zip(workers, shards)]
    started = time.perf_counter()
    with tqdm(total=len(collection), unit="img", desc=f"DNA {config.distribution_name} on Ray", disable=not config.verbose) as bar:
        remaining = list(pending)
        while remaining:
            _, remaining = ray.wait(remaining, timeout=1.0, num_returns=len(remaining))
            bar.update(ray.get(progress.value.remote()) - bar.n)
    results = ray.get(pending)
    logger.info("Ray run of %d images in %.1f s", len(collection), time.perf_counter() - started)
    for result in results:
        if "error" in result:
            position, reason = result["error"]
            raise ImageError(collection.names[position], reason)
    accumulator = results[0]["accumulator"]
    for result in results[1:]:
        accumulator.merge(result["accumulator"])
    used = sorted(int(name) for result in results for name in result["record"].used)
    skipped = sorted(
        ((int(entry["name"]), entry["reason"]) for result in results for entry in result["record"].skipped),
        key=lambda item: item[0],
    )
    if not used:
        raise ValueError(f"none of the {len(skipped)} images of {source} could be used")
    record = RunRecord(
        used=[collection.names[p] for p in used],
        skipped=[{"name": collection.names[p], "reason": reason} for p, reason in skipped],
    )
    provenance = run_provenance(
        config, source, info, ranges, dna_class, parameters, record,
        device=actor_device, workers=num_actors, threads=threads, backend="ray",
        plan=ForwardPlan(forward_step(config, actor_device, info.name, config.batch_size)),
    )
    return accumulator.result(info.name, provenance)


__all__ = [
    "make_vdna_ray",
    "run_on_ray",
]
