"""Bad inputs get clear answers; untrusted DNA files are refused safely; concurrent saves never mix."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import pickle
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import image_files
from helpers import gauss_dna, hist_dna, layer_gauss_dna
from PIL import Image

from vdna import ImageError, load_vdna_from_files
from vdna.cli import main
from vdna.extractors import HookExtractor
from vdna.fileformat import read_metadata
from vdna.ranges import ActivationRanges


def png_declaring(width: int, height: int) -> bytes:
    """A valid tiny PNG whose header declares ``width`` x ``height`` pixels."""
    data = io.BytesIO()
    Image.new("L", (1, 1)).save(data, format="PNG")
    raw = bytearray(data.getvalue())
    header = struct.pack(">II", width, height) + raw[24:29]
    raw[16:29] = header
    raw[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    return bytes(raw)


def jpeg(pixels: np.ndarray) -> bytes:
    data = io.BytesIO()
    Image.fromarray(pixels).save(data, format="JPEG", quality=90)
    return data.getvalue()


# -- bad images: with on_error="raise" the error names the file and the reason; with "skip" they are recorded
BAD_IMAGES = {
    "truncated.jpg": (lambda: jpeg(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))[:600], "cannot be decoded"),
    "empty.jpg": (lambda: b"", r"empty file \(0 bytes\)"),
    "text.jpg": (lambda: b"just some words\n", "not an image file Pillow can identify"),
    "bomb.png": (lambda: png_declaring(100_000, 100_000), "declares 10000000000 pixels, more than the limit of 178956970"),
}


@pytest.mark.parametrize("name", sorted(BAD_IMAGES))
def test_bad_image_raises_naming_it_or_is_skipped(processor, data_dir, tmp_path, name):
    make, reason = BAD_IMAGES[name]
    bad = tmp_path / name
    bad.write_bytes(make())
    good = image_files(data_dir / "set14", 2)
    with pytest.raises(ImageError, match=f"{name}: {reason}"):
        processor.make_vdna([*good, bad], verbose=False, num_workers=0)
    vdna = processor.make_vdna([*good, bad], verbose=False, num_workers=2, on_error="skip")
    assert vdna.num_images == 2
    assert len(vdna.provenance.skipped) == 1 and vdna.provenance.skipped[0]["name"] == str(bad)
    assert __import__("re").search(reason, vdna.provenance.skipped[0]["reason"])


def test_decompression_bomb_is_refused_without_allocating_and_the_limit_is_an_option(tmp_path, processor):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_declaring(100_000, 100_000))
    with pytest.raises(ImageError, match="a possible decompression bomb"):
        processor.make_vdna([bomb], verbose=False, num_workers=0)
    small = tmp_path / "small.png"
    Image.new("RGB", (50, 40)).save(small)
    with pytest.raises(ImageError, match="declares 50x40 pixels, more than the limit of 1000"):
        processor.make_vdna([small], verbose=False, num_workers=0, max_image_pixels=1000)


@pytest.mark.parametrize("size", [(1, 1), (1, 4000), (4000, 1)])
def test_extreme_shapes_make_dnas(processor, tmp_path, size):
    path = tmp_path / f"{size[0]}x{size[1]}.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (size[1], size[0], 3), np.uint8)).save(path)
    vdna = processor.make_vdna([path], verbose=False, num_workers=0)
    assert vdna.num_images == 1 and int(vdna.data["head"].sum()) == 1280 * 49


def test_non_utf8_file_names_work_end_to_end(processor, data_dir, tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    raw_name = os.fsencode(folder) + b"/caf\xe9-\xff.jpg"
    with open(raw_name, "wb") as out:
        out.write((image_files(data_dir / "set14", 1)[0]).read_bytes())
    vdna = processor.make_vdna(folder, verbose=False, num_workers=2)
    assert vdna.num_images == 1 and os.fsencode(vdna.provenance.images[0]) == raw_name
    vdna.save(tmp_path / "dna")
    assert os.fsencode(load_vdna_from_files(tmp_path / "dna").provenance.images[0]) == raw_name


def test_zip_with_parent_references_is_read_in_place_and_writes_nothing(processor, data_dir, tmp_path):
    archive = tmp_path / "inside" / "evil.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as handle:
        for index, path in enumerate(image_files(data_dir / "set14", 2)):
            handle.writestr(f"../../escaped{index}.jpg", path.read_bytes())
    before = sorted(p for p in tmp_path.rglob("*"))
    vdna = processor.make_vdna(archive, verbose=False, num_workers=2)
    assert vdna.num_images == 2
    assert sorted(p for p in tmp_path.rglob("*")) == before
    assert not (tmp_path.parent / "escaped0.jpg").exists()


def test_skip_summary_of_the_command_line(data_dir, tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for path in image_files(data_dir / "set14", 2):
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "zero.jpg").write_bytes(b"")
    assert main(["make", str(folder), "-o", str(tmp_path / "x"), "--quiet", "--workers", "0"]) == 2
    assert f"{folder / 'zero.jpg'}: empty file (0 bytes)" in capsys.readouterr().err
    assert main(["make", str(folder), "-o", str(tmp_path / "x"), "--quiet", "--skip-bad"]) == 0
    captured = capsys.readouterr()
    assert "DNA of 2 images" in captured.out
    assert f"skipped 1 image(s):\n  {folder / 'zero.jpg'}: empty file (0 bytes)" in captured.err
    saved = json.loads((tmp_path / "x.json").read_text())
    assert saved["images_skipped"] == [{"name": str(folder / "zero.jpg"), "reason": "empty file (0 bytes)"}]


# -- NaN activations of a user's extractor
class _NaNAfterConv(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=4)
        self.poison = torch.nn.Identity()

    def forward(self, x):
        out = self.conv(x)
        out = out.clone()
        out[:, 2, 0, 0] = float("nan")
        return self.poison(out)


def _nan_net(pretrained=True, weights=None):
    return HookExtractor(
        _NaNAfterConv(), {"conv": "conv", "poisoned": "poison"}, name="test_nan_net",
        input_size=(32, 32), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
    )


@pytest.mark.parametrize("distribution", ["histogram-10", "gaussian", "layer-gaussian", "activation-ranges"])
def test_nan_activations_raise_naming_the_layer(processor, distribution, registered):
    registered("test_nan_net", _nan_net)
    ranges = ActivationRanges("test_nan_net", {n: np.full(4, -1.0, np.float32) for n in ("conv", "poisoned")},
                              {n: np.full(4, 1.0, np.float32) for n in ("conv", "poisoned")})
    with pytest.raises(ValueError, match="layer 'poisoned': the extractor produced .*NaN"):
        processor.make_vdna([np.zeros((8, 8, 3), np.uint8)], feat_extractor_name="test_nan_net",
                            distribution_name=distribution, activation_ranges=ranges, verbose=False, num_workers=0)


# -- untrusted DNA files
def saved(tmp_path: Path, vdna, name: str = "dna") -> tuple[Path, Path]:
    vdna.save(tmp_path / name)
    return tmp_path / f"{name}.json", tmp_path / f"{name}.npz"


def rewrite_npz(json_path: Path, npz_path: Path, arrays: dict) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    npz_path.write_bytes(buffer.getvalue())
    document = json.loads(json_path.read_text())
    document.pop("npz_sha256", None)
    json_path.write_text(json.dumps(document))


def rewrite_json(json_path: Path, change) -> None:
    document = json.loads(json_path.read_text())
    change(document)
    json_path.write_text(json.dumps(document))


def test_malformed_metadata_is_refused(tmp_path):
    json_path, _ = saved(tmp_path, hist_dna({"a": [[1, 2, 3]]}))
    original = json_path.read_text()
    json_path.write_text(original[: len(original) // 2])
    with pytest.raises(ValueError, match="dna.json: not a valid JSON DNA metadata file"):
        load_vdna_from_files(tmp_path / "dna")
    json_path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="a DNA metadata file must hold a JSON object"):
        load_vdna_from_files(tmp_path / "dna")
    cases = [  # (change, message, also refused by read_metadata, which vdna inspect reads)
        (lambda d: d.pop("type"), "metadata has no 'type' entry", True),
        (lambda d: d.update(type="histogramm"), "unknown DNA type 'histogramm'", False),
        (lambda d: d.update(name="histogram-4"), "hist_nb_bins 3 disagree", False),
        (lambda d: d.update(num_images=-1), "'num_images' is negative", True),
        (lambda d: d.update(num_images="ten"), "entry 'num_images' has the wrong type", True),
        (lambda d: d.update(neurons_list={"a": 0}), "layer 'a' has an invalid neuron count 0", True),
        (lambda d: d.update(arrays_encoding="pickle"), "unknown arrays encoding 'pickle'", True),
    ]
    for change, message, metadata_alone in cases:
        json_path.write_text(original)
        rewrite_json(json_path, change)
        with pytest.raises(ValueError, match=message):
            load_vdna_from_files(tmp_path / "dna")
        if metadata_alone:
            with pytest.raises(ValueError, match=message):
                read_metadata(tmp_path / "dna")


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({}, "array 'a' is missing"),
        ({"a": np.ones((1, 3), np.int32), "b": np.ones((1, 3), np.int32)}, r"arrays \['b'\] are not layers"),
        ({"a": np.ones((2, 3), np.int32)}, r"array 'a' has shape \(2, 3\), expected \(1, 3\)"),
        ({"a": np.ones((1, 3), np.float32)}, "array 'a' has dtype float32, expected kind 'iu'"),
        ({"a": np.array([[1, -2, 3]], np.int32)}, "negative histogram counts"),
        ({"a": np.array([[1, 2, 3]], dtype=object)}, "holds Python objects, which are never loaded"),
    ],
)
def test_bad_histogram_arrays_are_refused(tmp_path, arrays, message):
    json_path, npz_path = saved(tmp_path, hist_dna({"a": [[1, 2, 3]]}))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays) if not any(a.dtype == object for a in arrays.values()) else np.savez(buffer, allow_pickle=True, **arrays)
    npz_path.write_bytes(buffer.getvalue())
    rewrite_json(json_path, lambda d: d.pop("npz_sha256"))
    with pytest.raises(ValueError, match=message):
        load_vdna_from_files(tmp_path / "dna")


def test_bad_gaussian_arrays_are_refused(tmp_path):
    json_path, npz_path = saved(tmp_path, gauss_dna({"a": np.zeros(2)}, {"a": np.ones(2)}))
    for arrays, message in (
        ({"mu-a": np.array([0.0, np.nan], np.float32), "var-a": np.ones(2, np.float32)}, "contains NaN or infinite"),
        ({"mu-a": np.zeros(2, np.float32), "var-a": np.array([1.0, np.inf], np.float32)}, "contains NaN or infinite"),
        ({"mu-a": np.zeros(2, np.float32), "var-a": np.array([1.0, -1.0], np.float32)}, "negative variances"),
        ({"mu-a": np.zeros(2, np.int64), "var-a": np.ones(2, np.float32)}, "dtype int64, expected kind 'f'"),
    ):
        rewrite_npz(json_path, npz_path, arrays)
        with pytest.raises(ValueError, match=message):
            load_vdna_from_files(tmp_path / "dna")
    json_path, npz_path = saved(tmp_path, layer_gauss_dna({"a": np.random.default_rng(0).normal(size=(5, 2))}), "lg")
    rewrite_npz(json_path, npz_path, {"mu-a": np.zeros(2), "sigma-a": np.array([[1.0, 0.5], [0.0, 1.0]])})
    with pytest.raises(ValueError, match="covariance of layer 'a' is not symmetric"):
        load_vdna_from_files(tmp_path / "lg")


def test_truncated_or_foreign_npz_is_refused(tmp_path):
    json_path, npz_path = saved(tmp_path, hist_dna({"a": [[1, 2, 3]]}))
    rewrite_json(json_path, lambda d: d.pop("npz_sha256"))
    data = npz_path.read_bytes()
    for payload in (data[: len(data) // 2], b"not a zip at all"):
        npz_path.write_bytes(payload)
        with pytest.raises(ValueError, match="dna.npz: not a valid npz archive"):
            load_vdna_from_files(tmp_path / "dna")


class _Trap:
    """Unpickling this writes a marker file: its absence proves nothing was unpickled."""

    marker: Path

    def __reduce__(self):
        return (Path.write_text, (self.marker, "unpickled!"))


def test_nothing_is_ever_unpickled(tmp_path):
    marker = tmp_path / "marker"
    _Trap.marker = marker
    trap = np.empty(1, dtype=object)
    trap[0] = _Trap()
    assert b"marker" in pickle.dumps(trap)
    json_path, npz_path = saved(tmp_path, gauss_dna({"a": np.zeros(2)}, {"a": np.ones(2)}))
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=True, **{"mu-a": trap, "var-a": np.ones(2, np.float32)})
    npz_path.write_bytes(buffer.getvalue())
    rewrite_json(json_path, lambda d: d.pop("npz_sha256"))
    with pytest.raises(ValueError, match="array 'mu-a' holds Python objects, which are never loaded"):
        load_vdna_from_files(tmp_path / "dna")
    assert not marker.exists()


# -- concurrent writers
def _save_repeatedly(path: str, value: int, rounds: int) -> None:
    vdna = hist_dna({"a": np.full((50, 200), value)})
    for _ in range(rounds):
        vdna.save(path)


@pytest.mark.slow
def test_two_processes_saving_one_path_leave_one_complete_dna(tmp_path):
    target = str(tmp_path / "shared")
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_save_repeatedly, args=(target, value, 40)) for value in (1, 2)]
    for writer in writers:
        writer.start()
    seen = set()
    while any(writer.is_alive() for writer in writers):
        if Path(target + ".json").exists():
            counts = load_vdna_from_files(target).data["a"]
            assert counts.min() == counts.max()  # never a mix of the two
            seen.add(int(counts[0, 0]))
    for writer in writers:
        writer.join()
        assert writer.exitcode == 0
    final = load_vdna_from_files(target).data["a"]
    assert int(final[0, 0]) in (1, 2) and final.min() == final.max()
    assert not list(tmp_path.glob(".*.tmp"))
