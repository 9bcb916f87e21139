"""What a new user meets on the command line: one clear line per mistake, flags named as flags, nothing ignored."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import image_files

from vdna import EMD, RunConfig, VDNAProcessor, load_vdna_from_files
from vdna.cli import main
from vdna.extractors import HookExtractor
from vdna.ranges import ActivationRanges

FORWARD_CALLS: list[int] = []
"""Images through the counting network to make DNAs (no gradient), batch by batch."""
GRADIENT_CALLS: list[int] = []
"""Images through it with a gradient: the noise image that maps positions back to the input."""


class _Counting(torch.nn.Module):
    """A small convolution that counts the images it sees once ``counting`` (not the blank image it is built with)."""

    counting = False

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 6, 5, stride=4)

    def forward(self, x):
        if self.counting:
            (GRADIENT_CALLS if torch.is_grad_enabled() else FORWARD_CALLS).append(x.shape[0])
        return torch.relu(self.conv(x))


def _counting_net(pretrained=True, weights=None):
    model = _Counting()
    extractor = HookExtractor(model, {"conv": "conv"}, name="test_counting_net", input_size=(32, 32),
                              mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    model.counting = True
    return extractor


@pytest.fixture(scope="module")
def counting_net(registered_in_module):
    """``test_counting_net``, registered while this module's tests run."""
    registered_in_module("test_counting_net", _counting_net)


