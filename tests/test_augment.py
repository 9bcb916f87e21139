"""The random transformations of appendix A.3."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vdna.apps.augment import OPERATIONS, random_augmentation


@pytest.fixture(scope="module")
def photo(data_dir):
    with Image.open(data_dir / "set14" / "img_001.jpg") as image:
        return image.convert("RGB")


def test_the_sixteen_operations_of_the_paper():
    assert len(OPERATIONS) == 16


@pytest.mark.parametrize("name", sorted(set(OPERATIONS) - {"identity"}))
def test_each_operation_changes_the_image_and_keeps_its_size(photo, name):
    changed = OPERATIONS[name](photo, np.random.default_rng(0))
    assert changed.size == photo.size and changed.mode == "RGB"
    assert np.abs(np.asarray(changed, dtype=np.int16) - np.asarray(photo, dtype=np.int16)).mean() > 0.5


def test_identity_and_magnitudes(photo):
    assert OPERATIONS["identity"](photo, np.random.default_rng(0)) is photo
    pixels = np.asarray(photo, dtype=np.int16)
    salted = np.asarray(OPERATIONS["salt_and_pepper"](photo, np.random.default_rng(1)), dtype=np.int16)
    fraction = (np.abs(salted - pixels).sum(axis=2) > 0).mean()
    assert 0.015 < fraction < 0.085  # 2% to 8% of the pixels, less those already black or white
    noisy = np.asarray(OPERATIONS["gaussian_noise"](photo, np.random.default_rng(2)), dtype=np.int16)
    assert 8 < (noisy - pixels).std() < 32  # sigma in [10, 30], less clipping


def test_random_augmentation_is_reproducible_and_applies_the_named_operations(photo):
    first, names = random_augmentation(photo, np.random.default_rng(7))
    again, names_again = random_augmentation(photo, np.random.default_rng(7))
    assert names == names_again and len(names) == 2 and set(names) <= set(OPERATIONS)
    assert np.array_equal(np.asarray(first), np.asarray(again))
    replay = np.random.default_rng(7)
    replay.choice(list(OPERATIONS), size=2)
    expected = photo
    for name in names:
        expected = OPERATIONS[name](expected, replay)
    assert np.array_equal(np.asarray(first), np.asarray(expected))
    with pytest.raises(ValueError, match="operations must be non-negative"):
        random_augmentation(photo, np.random.default_rng(0), operations=-1)
