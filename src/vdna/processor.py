"""Making DNAs: :class:`VDNAProcessor` keeps the extractor loaded between DNAs and runs the engine (:mod:`vdna.engine`).

Decoding and resizing run in DataLoader worker processes (or, with ``streams``, in one-thread
streams on the CPU); the network and the accumulators run in this process under
``torch.inference_mode``, and nothing is kept per image (histograms gather the activations of a
few images, a fixed amount of memory, to bin them in one pass).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Any

import numpy as np
import torch

from .config import RunConfig, given_settings, run_settings
from .dna import VDNA
from .engine import Tracker, available_cores, describe_source, make_dnas
from .extractors import Extractor, create_extractor, resolve_device
from .plans import ForwardPlan, candidate_plans
from .ranges import ActivationRanges


class VDNAProcessor:
    """Makes DNAs; keeps the last extractor loaded (and the copies streams run) so that several DNAs share it."""

    def __init__(self) -> None:
        self._extractor: Extractor | None = None
        self._extractor_key: tuple | None = None
        self._copies: list[Extractor] = []

    def get_extractor(
        self,
        name: str = RunConfig.feat_extractor_name,
        device: str | torch.device | None = None,
        extractor_weights: str | os.PathLike | None = None,
    ) -> Extractor:
        """The extractor ``name`` on ``device``, built once and reused."""
        device = resolve_device(device)
        key = (name, str(device), None if extractor_weights is None else os.fspath(extractor_weights))
        if self._extractor_key != key:
            self._extractor = create_extractor(name, weights=extractor_weights, device=device)
            self._extractor_key = key
            self._copies = []
        return self._extractor

    def _extractors(self, config: RunConfig) -> Any:
        """``extractors(count)`` for the engine: the shared extractor, then copies for streams, built once and reused."""

        def extractors(count: int) -> list[Extractor]:
            first = self.get_extractor(config.feat_extractor_name, config.device, config.extractor_weights)
            device = resolve_device(config.device)
            while len(self._copies) < count - 1:
                self._copies.append(
                    create_extractor(config.feat_extractor_name, weights=config.extractor_weights, device=device)
                )
            return [first, *self._copies[: count - 1]]

        return extractors

    def run(
        self,
        source: Any,
        config: RunConfig,
        distributions: Sequence[str] | None = None,
        trackers: Sequence[Tracker] = (),
        ranges: ActivationRanges | VDNA | None = None,
    ) -> list[VDNA]:
        """The DNAs of ``source`` made in one pass with the settings of ``config``, one per distribution name.

        ``distributions`` default to ``config.distribution_name``; several share one pass through
        the network (e.g. ``["image-histogram-1000", "image-mean"]``). ``trackers`` (e.g.
        :class:`vdna.explain.NeuronMaxima`) are filled by the same pass. ``ranges``: activation
        ranges held in memory, instead of ``config.activation_ranges``.
        """
        return make_dnas(source, config, self._extractors(config), distributions, trackers, ranges)

    def make_vdnas(
        self, source: Any, distribution_names: Sequence[str], config: RunConfig | None = None, **options: Any
    ) -> dict[str, VDNA]:
        """Several DNAs of ``source`` in one pass through the network: ``{distribution name: DNA}``.

        The run's settings are ``config`` and ``options`` (:class:`~vdna.RunConfig`'s fields, which replace its).
        """
        config, ranges = run_settings(config, "make_vdnas", **options)
        return dict(zip(distribution_names, self.run(source, config, distribution_names, ranges=ranges)))

    def calibrate(
        self,
        source: Any,
        feat_extractor_name: str = RunConfig.feat_extractor_name,
        output: str | os.PathLike | None = None,
        margin: float = 0.2,
        *,
        config: RunConfig | None = None,
        **options: Any,
    ) -> ActivationRanges:
        """Per-neuron activation ranges of ``feat_extractor_name`` over the images of ``source`` (appendix A.2).

        The minimum and maximum of every neuron, widened by ``margin`` (20% by default) when
        histograms use them. Saved to ``output`` (JSON) when given, for
        ``make_vdna(..., activation_ranges=output)``. The run's settings are ``config`` and
        ``options`` (:class:`~vdna.RunConfig`'s fields, which replace its).
        """
        if not 0 <= margin < 10:
            raise ValueError(f"margin must be a fraction in [0, 10), got {margin}")
        config, _ = run_settings(
            config, "calibrate", **options, feat_extractor_name=feat_extractor_name, distribution_name="activation-ranges"
        )
        extremes = self.run(source, config)[0]
        ranges = extremes.to_ranges(margin, description=f"min/max over {extremes.num_images} images of {describe_source(source)}")
        if output is not None:
            ranges.save(output)
        return ranges

    def measure_plans(
        self,
        extractor: str = RunConfig.feat_extractor_name,
        source: Any = None,
        images: int = 64,
        candidates: Sequence[ForwardPlan] | None = None,
        distribution_name: str | None = None,
        **settings: Any,
    ) -> list[tuple[ForwardPlan, float]]:
        """Images per second of each candidate plan (:mod:`vdna.plans`) on the CPU, as runs of many images make them:
        whole runs of the first ``images`` and the first ``images // 2`` images of ``source`` (decoded as a
        run decodes them), each plan after a warm-up run, the speed being the images the longer run adds
        over the time it adds. What every run spends once (starting its decoding workers, the network's
        first passes) cancels out, so short measurements rank plans as long runs would.

        Without ``source``, random arrays of the extractor's input size: nothing to decode, so plans
        that decode in parallel (streams, decoding workers) show less of their advantage than on files.
        ``distribution_name``: by default histograms where the extractor has ranges (or ``activation_ranges``
        are given), else Gaussians. ``settings`` are other settings of the runs (``extractor_weights``, ...).
        """
        if images < 2:
            raise ValueError(f"measuring plans takes runs of images and half as many: images must be at least 2, got {images}")
        info = self.get_extractor(extractor, "cpu", settings.get("extractor_weights")).info
        if distribution_name is None:
            has_ranges = info.ranges is not None or settings.get("activation_ranges") is not None
            distribution_name = RunConfig.distribution_name if has_ranges else "gaussian"
        if source is None:
            source = list(np.random.default_rng(0).integers(0, 256, (images, *info.input_size, 3), dtype=np.uint8))
            settings = {"num_workers": 0, **settings}
        timings = []
        for plan in candidates or candidate_plans(available_cores()):
            config = RunConfig(feat_extractor_name=extractor, distribution_name=distribution_name, device="cpu",
                               verbose=False, **asdict(plan), **settings)
            self.run(source, replace(config, num_images=plan.forward_batch_size * plan.streams))  # warm-up
            counts, seconds = [], []
            for count in (images // 2, images):
                start = time.perf_counter()
                counts.append(self.run(source, replace(config, num_images=count))[0].num_images)
                seconds.append(time.perf_counter() - start)
            added = seconds[1] - seconds[0]
            timings.append((plan, (counts[1] - counts[0]) / added if added > 0 else counts[1] / seconds[1]))
        return timings

    def make_vdna(
        self,
        source: Any,
        num_images: int = RunConfig.num_images,
        shuffle_files: bool = RunConfig.shuffle_files,
        feat_extractor_name: str = RunConfig.feat_extractor_name,
        distribution_name: str = RunConfig.distribution_name,
        seed: int = RunConfig.seed,
        batch_size: int = RunConfig.batch_size,
        device: str | torch.device | None = RunConfig.device,
        verbose: bool = RunConfig.verbose,
        num_workers: int | None = RunConfig.num_workers,
        save_sample_images: str | os.PathLike | None = RunConfig.save_sample_images,
        n_sample_images: int = RunConfig.n_sample_images,
        crop_to_square_pre_resize: str = RunConfig.crop_to_square_pre_resize,
        *,
        config: RunConfig | None = None,
        **options: Any,
    ) -> VDNA:
        """Make the DNA of the images of ``source``: vdna 0.1.1's arguments, then any other setting by name.

        ``source``: a folder (searched recursively), an image file, a list of paths, a ``.txt``
        index, a ``.zip``, tar shards, a list of numpy arrays or PIL images, a dataset or any
        iterable of those. ``num_images`` (-1: all) and ``shuffle_files``/``seed`` pick a subset as
        vdna 0.1.1 did. ``distribution_name``: ``histogram-B``, ``gaussian``, ``layer-gaussian`` or
        ``activation-ranges``, or per image ``image-histogram-B`` and ``image-mean``.
        ``device=None`` is CUDA when available; ``num_workers=None`` uses every available core.

        ``config``: a :class:`~vdna.RunConfig` to start from (arguments given beside it replace its
        fields). ``options`` are the other fields of :class:`~vdna.RunConfig`, as keywords:
        ``activation_ranges`` (a file, an :class:`~vdna.ActivationRanges` or an activation-ranges
        DNA), ``extractor_weights`` (a weights file), ``on_error="skip"`` (skip unreadable images and
        record them in the DNA's metadata instead of raising), ``max_image_pixels``,
        ``forward_batch_size`` (images per forward pass; 1 on the CPU and ``batch_size`` on CUDA by
        default), ``precision="bfloat16"`` or ``"float16"`` (autocast) and ``compile=True``
        (``torch.compile``), which are faster on suitable GPUs, change results slightly and are
        recorded in the DNA's metadata, ``checkpoint`` (a file: the run's state is saved
        atomically every ``checkpoint_every`` images, and the same call after a crash or a kill
        resumes from it to the same DNA) and ``streams`` (CPU, histograms and activation ranges:
        the network runs in that many one-thread streams side by side, each decoding its own
        images; faster on a few cores, and the DNA is that of a one-thread run, bit for bit).
        """
        named = given_settings(
            config, num_images=num_images, shuffle_files=shuffle_files, feat_extractor_name=feat_extractor_name,
            distribution_name=distribution_name, seed=seed, batch_size=batch_size, device=device, verbose=verbose,
            num_workers=num_workers, save_sample_images=save_sample_images, n_sample_images=n_sample_images,
            crop_to_square_pre_resize=crop_to_square_pre_resize,
        )
        config, ranges = run_settings(config, "make_vdna", **named, **options)
        return self.run(source, config, ranges=ranges)[0]


__all__ = ["VDNAProcessor"]