@pytest.fixture(scope="module")
def folders(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_errors")
    made = {}
    for name, count in (("set14", 4), ("sunhays80", 4)):
        made[name] = root / name
        made[name].mkdir()
        for path in image_files(data_dir / name, count):
            shutil.copy(path, made[name] / path.name)
    return made


@pytest.fixture(scope="module")
def counting_ranges(tmp_path_factory):
    path = tmp_path_factory.mktemp("ranges") / "counting.ranges.json"
    ActivationRanges("test_counting_net", {"conv": np.zeros(6, np.float32)}, {"conv": np.full(6, 4.0, np.float32)}).save(path)
    return path


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_a_device_that_is_not_here_is_one_line(folders, tmp_path, capsys):
    wanted = "cuda:7" if torch.cuda.is_available() else "cuda"
    assert main(["make", str(folders["set14"]), "-o", str(tmp_path / "x"), "--device", wanted, "--quiet"]) == 2
    assert error_line(capsys).startswith(f"vdna make: error: --device '{wanted}': ")
    assert main(["make", str(folders["set14"]), "-o", str(tmp_path / "x"), "--device", "gpu", "--quiet"]) == 2
    assert "--device 'gpu' is not a device; use e.g. cpu, cuda or cuda:1" in error_line(capsys)


@pytest.mark.usefixtures("counting_net")
def test_messages_name_flags_not_python_arguments(folders, tmp_path, capsys):
    out = str(tmp_path / "x")
    assert main(["make", str(folders["set14"]), "-o", out, "--extractor", "test_counting_net", "--quiet"]) == 2
    line = error_line(capsys)
    assert "give --ranges (a ranges file made with `vdna calibrate`)" in line and "activation_ranges" not in line
    assert main(["make", str(folders["set14"]), "-o", out, "--batch-size", "0", "--quiet"]) == 2
    assert "vdna make: error: --batch-size must be a positive integer, got 0" in error_line(capsys)
    assert main(["make", str(folders["set14"]), "-o", out, "--num-images", "0", "--quiet"]) == 2
    assert "--num-images must be -1 (all) or a positive integer, got 0" in error_line(capsys)
    with pytest.raises(ValueError, match="^batch_size must be a positive integer, got 0"):  # Python names in Python
        RunConfig(batch_size=0)


def test_transfer_names_performance_sets_that_are_not_among_the_dnas(folders, tmp_path, capsys):
    performance = tmp_path / "performance.json"
    performance.write_text(json.dumps({"set14": {"sunhays80": 1.0, "cityscapes": 0.5}}))
    assert main(["transfer", str(folders["set14"]), str(folders["sunhays80"]), "--performance", str(performance), "--quiet"]) == 2
    assert ("--performance names sets that are not among the DNAs: cityscapes (the DNAs are set14, sunhays80)"
            in error_line(capsys))


def test_compare_applies_learned_neuron_weights_or_refuses(folders, tmp_path, capsys, processor):
    first, second = (processor.make_vdna(folders[name], verbose=False, num_workers=0) for name in ("set14", "sunhays80"))
    first.save(tmp_path / "a")
    second.save(tmp_path / "b")
    weights = {layer: np.linspace(0.0, 1.0, count).tolist() for layer, count in first.neurons_list.items()}
    learned = tmp_path / "learned.json"
    learned.write_text(json.dumps({"metric": "emd", "attributes": {"hat": {"weights": weights}}}))
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--weights", str(learned)]) == 2
    assert "to weight neurons (EMD_W) give --neuron-weights FILE" in error_line(capsys)
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--neuron-weights", str(learned), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["weighted"] and result["value"] == pytest.approx(float(EMD(first, second, weights=weights)), rel=1e-12)
    assert result["value"] != pytest.approx(float(EMD(first, second)))
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--neuron-weights", str(learned), "--metric", "nfd"]) == 2
    assert "holds weights learned for emd, not for nfd" in error_line(capsys)
    two = tmp_path / "two.json"
    two.write_text(json.dumps({"metric": "emd", "attributes": {"hat": {"weights": weights}, "rain": {"weights": weights}}}))
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--neuron-weights", str(two)]) == 2
    assert "holds weights for hat, rain; choose one with --attribute" in error_line(capsys)
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--neuron-weights", str(two), "--attribute", "rain"]) == 0


def test_saved_dnas_are_recognised_with_a_missing_or_compact_arrays_file(folders, tmp_path, capsys, processor):
    dna = processor.make_vdna(folders["set14"], verbose=False, num_workers=0)
    dna.save(tmp_path / "compact", compact=True)
    assert main(["compare", str(tmp_path / "compact"), str(tmp_path / "compact"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["value"] == 0.0
    dna.save(tmp_path / "lost")
    (tmp_path / "lost.npz").unlink()
    assert main(["compare", str(tmp_path / "lost"), str(tmp_path / "compact")]) == 2
    assert f"DNA file {tmp_path / 'lost.npz'} does not exist" in error_line(capsys)
    assert main(["inspect", str(tmp_path / "lost")]) == 2
    assert f"DNA file {tmp_path / 'lost.npz'} does not exist" in error_line(capsys)


def test_rank_says_when_the_relevant_names_match_no_image(folders, tmp_path, capsys):
    relevant = tmp_path / "relevant.txt"
    relevant.write_text("no_such_image.jpg\nanother.png\n")
    argv = ["rank", str(folders["set14"]), str(folders["sunhays80"]), "--relevant", str(relevant), "--quiet", "--workers", "0"]
    assert main(argv) == 2
    line = error_line(capsys)
    assert f"--relevant: none of the 2 names in {relevant} is an image of the ranking" in line


def test_sample_size_fd_says_what_it_needs_in_plain_words(folders, tmp_path, capsys, processor):
    processor.make_vdna(folders["set14"], distribution_name="image-histogram-1000", verbose=False).save(tmp_path / "images")
    processor.make_vdna(folders["sunhays80"], verbose=False).save(tmp_path / "reference")
    assert main(["sample-size", str(tmp_path / "images"), str(tmp_path / "reference"), "--sizes", "2,3", "--fd"]) == 2
    line = error_line(capsys)
    assert "--fd compares the Fréchet distance of each image's mean activations" in line and "give IMAGES and REFERENCE" in line
    assert main(["sample-size", str(tmp_path / "images"), str(tmp_path / "reference"), "--sizes", "2,x"]) == 2
    assert "--sizes must be comma-separated whole numbers" in error_line(capsys)


def test_report_help_lists_only_the_options_it_takes(capsys):
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    shown = capsys.readouterr().out
    assert "--extractor" in shown and "--bins" in shown and "--streams" in shown
    for absent in ("--ray", "--checkpoint", "--distribution"):
        assert absent not in shown, absent


@pytest.mark.usefixtures("counting_net")
def test_a_report_runs_the_network_once_per_image(folders, tmp_path, capsys, counting_ranges):
    FORWARD_CALLS.clear()
    GRADIENT_CALLS.clear()
    argv = ["report", str(folders["set14"]), str(folders["sunhays80"]), "-o", str(tmp_path / "r.html"), "--quiet",
            "--extractor", "test_counting_net", "--ranges", str(counting_ranges), "--workers", "0", "--images-shown", "2"]
    assert main(argv) == 0
    assert sum(FORWARD_CALLS) == 8  # four images a set, each through the network once
    assert GRADIENT_CALLS == [1]  # and one noise image, once, to map the conv layer's positions to the input
    text = (tmp_path / "r.html").read_text()
    assert "<h1>set14 vs sunhays80</h1>" in text
    assert text.count('class="crop"') == 6 * 2 * 2  # six neurons (all the network has), two crops per set


@pytest.mark.usefixtures("counting_net")
def test_several_dnas_of_one_pass_equal_the_dnas_made_one_at_a_time(folders, counting_ranges):
    processor = VDNAProcessor()
    options = {"feat_extractor_name": "test_counting_net", "activation_ranges": counting_ranges, "verbose": False,
               "num_workers": 0}
    FORWARD_CALLS.clear()
    together = processor.make_vdnas(folders["set14"], ["image-histogram-50", "image-mean", "gaussian"], **options)
    assert sum(FORWARD_CALLS) == 4
    for name, dna in together.items():
        alone = processor.make_vdna(folders["set14"], distribution_name=name, **options)
        assert type(dna) is type(alone) and dna.num_images == alone.num_images == 4
        assert dna.provenance.images == alone.provenance.images
        assert dna.provenance.ranges_sha256 == alone.provenance.ranges_sha256  # none for the Gaussians
        for layer in alone.neurons_list:
            mine, theirs = dna.data[layer], alone.data[layer]
            for key in (mine if isinstance(mine, dict) else [None]):
                assert torch.equal(mine[key] if key else mine, theirs[key] if key else theirs), (name, key)
    with pytest.raises(ValueError, match="checkpoint saves the state of one DNA"):
        processor.make_vdnas(folders["set14"], ["histogram-10", "gaussian"], checkpoint="x.ckpt", **options)
    with pytest.raises(TypeError, match=r"unknown settings of make_vdnas \['bins'\]"):
        processor.make_vdnas(folders["set14"], ["histogram-10"], bins=10)


def test_settings_read_as_vdna_0_1_1_attributes_and_survive_save_and_load(folders, tmp_path, processor):
    dna = processor.make_vdna(folders["set14"], batch_size=3, verbose=False, num_workers=0)
    settings = dna.extraction_settings_used
    assert settings.hist_nb_bins == 1000 and settings.batch_size == 3 and settings.normalise_feats is True
    assert settings.accumulate_spatial_feats_in_hist is True and settings.average_feats_spatially is False
    assert dna.data_settings_used.source == str(folders["set14"]) and dna.data_settings_used.num_images == -1
    dna.save(tmp_path / "saved")
    loaded = load_vdna_from_files(tmp_path / "saved")
    assert loaded.extraction_settings_used == settings and loaded.data_settings_used == dna.data_settings_used
    assert json.loads((tmp_path / "saved.json").read_text())["extraction_settings"]["normalise_feats"] is True


@pytest.mark.usefixtures("counting_net")
def test_compare_stats_makes_per_image_dnas_in_one_pass_and_says_what_it_needs(folders, tmp_path, capsys, counting_ranges):
    counting = ["--extractor", "test_counting_net", "--ranges", str(counting_ranges), "--workers", "0", "--quiet"]
    FORWARD_CALLS.clear()
    assert main(["compare", str(folders["set14"]), str(folders["sunhays80"]), "--stats", "--resamples", "5", *counting]) == 0
    assert sum(FORWARD_CALLS) == 8  # four images a set, each through the network once
    assert "noise floor" in capsys.readouterr().out
    processor = VDNAProcessor()
    options = {"feat_extractor_name": "test_counting_net", "activation_ranges": counting_ranges, "verbose": False, "num_workers": 0}
    processor.make_vdna(folders["set14"], **options).save(tmp_path / "whole")
    processor.make_vdna(folders["set14"], distribution_name="image-histogram-1000", **options).save(tmp_path / "images")
    FORWARD_CALLS.clear()
    for argv, message in [
        ([str(folders["sunhays80"]), str(tmp_path / "whole"), "--stats"],
         (f"{tmp_path / 'whole'} is a histogram DNA; this needs per-image DNAs (image-histogram), made with "
          "`vdna make SOURCE --distribution image-histogram-1000`")),
        ([str(tmp_path / "images"), str(tmp_path / "images"), "--stats", "--metric", "nfd"],
         (f"{tmp_path / 'images'} is an image-histogram DNA; this needs per-image DNAs (image-mean), made with "
          "`vdna make SOURCE --distribution image-mean`")),
        ([str(folders["set14"]), str(folders["sunhays80"]), "--resamples", "50"],
         "--resamples and --permutations set the statistics of --stats; add --stats"),
        ([str(folders["set14"]), str(folders["sunhays80"]), "--stats", "--resamples", "0"], "--resamples must be a positive integer, got 0"),
        ([str(folders["set14"]), str(folders["sunhays80"]), "--stats", "--permutations", "-2"],
         "--permutations must be a positive integer, got -2"),
        ([str(folders["set14"]), str(folders["sunhays80"]), "--stats", "--seed", "-1"], "--seed must be a non-negative integer, got -1"),
        ([str(folders["set14"]), str(folders["sunhays80"]), "--stats", "--distribution", "histogram-1000"],
         "--stats resamples per-image DNAs: with --metric emd give --distribution image-histogram-B or none, not histogram-1000"),
    ]:
        assert main(["compare", *argv, *counting]) == 2
        assert error_line(capsys) == f"vdna compare: error: {message}\n"
    assert main(["compare", str(tmp_path / "images"), str(tmp_path / "images"), "--stats", "--permutations", "1000"]) == 0
    assert "p-value 1  (permutation test, 1000 permutations, seed 0)" in capsys.readouterr().out  # identical sets
    assert main(["report", str(folders["set14"]), str(folders["sunhays80"]), "-o", str(tmp_path / "r.html"),
                 "--resamples", "0", *counting]) == 2
    assert error_line(capsys) == "vdna report: error: --resamples must be a positive integer, got 0\n"
    assert FORWARD_CALLS == []  # every mistake is said before any image goes through the network


@pytest.mark.usefixtures("counting_net")
def test_sample_size_with_a_dataset_reference_draws_its_floor_from_the_images_alone(folders, tmp_path, capsys, counting_ranges):
    processor = VDNAProcessor()
    options = {"feat_extractor_name": "test_counting_net", "activation_ranges": counting_ranges, "verbose": False, "num_workers": 0}
    processor.make_vdna(folders["set14"], distribution_name="image-histogram-1000", **options).save(tmp_path / "images")
    processor.make_vdna(folders["sunhays80"], **options).save(tmp_path / "reference")  # 4 images, whole set
    processor.make_vdna(folders["sunhays80"], distribution_name="gaussian", **options).save(tmp_path / "gauss")
    assert main(["sample-size", str(tmp_path / "images"), str(tmp_path / "reference"), "--sizes", "2,3", "--seeds", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "noise floor" not in lines[1] + lines[2]  # 4 images cannot stand for a reference of 4 beside 2 others
    assert lines[3].startswith("noise floor: the distance from n images to 4 images (REFERENCE's size), drawn at random "
                               "from IMAGES alone (REFERENCE is a DNA of a whole set, not per-image DNAs)")
    assert lines[4] == ("  no size has one: the 4 IMAGES cannot spare 4 beside the subset to stand for REFERENCE; give "
                        "REFERENCE as images or per-image DNAs (`vdna make SOURCE --distribution image-histogram-1000`) "
                        "to pool them")
    assert main(["sample-size", str(tmp_path / "images"), str(tmp_path / "gauss"), "--sizes", "2,3"]) == 2
    assert error_line(capsys) == ("vdna sample-size: error: metric 'emd' compares histogram DNAs (or per-image "
                                  "image-histogram DNAs); the reference is a VDNAGauss\n")
