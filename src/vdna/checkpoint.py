"""Resumable runs: the state of a run, saved atomically every N images.

A checkpoint is a small JSON file naming the run it belongs to, the positions of the images done
(used or skipped) and the accumulator's state (:meth:`vdna.distributions.Accumulator.state_tensors`,
as its states are declared), saved beside it in an ``.npz`` file under a new name each time; the
JSON is replaced last, so a run killed at any moment leaves a consistent checkpoint, and a resumed
run continues from exactly the state it stopped in.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._files import atomic_write_bytes, json_object
from .distributions import Accumulator

FORMAT = "vdna-checkpoint"
VERSION = 2


@dataclass(frozen=True)
class CheckpointState:
    """What a checkpoint holds: the accumulator's state of ``num_images`` images, and the run's record so far."""

    tensors: dict[str, torch.Tensor]
    num_images: int
    used: list[str]
    skipped: list[dict[str, str]]
    done: list[int]


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
        if document.get("version") != VERSION:
            raise ValueError(f"{self.path} was written by another version of vdna; delete it to start again")
        return document

    def progress(self) -> dict[str, int] | None:
        """``{"images": images in the saved state, "done": images done (used or skipped)}``, or None without a checkpoint."""
        document = self._document()
        return None if document is None else {"images": document["images"], "done": len(document["done"])}

    def load(self) -> CheckpointState | None:
        """The saved state, or None without a checkpoint; ``ValueError`` if it is another run's."""
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
        with np.load(self.path.parent / document["state"], allow_pickle=False) as arrays:
            tensors = {key: torch.from_numpy(arrays[key].copy()) for key in arrays.files}
        return CheckpointState(tensors, document["images"], list(document["used"]), list(document["skipped"]),
                               list(document["done"]))

    def save(self, accumulator: Accumulator, used: list[str], skipped: list[dict[str, str]], done: list[int]) -> None:
        """Write the state of the run; the previous state's file is removed afterwards."""
        previous = self._document()
        generation = previous["generation"] + 1 if previous else 1
        name = f"{self.path.name}.state{generation}.npz"  # unique to this state
        buffer = io.BytesIO()
        np.savez(buffer, **{key: tensor.numpy() for key, tensor in accumulator.state_tensors().items()})
        atomic_write_bytes(self.path.parent / name, buffer.getvalue())
        document = {
            "format": FORMAT,
            "version": VERSION,
            "identity": self.identity,
            "generation": generation,
            "state": name,
            "images": accumulator.num_images,
            "used": used,
            "skipped": skipped,
            "done": done,
        }
        atomic_write_bytes(self.path, json.dumps(document).encode())
        if previous:
            self._remove_state(previous["state"])

    def _remove_state(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.path.parent / name).unlink()

    def remove(self) -> None:
        """Delete the checkpoint and its state (once the run has finished)."""
        document = self._document()
        if document is not None:
            self._remove_state(document["state"])
            self.path.unlink()


__all__ = ["Checkpoint", "CheckpointState"]
