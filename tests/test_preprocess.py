"""Decoding every kind of image to 8-bit RGB, cropping, and the clean resize."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from conftest import image_files
from PIL import Image

from vdna.preprocess import ImageError, Preprocessor, clean_resize, crop_to_square, decode_image


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def halves(height: int = 16, width: int = 32) -> np.ndarray:
    """Left half red, right half blue."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 2] = (255, 0, 0)
    pixels[:, width // 2 :] = (0, 0, 255)
    return pixels


def test_exif_orientation_is_applied():
    image = Image.fromarray(halves())
    exif = image.getexif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    pixels = decode_image(encoded(image, "JPEG", exif=exif, quality=95), "rotated.jpg")
    assert pixels.shape == (32, 16, 3)
    assert pixels[2, 8, 0] > 200 and pixels[2, 8, 2] < 60  # red now on top
    assert pixels[-3, 8, 2] > 200 and pixels[-3, 8, 0] < 60  # blue at the bottom


def test_grayscale_and_binary_images_become_grey_rgb():
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    pixels = decode_image(encoded(Image.fromarray(grey), "PNG"), "grey.png")
    assert pixels.dtype == np.uint8 and np.array_equal(pixels, np.repeat(grey[:, :, None], 3, 2))
    binary = Image.fromarray(grey > 100)
    assert set(np.unique(decode_image(binary, "binary"))) == {0, 255}


def test_transparency_is_composited_on_white():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 0)  # fully transparent red
    rgba[0, 1] = (0, 0, 255, 255)  # opaque blue
    rgba[1, 0] = (0, 0, 0, 128)  # half transparent black
    pixels = decode_image(encoded(Image.fromarray(rgba), "PNG"), "rgba.png")
    assert pixels[0, 0].tolist() == [255, 255, 255]
    assert pixels[0, 1].tolist() == [0, 0, 255]
    assert all(126 <= value <= 128 for value in pixels[1, 0])
    palette = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), mode="P")
    palette.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    palette.info["transparency"] = 0
    decoded = decode_image(encoded(palette, "PNG", transparency=0), "palette.png")
    assert decoded[0, 0].tolist() == [255, 255, 255] and decoded[0, 1].tolist() == [200, 100, 50]


def test_cmyk_jpeg_converts_back_to_its_colours():
    rgb = halves()
    cmyk = Image.fromarray(rgb).convert("CMYK")
    pixels = decode_image(encoded(cmyk, "JPEG", quality=100), "cmyk.jpg")
    assert np.abs(pixels.astype(int) - rgb.astype(int))[:, 2:14].max() <= 12


def test_sixteen_bit_png_is_scaled_not_clipped():
    values = np.array([[0, 257, 257 * 100, 32896, 65535, 65534, 128, 129]], dtype=np.uint16)
    image = Image.fromarray(values)
    assert image.mode.startswith("I;16")
    pixels = decode_image(encoded(image, "PNG"), "deep.png")
    assert pixels[0, :, 0].tolist() == [0, 1, 100, 128, 255, 255, 0, 1]


def test_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (4, 4), colour) for colour in ((255, 0, 0), (0, 255, 0))]
    data = io.BytesIO()
    frames[0].save(data, format="GIF", save_all=True, append_images=frames[1:])
    pixels = decode_image(data.getvalue(), "anim.gif")
    assert pixels[0, 0, 0] > 200 and pixels[0, 0, 1] < 50


def test_arrays_and_tensors():
    assert decode_image(np.full((3, 3), 7, np.uint8), "a").shape == (3, 3, 3)
    floats = decode_image(np.full((3, 3, 3), 0.5), "f")
    assert floats.dtype == np.float32 and np.allclose(floats, 127.5)
    chw = decode_image(torch.full((3, 5, 4), 1.0), "t")
    assert chw.shape == (5, 4, 3) and np.allclose(chw, 255.0)
    pair = decode_image((np.zeros((2, 2, 3), np.uint8), 7), "pair")
    assert pair.shape == (2, 2, 3)


@pytest.mark.parametrize(
    "item, message",
    [
        (np.full((3, 3), 1.5), r"values must lie in \[0, 1\], found \[1.5, 1.5\]"),
        (np.zeros((3, 3), np.uint16), "dtype uint16 is neither uint8 nor float"),
        (np.zeros((3, 3, 2), np.uint8), r"shape \(3, 3, 2\) is not HxW"),
        (np.zeros((0, 3, 3), np.uint8), "has no pixels"),
        (np.full((2, 2), np.nan), "NaN or infinite"),
        (b"", r"empty file \(0 bytes\)"),
        (b"this is text, not an image", "not an image file Pillow can identify"),
        (12, "unsupported item of type int"),
    ],
)
def test_bad_items_raise_image_error_with_their_name(item, message):
    with pytest.raises(ImageError, match=f"^item: .*{message}"):
        decode_image(item, "item")


