"""DNA files: ``NAME.json`` (metadata) + ``NAME.npz`` (arrays), in vdna 0.1.1's format.

vdna 0.1.1 loads our files unchanged and we load its files. Our additions are extra top-level
JSON keys (format version, library version, sha256 of weights, ranges and npz, images used and
skipped). Files are written atomically under a lock, so concurrent writers leave one complete DNA;
loading validates everything and never unpickles.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ._files import atomic_write_bytes, json_object
from ._version import __version__
from .dna import VDNA, Provenance
from .distributions import dna_class_for_type

FORMAT_VERSION = 1
MAX_LISTED_IMAGES = 10_000
"""Image names are stored in the metadata up to this many; beyond, only their count and sha256."""

_DATA_SETTINGS_KEYS = (
    "source",
    "crop_to_square_pre_resize",
    "resize_mode",
    "custom_fn_resize",
    "custom_np_image_tranform",
    "custom_pil_image_tranform",
    "shuffle_files",
    "num_images",
)
_EXTRACTION_SETTINGS_KEYS = (
    "average_feats_spatially",
    "accumulate_spatial_feats_in_hist",
    "accumulate_sample_feats_in_hist",
    "keep_only_min_max",
    "normalise_feats",
    "range_scale_for_norm_params",
    "hist_range",
    "hist_nb_bins",
    "hist_channel_batch_size",
    "num_workers",
    "batch_size",
    "device",
    "description",
    "verbose",
    "n_sample_images",
    "sample_images_folder",
    "seed",
    "hub_repo",
)


def dna_paths(file_path: str | os.PathLike) -> tuple[Path, Path]:
    """``(json, npz)`` paths of a DNA named ``file_path`` (any suffix is replaced, as vdna 0.1.1)."""
    path = Path(file_path)
    return path.with_suffix(".json"), path.with_suffix(".npz")


@contextlib.contextmanager
def _folder_lock(folder: Path, exclusive: bool) -> Iterator[None]:
    """Serialise DNA writers (and readers against writers) of one folder, where flock exists."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(descriptor)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    return str(value)


def _names_digest(names: list[str]) -> str:
    joined = "\n".join(names).encode("utf-8", "surrogateescape")
    return hashlib.sha256(joined).hexdigest()


def metadata_document(vdna: VDNA, npz_sha256: str) -> dict[str, Any]:
    """The JSON metadata of a DNA: vdna 0.1.1's keys first, then ours."""
    provenance = vdna.provenance
    data_settings = {key: provenance.data_settings[key] for key in _DATA_SETTINGS_KEYS if key in provenance.data_settings}
    extraction_settings = {
        key: provenance.extraction_settings[key]
        for key in _EXTRACTION_SETTINGS_KEYS
        if key in provenance.extraction_settings
    }
    images = provenance.images
    document = {
        "time_of_compute": provenance.time_of_compute,
        "vdna_version": provenance.library_version,
        "distribution": vdna.distribution_metadata(),
        "type": vdna.type,
        "name": vdna.name,
        "data_settings": _jsonable(data_settings),
        "extraction_settings": _jsonable(extraction_settings),
        "num_images": vdna.num_images,
        "feature_extractor_name": vdna.feature_extractor_name,
        "neurons_list": dict(vdna.neurons_list),
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "weights_sha256": provenance.weights_sha256,
        "ranges_sha256": provenance.ranges_sha256,
        "images_used_count": len(images),
        "images_used_sha256": _names_digest(images),
        "images_used": images if len(images) <= MAX_LISTED_IMAGES else None,
        "images_skipped": provenance.skipped,
        "settings": _jsonable({**provenance.data_settings, **provenance.extraction_settings}),
        "npz_sha256": npz_sha256,
    }
    return document


