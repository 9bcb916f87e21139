"""Making DNAs: :class:`VDNAProcessor` keeps the extractor loaded between DNAs and runs the engine (:mod:`vdna.engine`).

Decoding and resizing run in DataLoader worker processes (or, with ``streams``, in one-thread
streams on the CPU); the network and the accumulators run in this process under
``torch.inference_mode``, and nothing is kept per image (histograms gather the activations of a
few images, a fixed amount of memory, to bin them in one pass).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from .config import DEFAULT_EXTRACTOR, DEFAULT_MAX_IMAGE_PIXELS, RunConfig
from .dna import VDNA
from .engine import Tracker, describe_source, make_dnas
from .extractors import Extractor, create_extractor, resolve_device
from .ranges import ActivationRanges


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

    def _extractors(self, config: RunConfig) -> Any:
        """``extractors(count)`` for the engine: the shared extractor, then copies for streams, built once and reused."""

        def extractors(count: int) -> list[Extractor]:
            first = self.get_extractor(config.feat_extractor_name, config.device, config.weights)
            device = resolve_device(config.device)
            while len(self._copies) < count - 1:
                self._copies.append(create_extractor(config.feat_extractor_name, weights=config.weights, device=device))
            return [first, *self._copies[: count - 1]]

        return extractors

    def run(
        self, source: Any, config: RunConfig, distributions: Sequence[str] | None = None, trackers: Sequence[Tracker] = ()
    ) -> list[VDNA]:
        """The DNAs of ``source`` made in one pass with the settings of ``config``, one per distribution name.

        ``distributions`` default to ``config.distribution_name``; several share one pass through
        the network (e.g. ``["image-histogram-1000", "image-mean"]``). ``trackers`` (e.g.
        :class:`vdna.explain.NeuronMaxima`) are filled by the same pass.
        """
        return make_dnas(source, config, self._extractors(config), distributions, trackers)

    def make_vdnas(self, source: Any, distribution_names: Sequence[str], **options: Any) -> dict[str, VDNA]:
        """Several DNAs of ``source`` in one pass through the network: ``{distribution name: DNA}``.

        ``options`` are :meth:`make_vdna`'s keyword arguments.
        """
        config = RunConfig.from_options(**options)
        return dict(zip(distribution_names, self.run(source, config, distribution_names)))

    def calibrate(
        self,
        source: Any,
        feat_extractor_name: str = DEFAULT_EXTRACTOR,
        output: str | os.PathLike | None = None,
        margin: float = 0.2,
        *,
        config: RunConfig | None = None,
        **make_options: Any,
    ) -> ActivationRanges:
        """Per-neuron activation ranges of ``feat_extractor_name`` over the images of ``source`` (appendix A.2).

        The minimum and maximum of every neuron, widened by ``margin`` (20% by default) when
        histograms use them. Saved to ``output`` (JSON) when given, for
        ``make_vdna(..., activation_ranges=output)``. The run's settings are ``config``, or
        ``make_options`` (:meth:`make_vdna`'s keyword arguments).
        """
        if not 0 <= margin < 10:
            raise ValueError(f"margin must be a fraction in [0, 10), got {margin}")
        if config is not None and make_options:
            raise TypeError("pass the run's settings as config= or as keyword options, not both")
        config = replace(
            config or RunConfig.from_options(**make_options),
            feat_extractor_name=feat_extractor_name, distribution_name="activation-ranges",
        )
        extremes = self.run(source, config)[0]
        ranges = extremes.to_ranges(margin, description=f"min/max over {extremes.num_images} images of {describe_source(source)}")
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
        config = RunConfig(
            num_images=num_images, shuffle_files=shuffle_files, feat_extractor_name=feat_extractor_name,
            distribution_name=distribution_name, seed=seed, batch_size=batch_size, device=device, verbose=verbose,
            num_workers=num_workers, save_sample_images=save_sample_images, n_sample_images=n_sample_images,
            crop_to_square_pre_resize=crop_to_square_pre_resize, activation_ranges=activation_ranges, weights=weights,
            on_error=on_error, max_image_pixels=max_image_pixels, forward_batch_size=forward_batch_size,
            precision=precision, compile=compile, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
            streams=streams,
        )
        return self.run(source, config)[0]
