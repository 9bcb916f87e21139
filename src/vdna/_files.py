"""Small file helpers shared by every writer and reader: atomic writes and JSON objects."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def writable_file(path: str | os.PathLike) -> Path:
    """``path`` as a file that can be written, checked before any work: a path that is not a folder, no part of
    which is a file, in a folder that is writable or can be made; ``ValueError`` saying which is not so."""
    text = os.fspath(path)
    if not text:
        raise ValueError("a file path is needed, got an empty one")
    target = Path(text)
    if target.is_dir():
        raise ValueError(f"{target} is a folder; give the path of a file")
    if target.name in ("", ".", ".."):
        raise ValueError(f"{text!r} names no file")
    existing = target.absolute().parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{existing} is a file, so {target} cannot be written")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise ValueError(f"{target} cannot be written: {existing} is not a writable folder ({error.strerror})") from None
    return target


def json_object(data: bytes, origin: str | os.PathLike, what: str) -> dict[str, Any]:
    """The JSON object in ``data``; ``ValueError`` naming ``origin`` and ``what`` it should be otherwise."""
    try:
        document = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{origin}: not a valid JSON {what} ({error})") from None
    if not isinstance(document, dict):
        raise ValueError(f"{origin}: a {what} must hold a JSON object")
    return document


__all__ = [
    "atomic_write_bytes",
    "json_object",
    "writable_file",
]
