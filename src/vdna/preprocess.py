"""From a raw item to the network's input: decode, EXIF, RGB, square crop, clean resize, mean/std.

The resize is the "clean" one of clean-fid: PIL's bicubic filter applied to each channel as 32-bit
floats, so no quantisation or aliasing sneaks in between the image and the network. It is computed
here, compiled, for the three channels at once, bit for bit as Pillow computes it.
"""

from __future__ import annotations

import functools
import io
import math
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from .config import CROP_MODES, DEFAULT_MAX_IMAGE_PIXELS
from .kernels import compiled_by

_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_INTEGER_GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class ImageError(ValueError):
    """An image that cannot be used, with the name of the image and the reason."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


def _sixteen_to_eight_bits(values: np.ndarray) -> np.ndarray:
    """Scale 0..65535 to 0..255 with rounding (v / 257, rounded half up)."""
    wide = np.clip(values.astype(np.int64), 0, 65535)
    return ((2 * wide + 257) // 514).astype(np.uint8)


def _float_to_255(values: np.ndarray, name: str) -> np.ndarray:
    if not np.all(np.isfinite(values)):
        raise ImageError(name, "float image with NaN or infinite values")
    low, high = float(values.min()), float(values.max())
    if low < 0.0 or high > 1.0:
        raise ImageError(name, f"float image values must lie in [0, 1], found [{low:g}, {high:g}]")
    return values.astype(np.float32) * np.float32(255.0)


def pil_to_rgb(image: Image.Image, name: str) -> np.ndarray:
    """An ``(H, W, 3)`` RGB array (uint8, or float32 in [0, 255]) from a PIL image of any mode.

    EXIF orientation is applied; transparent images are composited on white; 16-bit images are
    scaled (not clipped) to 8 bits; animated images give their first frame.
    """
    if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:
        image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode in _INTEGER_GREY_MODES:
        grey = _sixteen_to_eight_bits(np.asarray(image))
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "F":
        grey = _float_to_255(np.asarray(image), name)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))


def _open_image(raw: Any, name: str, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw) if isinstance(raw, bytes) else raw)
        if image.width * image.height > max_pixels:
            raise ImageError(
                name,
                f"declares {image.width}x{image.height} pixels, more than the limit of {max_pixels} "
                "(a possible decompression bomb; raise max_image_pixels to accept it)",
            )
        image.load()
    except ImageError:
        raise
    except Image.DecompressionBombError as error:
        declared = re.search(r"\((\d+) pixels\)", str(error))
        size = f"{declared.group(1)} pixels" if declared else "more pixels than Pillow accepts"
        limit = min(max_pixels, 2 * (Image.MAX_IMAGE_PIXELS or max_pixels))
        raise ImageError(
            name,
            f"declares {size}, more than the limit of {limit} (a possible decompression bomb; "
            "Pillow refuses it whatever max_image_pixels is)",
        ) from None
    except UnidentifiedImageError:
        raise ImageError(name, "not an image file Pillow can identify") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(name, f"cannot be decoded ({error})") from None
    return image


def _array_to_rgb(array: np.ndarray, name: str) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(name, f"array of shape {array.shape} is not HxW, HxWx3 or HxWx4")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageError(name, f"array of shape {array.shape} has no pixels")
    if array.dtype == np.uint8:
        pixels = array
    elif np.issubdtype(array.dtype, np.floating):
        pixels = _float_to_255(array, name)
    else:
        raise ImageError(name, f"array of dtype {array.dtype} is neither uint8 nor float in [0, 1]")
    if pixels.ndim == 2:
        return np.repeat(pixels[:, :, None], 3, axis=2)
    if pixels.shape[2] == 4:
        alpha = pixels[:, :, 3:4].astype(np.float32) / np.float32(255.0)
        rgb = pixels[:, :, :3].astype(np.float32)
        return rgb * alpha + np.float32(255.0) * (1 - alpha)
    return pixels


def _tensor_to_array(tensor: torch.Tensor) -> np.ndarray:
    array = tensor.detach().cpu().numpy()
    if array.ndim == 3 and array.shape[0] in (1, 3, 4):
        array = np.moveaxis(array, 0, 2)
    return array


def decode_image(raw: Any, name: str, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """Pixels of one image as ``(H, W, 3)``, uint8 or float32 in [0, 255].

    ``raw`` is a path, the bytes of an encoded image, a PIL image, a numpy array (HxW or HxWx3,
    uint8 or float in [0, 1]), a CHW tensor, or a ``(image, label)`` pair of any of those.
    """
    if isinstance(raw, (tuple, list)) and raw:
        raw = raw[0]
    if isinstance(raw, (str, os.PathLike)):
        path = Path(raw)
        if not path.is_file():
            raise ImageError(name, "file does not exist" if not path.exists() else "not a regular file")
        if path.stat().st_size == 0:
            raise ImageError(name, "empty file (0 bytes)")
        return pil_to_rgb(_open_image(path, name, max_pixels), name)
    if isinstance(raw, bytes):
        if not raw:
            raise ImageError(name, "empty file (0 bytes)")
        return pil_to_rgb(_open_image(raw, name, max_pixels), name)
    if isinstance(raw, Image.Image):
        return pil_to_rgb(raw, name)
    if isinstance(raw, torch.Tensor):
        return _array_to_rgb(_tensor_to_array(raw), name)
    if isinstance(raw, np.ndarray):
        return _array_to_rgb(raw, name)
    raise ImageError(name, f"unsupported item of type {type(raw).__name__}")


def crop_to_square(pixels: np.ndarray, mode: str, rng: np.random.Generator | None = None) -> np.ndarray:
    """Centre or random square crop of side ``min(H, W)``; ``mode="none"`` keeps the image."""
    height, width = pixels.shape[:2]
    if mode == "none" or height == width:
        return pixels
    side = min(height, width)
    if mode == "center":
        top, left = (height - side) // 2, (width - side) // 2
    elif mode == "random":
        if rng is None:
            raise ValueError("a random crop needs a random generator")
        top = int(rng.integers(0, height - side + 1))
        left = int(rng.integers(0, width - side + 1))
    else:
        raise ValueError(f"crop_to_square_pre_resize must be one of {CROP_MODES}, got {mode!r}")
    return pixels[top : top + side, left : left + side]


@numba.njit(cache=True, nogil=True)
def _bicubic(x):  # pragma: no cover - compiled
    """Pillow's bicubic kernel (a = -0.5), evaluated in the same order."""
    x = -x if x < 0.0 else x
    if x < 1.0:
        return (1.5 * x - 2.5) * x * x + 1.0
    if x < 2.0:
        return (((x - 5.0) * x + 8.0) * x - 4.0) * -0.5
    return 0.0


