"""Where images come from: folders, files, index files, zip archives, arrays, PIL images, datasets.

A source is resolved once into an :class:`ImageCollection`: a list of display names plus a way to
load the raw item behind each name (a path, the bytes of an archive member, an array, a PIL
image, ...). Decoding the raw item into pixels is the job of :mod:`vdna.preprocess`.
"""

from __future__ import annotations

import os
import random
import tarfile
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp", "gif"})
"""File extensions (compared case-insensitively) that count as images in folders and archives."""

_MISSING_SHOWN = 20


def is_image_name(name: str | os.PathLike) -> bool:
    """Whether a file name has one of :data:`IMAGE_EXTENSIONS` (case-insensitive)."""
    suffix = os.path.splitext(os.fsdecode(name))[1]
    return suffix[1:].lower() in IMAGE_EXTENSIONS


class ImageCollection:
    """A finite, indexable set of images: ``names[i]`` describes image ``i``, ``load(i)`` fetches it."""

    def __init__(self, names: Sequence[str], description: str):
        self.names = list(names)
        self.description = description

    def __len__(self) -> int:
        return len(self.names)

    def load(self, index: int) -> Any:
        """The raw item behind ``names[index]``, for :func:`vdna.preprocess.decode_image`."""
        raise NotImplementedError

    def subset(self, indices: Sequence[int]) -> ImageCollection:
        """The images at ``indices``, in that order."""
        return _Subset(self, indices)


class _Subset(ImageCollection):
    def __init__(self, parent: ImageCollection, indices: Sequence[int]):
        super().__init__([parent.names[i] for i in indices], parent.description)
        self._parent = parent
        self._indices = list(indices)

    def load(self, index: int) -> Any:
        return self._parent.load(self._indices[index])


class ItemList(ImageCollection):
    """Items held in a list: paths, arrays, PIL images or tensors."""

    def __init__(self, items: Sequence[Any], names: Sequence[str], description: str):
        super().__init__(names, description)
        self._items = list(items)

    def load(self, index: int) -> Any:
        return self._items[index]


class ZipMembers(ImageCollection):
    """Image members of a zip archive, read in place (nothing is extracted to disk)."""

    def __init__(self, archive: Path, members: Sequence[str]):
        super().__init__([f"{archive}:{member}" for member in members], str(archive))
        self.archive = archive
        self.members = list(members)
        self._handle: zipfile.ZipFile | None = None
        self._handle_pid: int | None = None

    def load(self, index: int) -> bytes:
        # A zip handle must not be shared across forked DataLoader workers.
        if self._handle is None or self._handle_pid != os.getpid():
            self._handle = zipfile.ZipFile(self.archive)
            self._handle_pid = os.getpid()
        return self._handle.read(self.members[index])

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_handle"] = None
        state["_handle_pid"] = None
        return state


class TarMembers(ImageCollection):
    """Image members of tar shards (WebDataset layout: ``key.jpg``, ``key.png``, ...), read in place.

    Shards are local paths or fsspec URLs (``s3://``, ``gs://``, ``https://``, ``memory://``, ...,
    with the matching fsspec backend installed); members are read without extracting anything.
    """

    def __init__(self, shards: Sequence[str]):
        self.shards = [str(shard) for shard in shards]
        self.members: list[tuple[int, str]] = []
        for number, shard in enumerate(self.shards):
            with _open_tar(shard) as archive:
                names = sorted(member.name for member in archive.getmembers() if member.isfile() and is_image_name(member.name))
            self.members.extend((number, name) for name in names)
        super().__init__([f"{self.shards[n]}:{name}" for n, name in self.members], ", ".join(self.shards))
        self._open: dict[int, Any] = {}
        self._open_pid: int | None = None

    def load(self, index: int) -> bytes:
        if self._open_pid != os.getpid():  # tar handles must not be shared across worker processes
            self._open, self._open_pid = {}, os.getpid()
        number, name = self.members[index]
        if number not in self._open:
            self._open[number] = _open_tar(self.shards[number])
        member = self._open[number].extractfile(name)
        if member is None:
            raise ValueError(f"{self.names[index]}: not a regular file in the archive")
        return member.read()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_open"], state["_open_pid"] = {}, None
        return state


def _open_tar(shard: str) -> tarfile.TarFile:
    try:
        if "://" in shard:
            import fsspec

            return tarfile.open(fileobj=fsspec.open(shard, "rb").open(), mode="r:*")
        return tarfile.open(shard, mode="r:*")
    except (tarfile.TarError, OSError) as error:
        raise ValueError(f"{shard}: not a readable tar archive ({error})") from None


def _is_tar_name(name: str | os.PathLike) -> bool:
    return os.fspath(name).lower().endswith((".tar", ".tar.gz", ".tgz"))


class DatasetItems(ImageCollection):
    """Items of a map-style dataset (anything with ``__len__`` and ``__getitem__``)."""

    def __init__(self, dataset: Any, description: str):
        super().__init__([f"{description}[{i}]" for i in range(len(dataset))], description)
        self._dataset = dataset

    def load(self, index: int) -> Any:
        return self._dataset[index]


class ItemStream:
    """An iterable of unknown length, read once, in order."""

    def __init__(self, iterable: Iterable[Any], limit: int | None, description: str):
        self._iterable = iterable
        self.limit = limit
        self.description = description

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        for index, item in enumerate(self._iterable):
            if self.limit is not None and index >= self.limit:
                return
            yield f"{self.description}[{index}]", item


