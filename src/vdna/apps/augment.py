"""The random image transformations of the paper's retrieval experiment (appendix A.3).

Each augmented image gets ``operations`` (2 in the paper) operations drawn at random from the
sixteen below and applied one after the other, each with a random magnitude, so that augmented
images are hard to match pixel by pixel but keep their content.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

Operation = Callable[[Image.Image, np.random.Generator], Image.Image]


def _signed(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high) * rng.choice([-1.0, 1.0]))


def _affine(image: Image.Image, matrix: tuple[float, ...]) -> Image.Image:
    return image.transform(image.size, Image.Transform.AFFINE, matrix, resample=Image.Resampling.BILINEAR, fillcolor=(128, 128, 128))


def _enhance(enhancer: type) -> Operation:
    def operation(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        factor = 1.0 + _signed(rng, 0.3, 0.7)
        return enhancer(image).enhance(factor)

    return operation


def _salt_and_pepper(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    pixels = np.array(image)
    fraction = rng.uniform(0.02, 0.08)
    hit = rng.random(pixels.shape[:2]) < fraction
    pixels[hit] = np.where(rng.random(int(hit.sum())) < 0.5, 0, 255)[:, None]
    return Image.fromarray(pixels)


def _gaussian_noise(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float32)
    noisy = pixels + rng.normal(0.0, rng.uniform(10, 30), pixels.shape)
    return Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8))


OPERATIONS: dict[str, Operation] = {
    "identity": lambda image, rng: image,
    "shear_x": lambda image, rng: _affine(image, (1, _signed(rng, 0.1, 0.3), 0, 0, 1, 0)),
    "shear_y": lambda image, rng: _affine(image, (1, 0, 0, _signed(rng, 0.1, 0.3), 1, 0)),
    "translate_x": lambda image, rng: _affine(image, (1, 0, _signed(rng, 0.1, 0.3) * image.width, 0, 1, 0)),
    "translate_y": lambda image, rng: _affine(image, (1, 0, 0, 0, 1, _signed(rng, 0.1, 0.3) * image.height)),
    "rotate": lambda image, rng: image.rotate(_signed(rng, 10, 30), resample=Image.Resampling.BILINEAR, fillcolor=(128, 128, 128)),
    "brightness": _enhance(ImageEnhance.Brightness),
    "saturation": _enhance(ImageEnhance.Color),
    "contrast": _enhance(ImageEnhance.Contrast),
    "sharpness": _enhance(ImageEnhance.Sharpness),
    "posterize": lambda image, rng: ImageOps.posterize(image, int(rng.integers(2, 5))),
    "autocontrast": lambda image, rng: ImageOps.autocontrast(image),
    "equalize": lambda image, rng: ImageOps.equalize(image),
    "salt_and_pepper": _salt_and_pepper,
    "gaussian_noise": _gaussian_noise,
    "blur": lambda image, rng: image.filter(ImageFilter.GaussianBlur(rng.uniform(1.5, 3.0))),
}
"""The operations of appendix A.3, by name."""


def random_augmentation(
    image: Image.Image, rng: np.random.Generator, operations: int = 2
) -> tuple[Image.Image, list[str]]:
    """``image`` (RGB) after ``operations`` random operations of :data:`OPERATIONS`, and their names."""
    if operations < 0:
        raise ValueError(f"operations must be non-negative, got {operations}")
    names = [str(name) for name in rng.choice(list(OPERATIONS), size=operations)]
    result = image.convert("RGB")
    for name in names:
        result = OPERATIONS[name](result, rng)
    return result, names


__all__ = [
    "OPERATIONS",
    "Operation",
    "random_augmentation",
]
