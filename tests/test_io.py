"""DNA files: vdna 0.1.1's fixtures and numbers, round trips, and files that vdna 0.1.1 itself loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
import torch
from conftest import missing
from helpers import gauss_dna, hist_dna, layer_gauss_dna

from vdna import EMD, FD, NFD, VDNAGauss, VDNAHist, VDNALayerGauss, load_vdna_from_files


def test_fixtures_of_vdna_011_load_and_give_its_distances(fixtures_dir):
    expected = json.loads((fixtures_dir / "expected.json").read_text())
    hist_a, hist_b, gauss_a, gauss_b, lgauss_a, lgauss_b = (
        load_vdna_from_files(fixtures_dir / name)
        for name in ("hist_a", "hist_b", "gauss_a", "gauss_b", "lgauss_a", "lgauss_b")
    )
    assert isinstance(hist_a, VDNAHist) and hist_a.hist_nb_bins == 50 and hist_a.num_images == 11
    assert isinstance(gauss_a, VDNAGauss) and isinstance(lgauss_a, VDNALayerGauss)
    assert hist_a.neurons_list == {"block_0": 6, "block_1": 4}
    assert EMD(hist_a, hist_b).item() == pytest.approx(expected["EMD(hist_a,hist_b)"], rel=1e-12)
    assert EMD(hist_a, hist_b, use_neurons_from_layer="block_1").item() == pytest.approx(
        expected["EMD(hist_a,hist_b,layer=block_1)"], rel=1e-12
    )
    neuron_wise = EMD(hist_a, hist_b, return_neuron_wise=True)
    for layer, values in expected["EMD(hist_a,hist_b,neuron_wise)"].items():
        np.testing.assert_allclose(neuron_wise[layer].numpy(), values, rtol=1e-12)
    # vdna 0.1.1 computed these in float32; ours are float64
    assert NFD(gauss_a, gauss_b).item() == pytest.approx(expected["NFD(gauss_a,gauss_b)"], rel=1e-6)
    assert FD(lgauss_a, lgauss_b, use_neurons_from_layer="block_0").item() == pytest.approx(
        expected["FD(lgauss_a,lgauss_b,layer=block_0)"], rel=1e-6
    )
    assert FD(lgauss_a, lgauss_b).item() == pytest.approx(expected["FD(lgauss_a,lgauss_b)"], rel=1e-6)
    assert NFD(lgauss_a, lgauss_b).item() == pytest.approx(expected["NFD(lgauss_a,lgauss_b)"], rel=1e-6)


def sample_dnas() -> dict[str, object]:
    rng = np.random.default_rng(0)
    return {
        "hist": hist_dna({"a.0": rng.integers(0, 1000, size=(5, 30)), "b": rng.integers(0, 9, size=(2, 30))}, weights_sha256="f" * 64),
        "gauss": gauss_dna({"a": rng.normal(size=5), "b": rng.normal(size=2)}, {"a": rng.uniform(size=5), "b": rng.uniform(size=2)}),
        "lgauss": layer_gauss_dna({"a": rng.normal(size=(9, 5)), "b": rng.normal(size=(9, 2))}),
    }


def flat_arrays(vdna) -> dict[str, np.ndarray]:
    out = {}
    for layer, value in vdna.data.items():
        for key, tensor in (value.items() if isinstance(value, dict) else [("", value)]):
            out[f"{layer}/{key}"] = tensor.numpy()
    return out


@pytest.mark.parametrize("kind", ["hist", "gauss", "lgauss"])
def test_save_load_round_trip_is_bit_exact(tmp_path, kind):
    vdna = sample_dnas()[kind]
    vdna.provenance.images = ["x.jpg", "y.png"]
    vdna.save(tmp_path / "dna")
    loaded = load_vdna_from_files(tmp_path / "dna")
    assert type(loaded) is type(vdna)
    assert (loaded.name, loaded.num_images, loaded.neurons_list) == (vdna.name, vdna.num_images, vdna.neurons_list)
    assert loaded.provenance.images == ["x.jpg", "y.png"]
    assert loaded.provenance.weights_sha256 == vdna.provenance.weights_sha256
    original, reread = flat_arrays(vdna), flat_arrays(loaded)
    assert original.keys() == reread.keys()
    for key in original:
        assert original[key].dtype == reread[key].dtype
        np.testing.assert_array_equal(original[key], reread[key])
    for path in (tmp_path / "dna.json", tmp_path / "dna.npz"):
        assert load_vdna_from_files(path).num_images == vdna.num_images


def test_file_layout_is_vdna_011s(tmp_path):
    dnas = sample_dnas()
    for kind, vdna in dnas.items():
        vdna.save(tmp_path / kind)
    with np.load(tmp_path / "hist.npz", allow_pickle=False) as arrays:
        assert sorted(arrays.files) == ["a.0", "b"] and arrays["a.0"].dtype == np.int32
    with np.load(tmp_path / "gauss.npz", allow_pickle=False) as arrays:
        assert arrays["mu-a"].dtype == np.float32 and arrays["var-b"].dtype == np.float32
    with np.load(tmp_path / "lgauss.npz", allow_pickle=False) as arrays:
        assert arrays["mu-a"].dtype == np.float64 and arrays["sigma-a"].shape == (5, 5)
    metadata = json.loads((tmp_path / "hist.json").read_text())
    for key in ("type", "name", "distribution", "num_images", "feature_extractor_name", "neurons_list", "data_settings", "extraction_settings"):
        assert key in metadata
    assert metadata["distribution"] == {"hist_nb_bins": 30} and metadata["format_version"] == 1


def test_counts_beyond_int32_are_stored_as_int64(tmp_path):
    vdna = hist_dna({"a": [[2**31 + 5, 1]]})
    vdna.save(tmp_path / "big")
    with np.load(tmp_path / "big.npz") as arrays:
        assert arrays["a"].dtype == np.int64
    assert load_vdna_from_files(tmp_path / "big").data["a"][0, 0].item() == 2**31 + 5


VDNA_011 = os.environ.get("VDNA_011_PATH")


@pytest.mark.slow
def test_vdna_011_loads_our_files_and_computes_the_same_distances(tmp_path):
    if not VDNA_011:
        missing("set VDNA_011_PATH to a folder where vdna==0.1.1 is installed (pip install --target)")
    rng = np.random.default_rng(4)
    pairs = {
        "hist": [hist_dna({"a": rng.integers(0, 50, size=(5, 30)), "b": rng.integers(1, 9, size=(2, 30))}) for _ in range(2)],
        "gauss": [gauss_dna({"a": rng.normal(size=5)}, {"a": rng.uniform(size=5)}) for _ in range(2)],
        "lgauss": [layer_gauss_dna({"a": rng.normal(size=(9, 5)), "b": rng.normal(size=(9, 2))}) for _ in range(2)],
    }
    for kind, (first, second) in pairs.items():
        first.save(tmp_path / f"{kind}_1")
        second.save(tmp_path / f"{kind}_2")
    script = textwrap.dedent(
        f"""
        import json, vdna
        assert vdna.__version__ == "0.1.1", vdna.__file__
        load = lambda name: vdna.load_vdna_from_files({str(tmp_path)!r} + "/" + name)
        out = {{
            "emd": float(vdna.EMD(load("hist_1"), load("hist_2"))),
            "emd_b": float(vdna.EMD(load("hist_1"), load("hist_2"), use_neurons_from_layer="b")),
            "nfd": float(vdna.NFD(load("gauss_1"), load("gauss_2"))),
            "fd": float(vdna.FD(load("lgauss_1"), load("lgauss_2"))),
            "num_images": load("hist_1").num_images,
        }}
        print(json.dumps(out))
        """
    )
    environment = {**os.environ, "PYTHONPATH": VDNA_011}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment, check=True)
    theirs = json.loads(result.stdout.strip().splitlines()[-1])
    assert theirs["num_images"] == 10
    assert theirs["emd"] == pytest.approx(EMD(*pairs["hist"]).item(), rel=1e-12)
    assert theirs["emd_b"] == pytest.approx(EMD(*pairs["hist"], use_neurons_from_layer="b").item(), rel=1e-12)
    assert theirs["nfd"] == pytest.approx(NFD(*pairs["gauss"]).item(), rel=1e-5)
    assert theirs["fd"] == pytest.approx(FD(*pairs["lgauss"]).item(), rel=1e-5)


def test_loading_never_unpickles_and_skips_vdna_011_object_arrays(fixtures_dir):
    with zipfile.ZipFile(fixtures_dir / "gauss_a.npz") as archive:
        assert "block_0.npy" in archive.namelist()  # a pickled object array written by vdna 0.1.1
    loaded = load_vdna_from_files(fixtures_dir / "gauss_a")
    assert set(loaded.data) == {"block_0", "block_1"}


def test_json_and_npz_that_do_not_belong_together_are_refused(tmp_path):
    rng = np.random.default_rng(5)
    hist_dna({"a": rng.integers(0, 9, size=(2, 4))}).save(tmp_path / "one")
    hist_dna({"a": rng.integers(0, 9, size=(2, 4))}).save(tmp_path / "two")
    (tmp_path / "one.npz").write_bytes((tmp_path / "two.npz").read_bytes())
    with pytest.raises(ValueError, match="contents do not match the sha256 recorded in one.json"):
        load_vdna_from_files(tmp_path / "one")


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.json does not exist"):
        load_vdna_from_files(tmp_path / "nothing")


def test_loaded_dna_on_device_and_merge_after_reload(tmp_path):
    vdna = sample_dnas()["hist"]
    vdna.save(tmp_path / "h")
    loaded = load_vdna_from_files(tmp_path / "h", device="cpu")
    assert loaded.device == "cpu"
    doubled = loaded + loaded
    assert torch.equal(doubled.data["b"], 2 * vdna.data["b"]) and doubled.num_images == 20


def test_compact_encoding_round_trips_exactly_and_is_smaller(tmp_path):
    rng = np.random.default_rng(8)
    counts = {
        "a": rng.poisson(rng.uniform(0, 5000, size=(40, 1000))),
        "b": np.zeros((3, 1000), np.int64),
        "c": np.full((2, 1000), 2**40),
    }
    counts["b"][:, 500] = 10**9
    vdna = hist_dna(counts)
    vdna.save(tmp_path / "plain")
    vdna.save(tmp_path / "small", compact=True)
    assert not (tmp_path / "small.npz").exists() and (tmp_path / "small.vdnz").is_file()
    assert (tmp_path / "small.vdnz").stat().st_size < (tmp_path / "plain.npz").stat().st_size
    loaded = load_vdna_from_files(tmp_path / "small")
    for layer in counts:
        assert torch.equal(loaded.data[layer], vdna.data[layer])
    assert EMD(loaded, vdna).item() == 0.0


def test_compact_encoding_errors(tmp_path):
    with pytest.raises(ValueError, match="the compact encoding is for histogram DNAs, this one is gaussian"):
        gauss_dna({"a": np.zeros(2)}, {"a": np.ones(2)}).save(tmp_path / "g", compact=True)
    hist_dna({"a": [[1, 2, 3]]}).save(tmp_path / "h", compact=True)
    arrays = tmp_path / "h.vdnz"
    original = arrays.read_bytes()
    arrays.write_bytes(original[:-3])
    with pytest.raises(ValueError, match="h.vdnz: contents do not match the sha256 recorded in h.json"):
        load_vdna_from_files(tmp_path / "h")
    from vdna.io import histogram_from_compact_bytes

    with pytest.raises(ValueError, match="not a compact DNA arrays file"):
        histogram_from_compact_bytes(b"PK\x03\x04", "x.vdnz")
    with pytest.raises(ValueError, match="cannot be decompressed|hold .* bytes"):
        histogram_from_compact_bytes(original[:-3], "x.vdnz")
