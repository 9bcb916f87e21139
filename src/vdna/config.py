"""How a DNA is made: every setting of a run in one frozen, validated object.

:class:`RunConfig` is built once, by :meth:`vdna.VDNAProcessor.make_vdna`, :func:`vdna.distributed.make_vdna_ray`,
the command line or a report, and read by the run engine (:mod:`vdna.engine`), which records it in
the DNA's provenance. Changing a setting makes a new object (``dataclasses.replace``). This module
imports neither torch nor numpy, so the command line can describe its options without them.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

DEFAULT_EXTRACTOR = "efficientnet_lite0"
DEFAULT_DISTRIBUTION = "histogram-1000"
TIMM_PREFIX = "timm:"
"""Extractor names starting with this name any timm model: ``timm:<model_name>``."""
CROP_MODES = ("none", "center", "random")
ON_ERROR = ("raise", "skip")
PRECISIONS = ("float32", "bfloat16", "float16")
DEFAULT_MAX_IMAGE_PIXELS = 178_956_970
"""Images declaring more pixels than this are refused as decompression bombs (twice Pillow's warning limit)."""


COMMAND_LINE_FLAGS = {
    "num_images": "--num-images",
    "shuffle_files": "--shuffle",
    "feat_extractor_name": "--extractor",
    "distribution_name": "--distribution",
    "seed": "--seed",
    "batch_size": "--batch-size",
    "device": "--device",
    "verbose": "--quiet",
    "num_workers": "--workers",
    "crop_to_square_pre_resize": "--crop",
    "activation_ranges": "--ranges",
    "weights": "--weights",
    "on_error": "--skip-bad",
    "precision": "--precision",
    "compile": "--compile",
    "checkpoint": "--checkpoint",
    "checkpoint_every": "--checkpoint-every",
    "streams": "--streams",
    "resamples": "--resamples",
    "permutations": "--permutations",
}
"""The ``vdna`` command's flag for each run setting (and setting of ``vdna.stats``) that has one."""

_COMMAND_LINE = contextvars.ContextVar("vdna_command_line", default=False)


@contextlib.contextmanager
def command_line_names() -> Iterator[None]:
    """Within this context, messages name run settings by their command-line flags (``--ranges``, not ``activation_ranges``)."""
    token = _COMMAND_LINE.set(True)
    try:
        yield
    finally:
        _COMMAND_LINE.reset(token)


def option(name: str) -> str:
    """How messages name the run setting ``name``: its Python argument, or its flag on the command line."""
    if _COMMAND_LINE.get() and name in COMMAND_LINE_FLAGS:
        return COMMAND_LINE_FLAGS[name]
    return name


def check_integer(value: Any, name: str, minimum: int) -> None:
    """Refuse a run setting that is not an integer (bools excluded) of at least ``minimum``, naming it as :func:`option` does."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        bound = {0: "a non-negative", 1: "a positive"}.get(minimum, f"an integer >= {minimum}, i.e.")
        raise ValueError(f"{option(name)} must be {bound} integer, got {value!r}")


@dataclass(frozen=True)
class RunConfig:
    """The settings of one run, named as :meth:`vdna.VDNAProcessor.make_vdna`'s arguments.

    ``activation_ranges`` may be a path, an :class:`~vdna.ActivationRanges` or an
    activation-ranges DNA; ``device=None`` means CUDA when available; ``num_workers=None`` one
    decoding process per available core; ``forward_batch_size=None`` one image at a time on the
    CPU and ``batch_size`` on CUDA.
    """

    num_images: int = -1
    shuffle_files: bool = False
    feat_extractor_name: str = DEFAULT_EXTRACTOR
    distribution_name: str = DEFAULT_DISTRIBUTION
    seed: int = 0
    batch_size: int = 64
    device: Any = None
    verbose: bool = True
    num_workers: int | None = None
    save_sample_images: str | os.PathLike | None = None
    n_sample_images: int = 5
    crop_to_square_pre_resize: str = "none"
    activation_ranges: Any = None
    weights: str | os.PathLike | None = None
    on_error: str = "raise"
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    forward_batch_size: int | None = None
    precision: str = "float32"
    compile: bool = False
    checkpoint: str | os.PathLike | None = None
    checkpoint_every: int = 1000
    streams: int = 1

    def __post_init__(self) -> None:
        check_integer(self.batch_size, "batch_size", 1)
        check_integer(self.n_sample_images, "n_sample_images", 0)
        check_integer(self.checkpoint_every, "checkpoint_every", 1)
        check_integer(self.streams, "streams", 1)
        check_integer(self.max_image_pixels, "max_image_pixels", 1)
        check_integer(self.seed, "seed", 0)
        if not isinstance(self.num_images, int) or isinstance(self.num_images, bool) or not (
            self.num_images == -1 or self.num_images > 0
        ):
            raise ValueError(f"{option('num_images')} must be -1 (all) or a positive integer, got {self.num_images!r}")
        if self.num_workers is not None:
            check_integer(self.num_workers, "num_workers", 0)
        if self.forward_batch_size is not None:
            check_integer(self.forward_batch_size, "forward_batch_size", 1)
        for name, value, valid in (
            ("on_error", self.on_error, ON_ERROR),
            ("precision", self.precision, PRECISIONS),
            ("crop_to_square_pre_resize", self.crop_to_square_pre_resize, CROP_MODES),
        ):
            if value not in valid:
                raise ValueError(f"{option(name)} must be one of {valid}, got {value!r}")
        if not isinstance(self.distribution_name, str):
            raise ValueError(f"distribution_name must be a string such as 'histogram-1000', got {self.distribution_name!r}")

    @classmethod
    def from_options(cls, **options: Any) -> RunConfig:
        """A config from keyword options, naming any that is not a setting."""
        names = {item.name for item in fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise TypeError(f"unknown run options {unknown}; valid: {', '.join(sorted(names))}")
        return cls(**options)


__all__ = [
    "COMMAND_LINE_FLAGS",
    "CROP_MODES",
    "DEFAULT_DISTRIBUTION",
    "DEFAULT_EXTRACTOR",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "ON_ERROR",
    "PRECISIONS",
    "TIMM_PREFIX",
    "RunConfig",
    "command_line_names",
    "option",
]
