"""The DNA file format, written and read without torch: ``NAME.json`` (metadata) + ``NAME.npz`` or ``NAME.vdnz`` (arrays).

The format is vdna 0.1.1's: it loads our files unchanged and we load its files. Our additions are
extra top-level JSON keys (format version, library version, sha256 of weights, ranges and arrays,
images used and skipped). Files are written atomically under a folder lock, so concurrent writers
leave one complete DNA; reading checks the arrays against their recorded sha256 and never unpickles.
A DNA is written from what it says of itself (``to_arrays()``, ``distribution_metadata()``, its
provenance), so this module needs no DNA class; :mod:`vdna.io` turns files back into DNAs.
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

from ._files import atomic_write_bytes, json_object, writable_file
from ._version import __version__

FORMAT_VERSION = 1
NPZ = "npz"
COMPACT = "compact-1"
_COMPACT_MAGIC = b"VDNZ\x01"
_COMPACT_LEVEL = 12
MAX_LISTED_IMAGES = 10_000
"""Image names are stored in the metadata up to this many; beyond, only their count and sha256."""

DATA_SETTINGS_011: dict[str, Any] = {
    "source": "NotFilled",
    "crop_to_square_pre_resize": "none",
    "resize_mode": "clean",
    "custom_fn_resize": None,
    "custom_np_image_tranform": None,
    "custom_pil_image_tranform": None,
    "shuffle_files": True,
    "num_images": -1,
}
"""vdna 0.1.1's data settings, with its defaults."""
EXTRACTION_SETTINGS_011: dict[str, Any] = {
    "average_feats_spatially": False,
    "accumulate_spatial_feats_in_hist": False,
    "accumulate_sample_feats_in_hist": False,
    "keep_only_min_max": False,
    "normalise_feats": False,
    "range_scale_for_norm_params": 1.2,
    "hist_range": [-1.0, 1.0],
    "hist_nb_bins": 0,
    "hist_channel_batch_size": 10,
    "num_workers": 12,
    "batch_size": 64,
    "device": "cuda:0",
    "description": "",
    "verbose": True,
    "n_sample_images": 10,
    "sample_images_folder": "sample_images",
    "seed": 0,
    "hub_repo": "bramtoula/visual-dna-models",
}
"""vdna 0.1.1's extraction settings, with its defaults."""


def dna_paths(file_path: str | os.PathLike) -> tuple[Path, Path]:
    """``(json, npz)`` paths of a DNA named ``file_path`` (any suffix is replaced, as vdna 0.1.1)."""
    path = Path(file_path)
    if path.name in ("", ".", ".."):
        raise ValueError(f"{os.fspath(file_path)!r} names no DNA: give NAME, NAME.json, NAME.npz or NAME.vdnz")
    return path.with_suffix(".json"), path.with_suffix(".npz")


def saved_dna_paths(file_path: str | os.PathLike) -> tuple[Path, Path]:
    """:func:`dna_paths` of a DNA to read; ``ValueError`` if ``file_path`` is a folder."""
    if Path(file_path).is_dir():
        raise ValueError(f"{os.fspath(file_path)} is a folder, not a saved DNA (NAME, NAME.json, NAME.npz or NAME.vdnz)")
    return dna_paths(file_path)


@contextlib.contextmanager
def folder_lock(folder: Path, exclusive: bool) -> Iterator[None]:
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


def jsonable(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists, unknown objects their text)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    return str(value)


def _names_digest(names: list[str]) -> str:
    joined = "\n".join(names).encode("utf-8", "surrogateescape")
    return hashlib.sha256(joined).hexdigest()


