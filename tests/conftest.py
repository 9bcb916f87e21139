"""Shared fixtures: real images from ../shared/data (skipped where absent) and from scikit-image."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from vdna import VDNAProcessor

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VDNA_SHARED", REPO.parent / "shared"))
DATA = SHARED / "data"
FIXTURES = SHARED / "fixtures" / "vdna-0.1.1"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent: these tests need the shared real images beside the repository")
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``../shared/data``: Urban100, BSD100, Sun-Hays 80, Set14 and an ImageNet sample."""
    return _require(DATA)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """DNA files written by vdna 0.1.1, with the distances it computes between them."""
    return _require(FIXTURES)


@pytest.fixture(scope="session")
def processor() -> VDNAProcessor:
    """One processor for the session, so the default extractor is built once."""
    return VDNAProcessor()


@pytest.fixture(scope="module")
def dna_of(processor):
    """``processor.make_vdna(source, verbose=False, **options)``, made once per test module for each source and options."""
    made = {}

    def make(source, **options):
        key = (str(source), tuple(sorted(options.items())))
        if key not in made:
            made[key] = processor.make_vdna(source, verbose=False, **options)
        return made[key]

    return make


@pytest.fixture()
def one_torch_thread():
    """torch on one thread for the test, then back to what it was."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def skimage_photos() -> dict[str, np.ndarray]:
    """Colour photographs that ship inside scikit-image."""
    import skimage.data

    return {name: getattr(skimage.data, name)() for name in ("astronaut", "chelsea", "coffee", "rocket", "cat")}


def image_files(folder: Path, count: int) -> list[Path]:
    """The first ``count`` images of a folder, sorted."""
    return sorted(folder.iterdir())[:count]
