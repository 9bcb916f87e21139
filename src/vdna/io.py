"""Saving and loading DNAs: :mod:`vdna.fileformat` files turned back into DNAs of their registered type.

Loading validates everything (metadata, the arrays' sha256, every array's header before reading
it, shapes, dtypes and values) and never unpickles.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .distributions import dna_class_for_type
from .dna import VDNA, Provenance
from .fileformat import (
    COMPACT,
    DATA_SETTINGS_011,
    NPZ,
    SafeNpz,
    checked_metadata,
    dna_paths,
    histogram_from_compact_bytes,
    read_dna_files,
    saved_dna_paths,
    write_dna_files,
)


def save_vdna(vdna: VDNA, file_path: str | os.PathLike, compact: bool = False) -> tuple[Path, Path]:
    """Write a DNA as ``.json`` + ``.npz`` (or ``.vdnz`` with ``compact=True``); returns both paths.

    The compact encoding is lossless and for histogram DNAs only; vdna 0.1.1 cannot read it.
    """
    return write_dna_files(vdna, file_path, compact)


def _provenance(document: dict) -> Provenance:
    settings = document.get("settings")
    if not isinstance(settings, dict):
        settings = {**(document.get("data_settings") or {}), **(document.get("extraction_settings") or {})}
    images = document.get("images_used")
    skipped = document.get("images_skipped")
    return Provenance(
        weights_sha256=document.get("weights_sha256") if isinstance(document.get("weights_sha256"), str) else None,
        ranges_sha256=document.get("ranges_sha256") if isinstance(document.get("ranges_sha256"), str) else None,
        images=[str(name) for name in images] if isinstance(images, list) else [],
        skipped=[dict(entry) for entry in skipped if isinstance(entry, dict)] if isinstance(skipped, list) else [],
        data_settings={k: settings[k] for k in DATA_SETTINGS_011 if k in settings},
        extraction_settings={k: v for k, v in settings.items() if k not in DATA_SETTINGS_011},
        time_of_compute=str(document.get("time_of_compute", "")),
        library_version=str(document.get("vdna_version", "")),
    )


def _compact_arrays(payload: bytes, neurons: dict[str, int], origin: str) -> dict[str, np.ndarray]:
    counts = histogram_from_compact_bytes(payload, origin)
    if counts.shape[0] != sum(neurons.values()):
        raise ValueError(f"{origin}: {counts.shape[0]} histograms, the metadata lists {sum(neurons.values())} neurons")
    bounds = np.cumsum([0, *neurons.values()])
    return {layer: counts[start:end] for layer, start, end in zip(neurons, bounds[:-1], bounds[1:])}


def load_vdna_from_files(file_path: str | os.PathLike, device: str = "cpu") -> VDNA:
    """Load a DNA saved by this library or by vdna 0.1.1 (``file_path`` with or without suffix)."""
    json_path, _ = saved_dna_paths(file_path)
    document, arrays_path, payload = read_dna_files(json_path)
    neurons = checked_metadata(document, json_path)
    dna_class = dna_class_for_type(document["type"])
    name, num_images, extractor = document["name"], document["num_images"], document["feature_extractor_name"]
    distribution = document.get("distribution") or {}
    if not isinstance(distribution, dict):
        raise ValueError(f"{json_path}: metadata entry 'distribution' must be an object")
    try:
        parameters = dna_class.from_metadata(distribution, name)
    except ValueError as error:
        raise ValueError(f"{json_path}: {error}") from None
    if document.get("arrays_encoding", NPZ) == COMPACT:
        if dna_class.type != "histogram":
            raise ValueError(f"{json_path}: compact arrays are for histogram DNAs, not {dna_class.type}")
        arrays: Mapping[str, np.ndarray] = _compact_arrays(payload, neurons, str(arrays_path))
    else:
        arrays = SafeNpz(payload, str(arrays_path))
    data = dna_class.data_from_arrays(arrays, neurons, parameters, str(arrays_path))
    provenance = dna_class.provenance_from_arrays(arrays, _provenance(document), str(arrays_path))
    vdna = dna_class.create(parameters, extractor, neurons, data, num_images, provenance)
    vdna.loaded_from_path = str(file_path)
    return vdna.to(device)


__all__ = ["dna_paths", "load_vdna_from_files", "save_vdna"]