def metadata_document(vdna: Any, arrays_sha256: str, encoding: str = NPZ) -> dict[str, Any]:
    """The JSON metadata of a DNA: vdna 0.1.1's keys first, then ours."""
    provenance = vdna.provenance
    data_settings = {key: provenance.data_settings[key] for key in DATA_SETTINGS_011 if key in provenance.data_settings}
    extraction_settings = {
        key: provenance.extraction_settings[key]
        for key in EXTRACTION_SETTINGS_011
        if key in provenance.extraction_settings
    }
    images = provenance.images
    document = {
        "time_of_compute": provenance.time_of_compute,
        "vdna_version": provenance.library_version,
        "distribution": vdna.distribution_metadata(),
        "type": vdna.type,
        "name": vdna.name,
        "data_settings": jsonable(data_settings),
        "extraction_settings": jsonable(extraction_settings),
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
        "settings": jsonable({**provenance.data_settings, **provenance.extraction_settings}),
        "arrays_encoding": encoding,
        "npz_sha256" if encoding == NPZ else "arrays_sha256": arrays_sha256,
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


def _zigzag(values: np.ndarray) -> np.ndarray:
    return ((values << 1) ^ (values >> 63)).view(np.uint64)


def _unzigzag(values: np.ndarray) -> np.ndarray:
    return (values >> np.uint64(1)).view(np.int64) ^ -(values & np.uint64(1)).view(np.int64)


def compact_histogram_bytes(counts: np.ndarray) -> bytes:
    """Lossless compact encoding of ``(neurons, bins)`` counts.

    Counts are delta-coded along the bins (neighbouring bins hold similar counts), zigzag-mapped
    to unsigned integers, split into byte planes holding only the bytes the largest value needs,
    and compressed with Zstandard.
    """
    import zstandard

    deltas = _zigzag(np.diff(counts.astype(np.int64), axis=1, prepend=0)).astype("<u8")
    planes = max(1, (int(deltas.max(initial=0)).bit_length() + 7) // 8)
    stacked = np.ascontiguousarray(deltas.reshape(-1, 1).view(np.uint8)[:, :planes].T)
    header = json.dumps({"shape": list(counts.shape), "planes": planes}).encode()
    body = zstandard.ZstdCompressor(level=_COMPACT_LEVEL).compress(stacked.tobytes())
    return _COMPACT_MAGIC + len(header).to_bytes(4, "little") + header + body


def histogram_from_compact_bytes(data: bytes, origin: str) -> np.ndarray:
    """The ``(neurons, bins)`` int64 counts of :func:`compact_histogram_bytes`; ``ValueError`` if malformed."""
    import zstandard

    if not data.startswith(_COMPACT_MAGIC) or len(data) < len(_COMPACT_MAGIC) + 4:
        raise ValueError(f"{origin}: not a compact DNA arrays file")
    start = len(_COMPACT_MAGIC) + 4
    size = int.from_bytes(data[len(_COMPACT_MAGIC) : start], "little")
    header = json_object(data[start : start + size], origin, "compact arrays header")
    shape, planes = header.get("shape"), header.get("planes")
    if (
        not isinstance(shape, list) or len(shape) != 2 or not all(isinstance(v, int) and v > 0 for v in shape)
        or not isinstance(planes, int) or not 1 <= planes <= 8
    ):
        raise ValueError(f"{origin}: invalid compact arrays header {header}")
    expected = shape[0] * shape[1] * planes
    try:
        raw = zstandard.ZstdDecompressor().decompress(data[start + size :], max_output_size=expected)
    except zstandard.ZstdError as error:
        raise ValueError(f"{origin}: compact arrays cannot be decompressed ({error})") from None
    if len(raw) != expected:
        raise ValueError(f"{origin}: compact arrays hold {len(raw)} bytes, the header announces {expected}")
    wide = np.zeros((shape[0] * shape[1], 8), dtype=np.uint8)
    wide[:, :planes] = np.frombuffer(raw, dtype=np.uint8).reshape(planes, -1).T
    return np.cumsum(_unzigzag(wide.view("<u8").reshape(shape).astype(np.uint64)), axis=1)


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


def read_dna_files(json_path: Path) -> tuple[dict[str, Any], Path, bytes]:
    """The metadata, the arrays file's path and its bytes, read together under the folder lock."""
    if json_path.is_dir():
        raise ValueError(f"{json_path} is a folder, not a saved DNA (NAME.json beside NAME.npz or NAME.vdnz)")
    if not json_path.is_file():
        raise FileNotFoundError(f"DNA file {json_path} does not exist")
    with folder_lock(json_path.parent, exclusive=False):
        document = json_object(json_path.read_bytes(), json_path, "DNA metadata file")
        encoding = document.get("arrays_encoding", NPZ)
        if encoding not in (NPZ, COMPACT):
            raise ValueError(f"{json_path}: unknown arrays encoding {encoding!r}")
        arrays_path = json_path.with_suffix(".npz" if encoding == NPZ else ".vdnz")
        if not arrays_path.is_file():
            raise FileNotFoundError(f"DNA file {arrays_path} does not exist")
        payload = arrays_path.read_bytes()
    expected_sha = document.get("npz_sha256" if encoding == NPZ else "arrays_sha256")
    if encoding == COMPACT and not isinstance(expected_sha, str):
        raise ValueError(f"{json_path.name} records no sha256 of its compact arrays ('arrays_sha256'), so {arrays_path} "
                         "cannot be checked")
    if isinstance(expected_sha, str) and hashlib.sha256(payload).hexdigest() != expected_sha:
        raise ValueError(f"{arrays_path}: contents do not match the sha256 recorded in {json_path.name}")
    return document, arrays_path, payload




def require_key(document: dict, key: str, kind: type | tuple[type, ...], origin: Path) -> Any:
    """``document[key]``, checked to be present and of type ``kind``; ``ValueError`` naming ``origin`` otherwise."""
    if key not in document:
        raise ValueError(f"{origin}: metadata has no {key!r} entry")
    value = document[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise ValueError(f"{origin}: metadata entry {key!r} has the wrong type ({type(value).__name__})")
    return value


def neurons_list(document: dict, origin: Path) -> dict[str, int]:
    """The metadata's ``neurons_list``, checked: layer names and positive neuron counts."""
    neurons = require_key(document, "neurons_list", dict, origin)
    if not neurons:
        raise ValueError(f"{origin}: 'neurons_list' names no layers")
    for layer, count in neurons.items():
        if not isinstance(count, int) or isinstance(count, bool) or count <= 0:
            raise ValueError(f"{origin}: layer {layer!r} has an invalid neuron count {count!r}")
    return neurons


def writable_dna(file_path: str | os.PathLike, compact: bool = False) -> tuple[Path, Path]:
    """The ``(json, arrays)`` paths a DNA saved as ``file_path`` is written to, checked writable (before any work)."""
    if not os.fspath(file_path):
        raise ValueError("a file path is needed, got an empty one")
    if Path(file_path).is_dir():
        raise ValueError(f"{os.fspath(file_path)} is a folder; give the path of a file: the DNA's name without suffix, "
                         f"e.g. {Path(file_path) / 'dna'}")
    json_path, arrays_path = dna_paths(file_path)
    arrays_path = json_path.with_suffix(".vdnz") if compact else arrays_path
    return writable_file(json_path), writable_file(arrays_path)


def write_dna_files(vdna: Any, file_path: str | os.PathLike, compact: bool = False) -> tuple[Path, Path]:
    """Write a DNA as ``.json`` + ``.npz`` (or ``.vdnz`` with ``compact=True``); returns both paths.

    The compact encoding is lossless and for histogram DNAs only; vdna 0.1.1 cannot read it.
    """
    json_path, arrays_path = writable_dna(file_path, compact)
    if compact:
        if vdna.type != "histogram":
            raise ValueError(f"the compact encoding is for histogram DNAs, this one is {vdna.type}")
        counts = np.concatenate([vdna.data[layer].cpu().numpy() for layer in vdna.neurons_list])
        payload, encoding, arrays_path = compact_histogram_bytes(counts), COMPACT, json_path.with_suffix(".vdnz")
    else:
        payload, encoding = npz_bytes(vdna.to_arrays()), NPZ
    metadata = _encode_json(metadata_document(vdna, hashlib.sha256(payload).hexdigest(), encoding))
    json_path.parent.mkdir(parents=True, exist_ok=True)
    with folder_lock(json_path.parent, exclusive=True):
        atomic_write_bytes(arrays_path, payload)
        atomic_write_bytes(json_path, metadata)
    return json_path, arrays_path


def checked_metadata(document: dict, origin: Path) -> dict[str, int]:
    """Check the entries every saved DNA's metadata holds; returns its checked ``neurons_list``."""
    for key, kind in (("type", str), ("name", str), ("num_images", int), ("feature_extractor_name", str)):
        require_key(document, key, kind, origin)
    if document["num_images"] < 0:
        raise ValueError(f"{origin}: 'num_images' is negative")
    return neurons_list(document, origin)


def read_metadata(file_path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of the DNA saved as ``file_path`` (with or without suffix), its arrays file checked against its sha256."""
    json_path = saved_dna_paths(file_path)[0]
    document, _, _ = read_dna_files(json_path)
    checked_metadata(document, json_path)
    return document


__all__ = [
    "COMPACT",
    "DATA_SETTINGS_011",
    "EXTRACTION_SETTINGS_011",
    "FORMAT_VERSION",
    "MAX_LISTED_IMAGES",
    "NPZ",
    "SafeNpz",
    "checked_metadata",
    "dna_paths",
    "histogram_from_compact_bytes",
    "jsonable",
    "read_dna_files",
    "read_metadata",
    "saved_dna_paths",
    "writable_dna",
    "write_dna_files",
]
