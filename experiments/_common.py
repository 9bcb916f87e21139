"""Shared by the experiment scripts: DNAs made once and kept in a cache folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vdna import VDNA, load_vdna_from_files


def cached(cache: Path | None, name: str, make: Callable[[], VDNA]) -> VDNA:
    """``make()``, or the DNA saved as ``cache/name`` by an earlier run."""
    if cache is not None and (cache / f"{name}.json").is_file():
        return load_vdna_from_files(cache / name)
    vdna = make()
    if cache is not None:
        vdna.save(cache / name)
    return vdna


def image_files(folder: Path) -> list[Path]:
    """The images of a folder, sorted by name."""
    return sorted(path for path in folder.iterdir() if path.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp"})