def test_truncated_jpeg_and_pixel_limit(tmp_path):
    data = encoded(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)), "JPEG")
    with pytest.raises(ImageError, match="cut.jpg: cannot be decoded"):
        decode_image(data[: len(data) // 2], "cut.jpg")
    with pytest.raises(ImageError, match="declares 64x64 pixels, more than the limit of 100"):
        decode_image(data, "big.jpg", max_pixels=100)
    with pytest.raises(ImageError, match="file does not exist"):
        decode_image(tmp_path / "gone.png", "gone.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty.png: empty file \(0 bytes\)"):
        decode_image(tmp_path / "empty.png", "empty.png")


def test_centre_and_random_square_crops():
    pixels = np.arange(6 * 10).reshape(6, 10, 1).repeat(3, 2)
    centre = crop_to_square(pixels, "center")
    assert centre.shape == (6, 6, 3) and centre[0, 0, 0] == 2
    first = crop_to_square(pixels, "random", np.random.default_rng([0, 5]))
    again = crop_to_square(pixels, "random", np.random.default_rng([0, 5]))
    assert np.array_equal(first, again) and first.shape == (6, 6, 3)
    assert crop_to_square(pixels, "none") is pixels
    with pytest.raises(ValueError, match="crop_to_square_pre_resize must be one of"):
        Preprocessor((4, 4), (0, 0, 0), (1, 1, 1), crop="middle")


def test_clean_resize_is_clean_fid_recipe(skimage_photos):
    photo = skimage_photos["chelsea"]
    resized = clean_resize(photo, (224, 200))
    assert resized.shape == (224, 200, 3) and resized.dtype == np.float32
    for channel in range(3):
        plane = Image.fromarray(photo[:, :, channel].astype(np.float32), mode="F")
        expected = np.asarray(plane.resize((200, 224), resample=Image.BICUBIC)).clip(0, 255)
        np.testing.assert_array_equal(resized[:, :, channel], expected)
    assert not np.allclose(resized, np.round(resized))  # no quantisation to 8 bits
    network_input = Preprocessor((224, 224), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))(photo, 0)
    assert network_input.shape == (3, 224, 224) and network_input.dtype == torch.float32
    assert -1.0 <= network_input.min() and network_input.max() <= 1.0


def pillow_float_resize(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """clean-fid's recipe with Pillow itself: each channel as a mode "F" image, bicubic, clipped."""
    planes = [Image.fromarray(np.ascontiguousarray(pixels[:, :, c], dtype=np.float32), mode="F") for c in range(3)]
    resized = [np.asarray(plane.resize(size[::-1], resample=Image.Resampling.BICUBIC)) for plane in planes]
    return np.stack(resized, axis=2).clip(0, 255)


@pytest.mark.parametrize(
    "size",
    [(224, 224), (299, 299), (37, 512), (700, 90), (1000, 1200)],
    ids=["224", "299", "wide-small", "tall-thin", "upscale"],
)
def test_clean_resize_equals_pillow_bit_for_bit_on_real_photographs(data_dir, size):
    photos = image_files(data_dir / "set14", 6) + image_files(data_dir / "sunhays80", 4)
    for path in photos:
        pixels = decode_image(path, path.name)
        for crop in (pixels, pixels[: pixels.shape[0] // 3], pixels[:, : pixels.shape[1] // 4]):  # both pass orders
            np.testing.assert_array_equal(clean_resize(crop, size), pillow_float_resize(crop, size), err_msg=f"{path} {crop.shape}")


def test_clean_resize_equals_pillow_for_every_size_of_an_axis_up_to_700(data_dir):
    pixels = decode_image(image_files(data_dir / "set14", 1)[0], "set14")
    strip = pixels[:3, :700] if pixels.shape[1] >= 700 else np.tile(pixels[:3], (1, 3, 1))[:, :700]
    for length in range(1, 701):
        row, column = strip[:, :length], strip[:, :length].transpose(1, 0, 2)
        for out in (224, 299, 1000):
            np.testing.assert_array_equal(clean_resize(row, (3, out)), pillow_float_resize(row, (3, out)), err_msg=f"{length}->{out}")
            np.testing.assert_array_equal(clean_resize(column, (out, 3)), pillow_float_resize(column, (out, 3)), err_msg=f"{length}->{out}")


def test_clean_resize_of_one_axis_or_none_equals_pillow(skimage_photos):
    photo = skimage_photos["chelsea"]
    height, width = photo.shape[:2]
    for size in ((height, 150), (100, width), (height, width)):
        np.testing.assert_array_equal(clean_resize(photo, size), pillow_float_resize(photo, size))
    as_float = photo.astype(np.float32) / 255 * 254.5
    np.testing.assert_array_equal(clean_resize(as_float, (64, 64)), pillow_float_resize(as_float, (64, 64)))
    for shape in ((8, 8), (8, 8, 4)):
        with pytest.raises(ValueError, match=rf"clean_resize takes \(H, W, 3\) pixels, got shape \({shape[0]}, {shape[1]}"):
            clean_resize(np.zeros(shape, dtype=np.uint8), (4, 4))


def test_network_input_is_pixel_over_255_minus_mean_over_std_bit_for_bit(data_dir):
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    preprocess = Preprocessor((224, 200), mean, std)
    for path in image_files(data_dir / "set14", 4) + image_files(data_dir / "sunhays80", 4):
        pixels = decode_image(path, path.name)
        resized = torch.from_numpy(clean_resize(pixels, (224, 200))).permute(2, 0, 1)
        expected = (resized / 255.0 - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
        network_input = preprocess(pixels, 0)
        assert network_input.shape == (3, 224, 200) and network_input.is_contiguous()
        assert torch.equal(network_input.view(torch.int32), expected.view(torch.int32)), path
