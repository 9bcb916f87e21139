"""Resumable runs: the state of a run, saved atomically every N images.

A checkpoint is a small JSON file naming the run it belongs to, the positions of the images done
(used or skipped) and a DNA of the images used so far, saved beside it under a new name each
time; the JSON is replaced last, so a run killed at any moment leaves a consistent checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from ._files import atomic_write_bytes, json_object
from .dna import VDNA
from .io import dna_paths, load_vdna_from_files, save_vdna

FORMAT = "vdna-checkpoint"


class Checkpoint:
    """The checkpoint file at ``path`` for a run described by ``identity`` (settings that must match)."""

    def __init__(self, path: str | os.PathLike, identity: dict[str, Any]):
        self.path = Path(path)
        self.identity = json.loads(json.dumps(identity))  # as it reads back from the file

    def _document(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        document = json_object(self.path.read_bytes(), self.path, "checkpoint file")
        if document.get("format") != FORMAT:
            raise ValueError(f"{self.path}: not a checkpoint file")
        return document

    def load(self) -> tuple[VDNA, list[str], list[dict[str, str]], list[int]] | None:
        """``(DNA so far, images used, images skipped, positions done)``, or None without a checkpoint."""
        document = self._document()
        if document is None:
            return None
        stored = document.get("identity", {})
        differing = sorted(key for key in set(stored) | set(self.identity) if stored.get(key) != self.identity.get(key))
        if differing:
            raise ValueError(
                f"{self.path} is the checkpoint of a different run ({', '.join(differing)} differ); "
                "delete it to start again, or choose another checkpoint path"
            )
        vdna = load_vdna_from_files(self.path.parent / document["dna"])
        return vdna, list(document["used"]), list(document["skipped"]), list(document["done"])

    def save(self, vdna: VDNA, used: list[str], skipped: list[dict[str, str]], done: list[int]) -> None:
        """Write the state of the run; the previous state's DNA files are removed afterwards."""
        previous = self._document()
        generation = previous["generation"] + 1 if previous else 1
        name = f"{self.path.name}.state{generation}.dna"  # its .json and .npz are unique to this state
        save_vdna(vdna, self.path.parent / name)
        document = {
            "format": FORMAT,
            "identity": self.identity,
            "generation": generation,
            "dna": name,
            "used": used,
            "skipped": skipped,
            "done": done,
        }
        atomic_write_bytes(self.path, json.dumps(document).encode())
        if previous:
            self._remove_dna(previous["dna"])

    def _remove_dna(self, name: str) -> None:
        for path in dna_paths(self.path.parent / name):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def remove(self) -> None:
        """Delete the checkpoint and its DNA (once the run has finished)."""
        document = self._document()
        if document is not None:
            self._remove_dna(document["dna"])
            self.path.unlink()