@numba.njit(cache=True, nogil=True)
def _compiled_bicubic_taps(in_size, out_size):  # pragma: no cover - compiled
    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support = 2.0 * filter_scale
    inverse = 1.0 / filter_scale
    bounds = np.zeros((out_size, 2), dtype=np.int64)
    weights = np.zeros((out_size, int(math.ceil(support)) * 2 + 1), dtype=np.float64)
    for out in range(out_size):
        centre = 0.0 + (out + 0.5) * scale
        first = max(int(centre - support + 0.5), 0)
        count = min(int(centre + support + 0.5), in_size) - first
        total = 0.0
        for tap in range(count):
            weights[out, tap] = _bicubic((tap + first - centre + 0.5) * inverse)
            total += weights[out, tap]
        if total != 0.0:
            for tap in range(count):
                weights[out, tap] /= total
        bounds[out, 0] = first
        bounds[out, 1] = count
    return bounds, weights


@functools.lru_cache(maxsize=128)
def _bicubic_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's resampling coefficients from ``in_size`` to ``out_size`` (its ``precompute_coeffs``).

    Returns each output's first input and tap count ``(out_size, 2)``, and the float64 weights
    ``(out_size, taps)``, computed with the same float64 operations in the same order.
    """
    return _compiled_bicubic_taps(in_size, out_size)


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _resample_rows(source, bounds, weights, out):  # pragma: no cover - compiled
    """``out[i] = sum_t source[bounds[i, 0] + t] * weights[i, t]``, summed in float64 in tap order, stored as float32.

    ``source`` is ``(rows, pixels * 3)``, ``out`` ``(out_rows, pixels, 3)`` (any strides).
    """
    total = np.empty(source.shape[1], dtype=np.float64)
    for i in range(out.shape[0]):
        first, count = bounds[i, 0], bounds[i, 1]
        total[:] = 0.0
        for tap in range(count):
            weight = weights[i, tap]
            row = source[first + tap]
            for j in range(total.shape[0]):
                total[j] += np.float64(row[j]) * weight
        for j in range(out.shape[1]):
            for channel in range(3):
                out[i, j, channel] = np.float32(total[3 * j + channel])


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _swap_rows_and_columns(source, out):  # pragma: no cover - compiled
    """``out[x, y] = source[y, x]`` for RGB pixels, as float32: read in order, written a pixel at a time."""
    height, width, _ = source.shape
    for y in range(height):
        for x in range(width):
            out[x, y, 0] = np.float32(source[y, x, 0])
            out[x, y, 1] = np.float32(source[y, x, 1])
            out[x, y, 2] = np.float32(source[y, x, 2])


def _transposed(pixels: np.ndarray) -> np.ndarray:
    out = np.empty((pixels.shape[1], pixels.shape[0], pixels.shape[2]), dtype=np.float32)
    _swap_rows_and_columns(np.ascontiguousarray(pixels), out)
    return out


def _resample_axis0(
    pixels: np.ndarray, bounds: np.ndarray, weights: np.ndarray, first_row: int = 0, transposed: bool = False
) -> np.ndarray:
    """``pixels`` ``(rows, n, 3)`` resampled along their rows: ``(out_rows, n, 3)``, or ``(n, out_rows, 3)`` if ``transposed``."""
    flat = np.ascontiguousarray(pixels, dtype=np.float32).reshape(pixels.shape[0], -1)
    if transposed:
        result = np.empty((pixels.shape[1], len(bounds), 3), dtype=np.float32)
        out = result.transpose(1, 0, 2)
    else:
        result = out = np.empty((len(bounds), pixels.shape[1], 3), dtype=np.float32)
    _resample_rows(flat, bounds - np.array([first_row, 0]), weights, out)
    return result


def _unclipped_resize(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The two passes of :func:`clean_resize`, before clipping (the pixels themselves when no pass is needed)."""
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"clean_resize takes (H, W, 3) pixels, got shape {pixels.shape}")
    height, width = size
    in_height, in_width = pixels.shape[:2]
    image = pixels
    vertical = _bicubic_taps(in_height, height) if in_height != height else None
    horizontal = _bicubic_taps(in_width, width) if in_width != width else None
    horizontal_first = not (in_height - height > 0 and in_height - height > (in_width - width) * 2)
    if horizontal is not None and vertical is not None and horizontal_first:
        first, last = vertical[0][0, 0], vertical[0][-1, 0] + vertical[0][-1, 1]
        image = _resample_axis0(_transposed(image[first:last]), *horizontal, transposed=True)
        image = _resample_axis0(image, *vertical, first_row=first)
    else:
        if vertical is not None:
            image = _resample_axis0(image, *vertical)
        if horizontal is not None:
            image = _resample_axis0(_transposed(image), *horizontal, transposed=True)
    return image