def list_image_files(folder: Path) -> list[Path]:
    """All image files under ``folder``, recursively, following symlinks but never looping, sorted."""
    found: list[Path] = []
    visited: set[tuple[int, int]] = set()
    def fail(error: OSError) -> None:
        raise OSError(f"cannot list {error.filename}: {error.strerror}") from error

    for root, dirs, files in os.walk(folder, onerror=fail, followlinks=True):
        stat = os.stat(root)
        key = (stat.st_dev, stat.st_ino)
        if key in visited:
            dirs[:] = []
            continue
        visited.add(key)
        dirs.sort()
        found.extend(Path(root) / name for name in files if is_image_name(name))
    return sorted(found, key=lambda path: os.fsencode(path))


def read_index_file(index: Path) -> list[Path]:
    """Paths listed in a ``.txt`` index: one a line, relative to the index's folder; ``#`` comments."""
    paths = []
    with open(index, encoding="utf-8") as lines:
        for line in lines:
            entry = line.strip()
            if entry and not entry.startswith("#"):
                path = Path(entry)
                paths.append(path if path.is_absolute() else index.parent / path)
    return paths


def _check_files_exist(paths: Sequence[Path], origin: str) -> None:
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        shown = ", ".join(missing[:_MISSING_SHOWN])
        more = f" and {len(missing) - _MISSING_SHOWN} more" if len(missing) > _MISSING_SHOWN else ""
        raise FileNotFoundError(f"{origin} names {len(missing)} missing file(s): {shown}{more}")


def _zip_image_members(archive: Path) -> list[str]:
    try:
        with zipfile.ZipFile(archive) as handle:
            names = [info.filename for info in handle.infolist() if not info.is_dir()]
    except zipfile.BadZipFile as error:
        raise ValueError(f"{archive}: not a readable zip archive ({error})") from None
    return sorted({name for name in names if is_image_name(name)})


def _path_collection(path: Path) -> ImageCollection:
    if path.is_dir():
        files = list_image_files(path)
        shards = sorted(str(child) for child in path.iterdir() if _is_tar_name(child.name))
        if not files and shards:
            return TarMembers(shards)
        return ItemList(files, [str(f) for f in files], str(path))
    if not path.exists():
        raise FileNotFoundError(f"source {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".txt":
        files = read_index_file(path)
        _check_files_exist(files, f"index {path}")
        return ItemList(files, [str(f) for f in files], str(path))
    if suffix == ".zip":
        return ZipMembers(path, _zip_image_members(path))
    if _is_tar_name(path):
        return TarMembers([str(path)])
    if is_image_name(path):
        return ItemList([path], [str(path)], str(path))
    raise ValueError(
        f"source {str(path)!r} is not a folder, an image ({', '.join(sorted(IMAGE_EXTENSIONS))}), "
        "a .txt index, a .zip archive or a .tar shard"
    )


def _sequence_collection(items: Sequence[Any]) -> ImageCollection:
    if not items:
        raise ValueError("no images found in an empty list")
    if all(isinstance(item, (str, os.PathLike)) for item in items):
        paths = [Path(item) for item in items]
        _check_files_exist(paths, "the list of images")
        return ItemList(paths, [str(p) for p in paths], "list of paths")
    names = [str(item) if isinstance(item, (str, os.PathLike)) else f"image[{i}]" for i, item in enumerate(items)]
    return ItemList(items, names, "list of images")


def _is_map_dataset(source: Any) -> bool:
    return hasattr(source, "__getitem__") and hasattr(source, "__len__")


def open_source(
    source: Any, num_images: int = -1, shuffle_files: bool = False, seed: int = 0
) -> ImageCollection | ItemStream:
    """Resolve ``source`` into the images to process.

    ``num_images`` (-1: all) keeps the first images, or a random subset drawn with ``seed`` when
    ``shuffle_files`` is set, as vdna 0.1.1 did. Raises ``ValueError`` for an empty source.
    """
    if num_images == 0 or num_images < -1:
        raise ValueError(f"num_images must be -1 (all images) or a positive count, got {num_images}")
    if isinstance(source, str) and "://" in source:
        collection: ImageCollection | ItemStream = TarMembers([source])
    elif isinstance(source, (str, os.PathLike)):
        collection = _path_collection(Path(source))
    elif isinstance(source, (list, tuple)) and source and all(isinstance(s, (str, os.PathLike)) and _is_tar_name(s) for s in source):
        collection = TarMembers([os.fspath(s) for s in source])
    elif isinstance(source, (list, tuple)):
        collection = _sequence_collection(source)
    elif _is_map_dataset(source):
        collection = DatasetItems(source, type(source).__name__)
    elif isinstance(source, Iterable):
        if shuffle_files:
            raise ValueError("shuffle_files needs a source of known length; this iterable has none")
        return ItemStream(source, num_images if num_images > 0 else None, type(source).__name__)
    else:
        raise TypeError(
            f"unsupported source of type {type(source).__name__}: expected a path, a list of paths, "
            "arrays or PIL images, a dataset or an iterable"
        )
    if len(collection) == 0:
        raise ValueError(f"no images found in {collection.description}")
    if 0 < num_images < len(collection):
        order = list(range(len(collection)))
        if shuffle_files:
            random.Random(seed).shuffle(order)
        collection = collection.subset(order[:num_images])
    return collection


__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageCollection",
    "ItemStream",
    "TarMembers",
    "ZipMembers",
    "list_image_files",
    "open_source",
]