def _encode_json(document: dict[str, Any]) -> bytes:
    # ensure_ascii keeps undecodable (surrogate-escaped) file names representable.
    return (json.dumps(document, indent=4, ensure_ascii=True) + "\n").encode("ascii")


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """An ``np.savez_compressed`` archive of ``arrays``, in memory."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def save_vdna(vdna: VDNA, file_path: str | os.PathLike) -> tuple[Path, Path]:
    """Write a DNA as ``.json`` + ``.npz``; returns both paths."""
    json_path, npz_path = dna_paths(file_path)
    payload = npz_bytes(vdna.to_arrays())
    metadata = _encode_json(metadata_document(vdna, hashlib.sha256(payload).hexdigest()))
    json_path.parent.mkdir(parents=True, exist_ok=True)
    with _folder_lock(json_path.parent, exclusive=True):
        atomic_write_bytes(npz_path, payload)
        atomic_write_bytes(json_path, metadata)
    return json_path, npz_path


class SafeNpz(Mapping):
    """Read-only view of an npz archive that checks each array's header before loading it and never unpickles."""

    def __init__(self, data: bytes, origin: str):
        self.origin = origin
        try:
            self._zip = zipfile.ZipFile(io.BytesIO(data))
            members = self._zip.namelist()
        except (zipfile.BadZipFile, OSError, ValueError) as error:
            raise ValueError(f"{origin}: not a valid npz archive ({error})") from None
        self._members = {name[:-4]: name for name in members if name.endswith(".npy")}

    def __iter__(self) -> Iterator[str]:
        return iter(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def _open(self, key: str):
        try:
            return self._zip.open(self._members[key])
        except KeyError:
            raise KeyError(key) from None

    def peek(self, key: str) -> tuple[tuple[int, ...], np.dtype]:
        """Shape and dtype of an array, read from its header only."""
        try:
            with self._open(key) as stream:
                version = np.lib.format.read_magic(stream)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
                else:
                    raise ValueError(f"unsupported npy format version {version}")
        except KeyError:
            raise
        except Exception as error:
            raise ValueError(f"{self.origin}: array {key!r} has an unreadable header ({error})") from None
        if dtype.hasobject:
            raise ValueError(f"{self.origin}: array {key!r} holds Python objects, which are never loaded")
        return tuple(shape), dtype

    def __getitem__(self, key: str) -> np.ndarray:
        self.peek(key)
        try:
            with self._open(key) as stream:
                return np.lib.format.read_array(stream, allow_pickle=False)
        except KeyError:
            raise
        except Exception as error:
            raise ValueError(f"{self.origin}: array {key!r} cannot be read ({error})") from None


def _require_key(document: dict, key: str, kind: type | tuple[type, ...], origin: Path) -> Any:
    if key not in document:
        raise ValueError(f"{origin}: metadata has no {key!r} entry")
    value = document[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise ValueError(f"{origin}: metadata entry {key!r} has the wrong type ({type(value).__name__})")
    return value


def _neurons_list(document: dict, origin: Path) -> dict[str, int]:
    neurons = _require_key(document, "neurons_list", dict, origin)
    if not neurons:
        raise ValueError(f"{origin}: 'neurons_list' names no layers")
    for layer, count in neurons.items():
        if not isinstance(count, int) or isinstance(count, bool) or count <= 0:
            raise ValueError(f"{origin}: layer {layer!r} has an invalid neuron count {count!r}")
    return neurons


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
        data_settings={k: settings[k] for k in _DATA_SETTINGS_KEYS if k in settings},
        extraction_settings={k: v for k, v in settings.items() if k not in _DATA_SETTINGS_KEYS},
        time_of_compute=str(document.get("time_of_compute", "")),
        library_version=str(document.get("vdna_version", "")),
    )


def _read_pair(json_path: Path, npz_path: Path) -> tuple[bytes, bytes]:
    for path in (json_path, npz_path):
        if not path.is_file():
            raise FileNotFoundError(f"DNA file {path} does not exist")
    with _folder_lock(json_path.parent, exclusive=False):
        return json_path.read_bytes(), npz_path.read_bytes()


def load_vdna_from_files(file_path: str | os.PathLike, device: str = "cpu") -> VDNA:
    """Load a DNA saved by this library or by vdna 0.1.1 (``file_path`` with or without suffix)."""
    json_path, npz_path = dna_paths(file_path)
    metadata, payload = _read_pair(json_path, npz_path)
    document = json_object(metadata, json_path, "DNA metadata file")
    expected_sha = document.get("npz_sha256")
    if isinstance(expected_sha, str) and hashlib.sha256(payload).hexdigest() != expected_sha:
        raise ValueError(f"{npz_path}: contents do not match the sha256 recorded in {json_path.name}")
    dna_class = dna_class_for_type(_require_key(document, "type", str, json_path))
    name = _require_key(document, "name", str, json_path)
    distribution = document.get("distribution") or {}
    if not isinstance(distribution, dict):
        raise ValueError(f"{json_path}: metadata entry 'distribution' must be an object")
    try:
        parameters = dna_class.from_metadata(distribution, name)
    except ValueError as error:
        raise ValueError(f"{json_path}: {error}") from None
    neurons = _neurons_list(document, json_path)
    num_images = _require_key(document, "num_images", int, json_path)
    if num_images < 0:
        raise ValueError(f"{json_path}: 'num_images' is negative")
    extractor = _require_key(document, "feature_extractor_name", str, json_path)
    data = dna_class.data_from_arrays(SafeNpz(payload, str(npz_path)), neurons, parameters, str(npz_path))
    vdna = dna_class.create(parameters, extractor, neurons, data, num_images, _provenance(document))
    vdna.loaded_from_path = str(file_path)
    return vdna.to(device)
