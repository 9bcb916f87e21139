"""What a set is given as: a saved DNA, a DNA in memory, or images whose DNAs are made. Decided here, once.

Every command and the report take each set as a saved DNA (``NAME``, ``NAME.json``, ``NAME.npz``
or ``NAME.vdnz``), or as a source of images (a folder, a file, an index, tar shards, ...), and
need DNAs of given distributions. :func:`dnas_of` gives them: from images, all in one pass through
the network; from a saved DNA, the DNA itself or what follows exactly from it (the histogram DNA of
per-image histograms, the Gaussians of per-image means), or an error saying which DNA to make.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from .config import RayConfig, RunConfig
from .distributions import PerImageDNA, parse_distribution
from .dna import VDNA
from .engine import Tracker
from .io import dna_paths, load_vdna_from_files
from .processor import VDNAProcessor

DNA_SUFFIXES = (".json", ".npz", ".vdnz")


def is_saved_dna(argument: Any) -> bool:
    """Whether ``argument`` names a saved DNA (``NAME``, ``NAME.json``, ``NAME.npz`` or ``NAME.vdnz``) rather than images."""
    if not isinstance(argument, (str, os.PathLike)):
        return False
    path = Path(argument)
    if path.is_dir():
        return False
    if path.suffix in DNA_SUFFIXES:
        return True
    return path.suffix == "" and dna_paths(path)[0].is_file()


def saved_dna(argument: Any) -> VDNA | None:
    """The DNA ``argument`` is or names (loaded), or None when it names images."""
    if isinstance(argument, VDNA):
        return argument
    return load_vdna_from_files(argument) if is_saved_dna(argument) else None


def _article(kind: str) -> str:
    return f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind}"


def as_distribution(vdna: VDNA, distribution: str, name: str) -> VDNA:
    """The DNA of ``distribution``'s type that ``vdna`` is or gives exactly (a per-image DNA gives its set's DNA).

    ``ValueError`` naming ``name`` and the DNA to make otherwise.
    """
    wanted_class = parse_distribution(distribution)[0]
    wanted = wanted_class.type
    if vdna.type == wanted:
        return vdna
    if isinstance(vdna, PerImageDNA) and wanted in vdna.set_types:
        return vdna.set_dna(wanted)
    needed = f"per-image DNAs ({wanted})" if issubclass(wanted_class, PerImageDNA) else f"{_article(wanted)} DNA"
    raise ValueError(f"{name} is {_article(vdna.type)} DNA; this needs {needed}, "
                     f"made with `vdna make SOURCE --distribution {distribution}`")


def dnas_of(
    argument: Any,
    distributions: Sequence[str],
    config: RunConfig | None = None,
    processor: VDNAProcessor | None = None,
    *,
    ray: RayConfig | None = None,
    ranges: Any = None,
    trackers: Sequence[Tracker] = (),
    name: str | None = None,
) -> list[VDNA]:
    """The DNAs of ``distributions`` of the set ``argument``: a saved DNA or a DNA (see :func:`as_distribution`),
    or a source of images, all made in one pass with the settings ``config`` (on Ray with ``ray``).

    ``trackers`` ride along the pass (images only); ``name`` names ``argument`` in errors.
    """
    given = saved_dna(argument)
    if given is not None:
        return [as_distribution(given, distribution, name or str(argument)) for distribution in distributions]
    config = config or RunConfig()
    if ray is not None:
        if len(distributions) != 1 or trackers:
            raise ValueError("a run on Ray makes one DNA at a time")
        from .distributed import run_on_ray

        return [run_on_ray(argument, replace(config, distribution_name=distributions[0]), ray, ranges)]
    return (processor or VDNAProcessor()).run(argument, config, distributions, trackers, ranges)


__all__ = ["DNA_SUFFIXES", "as_distribution", "dnas_of", "is_saved_dna", "saved_dna"]
