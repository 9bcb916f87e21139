"""Where an extractor's files (weights, activation ranges) come from, resolved in one place.

Order: an explicit path; the local cache (``VDNA_CACHE_DIR``, default the user's cache folder,
e.g. ``~/.cache/vdna``); a download (Hugging Face Hub files with ``huggingface_hub``, URLs through
``torch.hub``) checked against its pinned sha256. Where no full sha256 is published, a URL's
torch.hub-style name carries a prefix of it, which is checked; otherwise the sha256 seen at the
first download is recorded beside the cached file and every later use is checked against it.
Offline, or when a download fails, the error names the file, where to get it and where to put it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..ranges import ActivationRanges, load_activation_ranges

logger = logging.getLogger(__name__)

HUB_REPO = "bramtoula/visual-dna-models"
"""The original project's Hub repository of the paper's weights and activation ranges."""


@dataclass(frozen=True)
class RemoteFile:
    """A file an extractor needs: on the Hub (``repo`` + ``filename``) or at ``url``, with what is known of its sha256."""

    cache_name: str
    repo: str | None = None
    filename: str | None = None
    url: str | None = None
    sha256: str | None = None
    sha256_prefix: str | None = None

    @property
    def where(self) -> str:
        """Where to download the file by hand."""
        if self.url:
            return self.url
        return f"https://huggingface.co/{self.repo}/resolve/main/{self.filename}"


def cache_dir() -> Path:
    """``VDNA_CACHE_DIR``, or the user's cache folder for vdna."""
    configured = os.environ.get("VDNA_CACHE_DIR")
    if configured:
        return Path(configured)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("vdna"))


def sha256_of_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download_from_hub(remote: RemoteFile, target: Path) -> None:
    from huggingface_hub import hf_hub_download

    downloaded = hf_hub_download(repo_id=remote.repo, filename=remote.filename)
    shutil.copyfile(downloaded, target)


def _download_url(remote: RemoteFile, target: Path) -> None:
    import torch.hub

    torch.hub.download_url_to_file(remote.url, str(target), progress=False)


DOWNLOAD: dict[str, Callable[[RemoteFile, Path], None]] = {"hub": _download_from_hub, "url": _download_url}
"""The download functions by kind (replaceable, e.g. to serve files from a mirror)."""


def _check(path: Path, remote: RemoteFile, recorded: str | None) -> str:
    sha = sha256_of_file(path)
    expected = remote.sha256 or recorded
    if expected and sha != expected:
        raise ValueError(f"{path}: sha256 {sha} does not match the expected {expected} for {remote.cache_name} "
                         f"(from {remote.where}); delete the file to download it again")
    if remote.sha256_prefix and not sha.startswith(remote.sha256_prefix):
        raise ValueError(f"{path}: sha256 {sha} does not start with {remote.sha256_prefix}, as the name of "
                         f"{remote.where} says; delete the file to download it again")
    return sha


def resolve_file(remote: RemoteFile, explicit: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The local path of ``remote`` and its sha256: ``explicit``, else the cache, else a checked download."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise FileNotFoundError(f"weights file {path} does not exist")
        return path, sha256_of_file(path)
    target = cache_dir() / remote.cache_name
    record = target.with_name(target.name + ".sha256")
    recorded = record.read_text().strip() if record.is_file() else None
    if target.is_file():
        return target, _check(target, remote, recorded)
    kind = "url" if remote.url else "hub"
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(handle)
    try:
        DOWNLOAD[kind](remote, Path(partial))
        sha = _check(Path(partial), remote, None)
    except ValueError:
        os.unlink(partial)
        raise
    except Exception as error:
        os.unlink(partial)
        raise FileNotFoundError(
            f"{remote.cache_name} is not in the cache and could not be downloaded ({type(error).__name__}: {error}). "
            f"Download it from {remote.where} and put it at {target} (or pass its path as weights=), "
            f"or set VDNA_CACHE_DIR to a folder holding it"
        ) from None
    os.replace(partial, target)
    if not remote.sha256:
        record.write_text(sha + "\n")
        logger.info("%s: no published sha256; recorded %s for later checks", remote.cache_name, sha)
    return target, sha


def packaged_ranges(name: str) -> ActivationRanges | None:
    """The activation ranges shipped with the package for extractor ``name`` (``data/<name>.ranges.json``), if any."""
    resource = resources.files("vdna.extractors").joinpath("data", f"{name}.ranges.json")
    if not resource.is_file():
        return None
    with resources.as_file(resource) as path:
        return load_activation_ranges(path, name)


__all__ = [
    "DOWNLOAD",
    "HUB_REPO",
    "RemoteFile",
    "cache_dir",
    "packaged_ranges",
    "resolve_file",
    "sha256_of_file",
]
