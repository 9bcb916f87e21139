"""Shared fixtures: real images from ../shared/data (skipped where absent, failed if VDNA_REQUIRE_SHARED=1),
images from scikit-image, and test extractors registered only while a test or module uses them.

torch is imported only by the fixtures that use it, so that pytest runs of small generated test files start quickly.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import numpy as np
import pytest

from vdna.extractors import registered_extractor

if TYPE_CHECKING:
    from vdna import VDNAProcessor
    from vdna.extractors.registry import ExtractorFactory

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VDNA_SHARED", REPO.parent / "shared"))
DATA = SHARED / "data"
FIXTURES = SHARED / "fixtures" / "vdna-0.1.1"
REQUIRE_SHARED = "VDNA_REQUIRE_SHARED"
"""Set it to 1 (in CI) to fail, not skip, the tests whose shared data, browser or vdna 0.1.1 is absent."""


def missing(message: str) -> NoReturn:
    """Skip the test for want of what ``message`` names, or fail it where ``VDNA_REQUIRE_SHARED=1``."""
    if os.environ.get(REQUIRE_SHARED, "") not in ("", "0"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _require(path: Path) -> Path:
    if not path.exists():
        missing(f"{path} is absent: these tests need the shared real images beside the repository")
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``../shared/data``: Urban100, BSD100, Sun-Hays 80, Set14 and an ImageNet sample."""
    return _require(DATA)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """DNA files written by vdna 0.1.1, with the distances it computes between them."""
    return _require(FIXTURES)


@contextmanager
def _registering() -> Iterator[Callable[[str, ExtractorFactory], ExtractorFactory]]:
    """``register(name, factory)``, whose extractors are all unregistered when the ``with`` block ends."""
    with ExitStack() as stack:
        yield lambda name, factory: stack.enter_context(registered_extractor(name, factory))


@pytest.fixture()
def registered() -> Iterator[Callable[[str, ExtractorFactory], ExtractorFactory]]:
    """``registered(name, factory)`` registers a test extractor until the test ends."""
    with _registering() as register:
        yield register


@pytest.fixture(scope="module")
def registered_in_module() -> Iterator[Callable[[str, ExtractorFactory], ExtractorFactory]]:
    """``registered_in_module(name, factory)`` registers a test extractor until the test module ends."""
    with _registering() as register:
        yield register


@pytest.fixture(scope="session")
def processor() -> VDNAProcessor:
    """One processor for the session, so the default extractor is built once."""
    from vdna import VDNAProcessor

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


@pytest.fixture(scope="session", autouse=True)
def cache_of_its_own(tmp_path_factory) -> Iterator[Path]:
    """A cache folder of the suite's own, so that runs take their extractors' recorded plans, not plans measured
    on this machine (``vdna plan --save``), and nothing is written to the user's cache."""
    before = os.environ.get("VDNA_CACHE_DIR")
    os.environ["VDNA_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield Path(os.environ["VDNA_CACHE_DIR"])
    if before is None:
        del os.environ["VDNA_CACHE_DIR"]
    else:
        os.environ["VDNA_CACHE_DIR"] = before


@pytest.fixture()
def one_torch_thread():
    """torch on one thread for the test, then back to what it was."""
    import torch

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