def clean_resize(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resize of each channel as float32 (PIL mode "F"), clipped to [0, 255]; ``size`` is (H, W).

    Bit for bit Pillow's ``Image.resize(..., BICUBIC)`` of each channel as a mode "F" image (its
    coefficients, float64 sums in its order, float32 between and after its two passes, and its
    choice of which pass comes first), computed for the three channels at once.
    """
    return np.clip(_unclipped_resize(pixels, size), 0.0, 255.0, dtype=np.float32)


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _normalise(pixels, mean, std, out):  # pragma: no cover - compiled
    """``out[c, y, x] = (clip(pixels[y, x, c], 0, 255) / 255 - mean[c]) / std[c]`` for 3 channels, each step rounded to float32."""
    height, width, _ = pixels.shape
    source, planes = pixels.reshape(height * width * 3), out.reshape(3, height * width)
    mean_r, mean_g, mean_b, std_r, std_g, std_b = mean[0], mean[1], mean[2], std[0], std[1], std[2]
    black, white = np.float32(0.0), np.float32(255.0)
    for p in range(height * width):  # the three planes written in one loop, so it vectorises
        planes[0, p] = (min(max(source[3 * p], black), white) / white - mean_r) / std_r
        planes[1, p] = (min(max(source[3 * p + 1], black), white) / white - mean_g) / std_g
        planes[2, p] = (min(max(source[3 * p + 2], black), white) / white - mean_b) / std_b


@dataclass(frozen=True)
class Preprocessor:
    """Square crop, clean resize to ``size`` (H, W), scaling to [0, 1] and mean/std normalisation."""

    size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop: str = "none"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.crop not in CROP_MODES:
            raise ValueError(f"crop_to_square_pre_resize must be one of {CROP_MODES}, got {self.crop!r}")

    def _cropped(self, pixels: np.ndarray, index: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, index]) if self.crop == "random" else None
        return crop_to_square(pixels, self.crop, rng)

    def resized(self, pixels: np.ndarray, index: int) -> np.ndarray:
        """The cropped and resized image, float32 ``(H, W, 3)`` in [0, 255]; ``index`` seeds a random crop."""
        return clean_resize(self._cropped(pixels, index), self.size)

    def __call__(self, pixels: np.ndarray, index: int) -> torch.Tensor:
        """The network input for one image: float32 ``(3, H, W)``, ``(pixel / 255 - mean) / std``."""
        resized = np.ascontiguousarray(_unclipped_resize(self._cropped(pixels, index), self.size), dtype=np.float32)
        out = np.empty((3, *resized.shape[:2]), dtype=np.float32)
        _normalise(resized, np.asarray(self.mean, dtype=np.float32), np.asarray(self.std, dtype=np.float32), out)
        return torch.from_numpy(out)


def _warm_up() -> None:
    preprocessor = Preprocessor((8, 8), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    for shape in ((5, 7, 3), (40, 7, 3)):  # both orders of the two resize passes
        preprocessor(np.zeros(shape, dtype=np.uint8), 0)


compiled_by(_warm_up, _compiled_bicubic_taps, _resample_rows, _swap_rows_and_columns, _normalise)


__all__ = [
    "ImageError",
    "Preprocessor",
    "clean_resize",
    "crop_to_square",
    "decode_image",
    "pil_to_rgb",
]
