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
]
