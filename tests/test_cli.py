"""The vdna command."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import image_files

from vdna import EMD, FD, NFD, VDNAProcessor, load_vdna_from_files
from vdna.cli import main
from vdna.distances import list_distances
from vdna.stats import compare_sets, layer_shares, layer_table


@pytest.fixture(scope="module")
def two_sets(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("sets")
    for name, count in (("set14", 3), ("sunhays80", 3)):
        target = root / name
        target.mkdir()
        for path in image_files(data_dir / name, count):
            shutil.copy(path, target / path.name)
    return root / "set14", root / "sunhays80"


def test_make_inspect_and_compare(two_sets, tmp_path, capsys):
    first, second = two_sets
    assert main(["make", str(first), "-o", str(tmp_path / "a"), "--quiet", "--workers", "0"]) == 0
    assert "histogram-1000 DNA of 3 images" in capsys.readouterr().out
    assert load_vdna_from_files(tmp_path / "a").num_images == 3
    assert main(["inspect", str(tmp_path / "a.json")]) == 0
    shown = capsys.readouterr().out
    assert "efficientnet_lite0 (18 layers, 3120 neurons)" in shown and "ranges sha256" in shown

    assert main(["compare", str(tmp_path / "a"), str(first), "--quiet", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["metric"] == "emd" and result["value"] == 0.0 and result["b"]["num_images"] == 3

    neuron_file = tmp_path / "neurons.csv"
    assert main(["compare", str(tmp_path / "a.npz"), str(second), "--quiet", "--layer", "head", "--neuron-wise", str(neuron_file)]) == 0
    line = capsys.readouterr().out
    assert line.startswith("emd: ") and "layer head" in line and float(line.split()[1]) > 0
    rows = list(csv.DictReader(neuron_file.open()))
    assert len(rows) == 1280 and rows[0]["layer"] == "head" and float(rows[0]["emd"]) >= 0


def test_compare_gaussians_from_images(two_sets, capsys):
    first, second = two_sets
    assert main(["compare", str(first), str(second), "--metric", "fd", "--quiet", "--json", "--workers", "0"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["metric"] == "fd" and result["a"]["distribution"] == "layer-gaussian" and result["value"] > 0


def test_errors_are_reported_with_exit_code_2(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "missing"), str(tmp_path / "also")]) == 2
    assert "vdna compare: error: source" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["make", str(tmp_path / "empty"), "-o", str(tmp_path / "x")]) == 2
    assert "no images found in" in capsys.readouterr().err


def test_extractors_and_help(capsys):
    assert main(["extractors"]) == 0
    assert "efficientnet_lite0" in capsys.readouterr().out.split()
    executable = shutil.which("vdna")
    assert executable, "the vdna console script is installed with the package"
    help_text = subprocess.run([executable, "make", "--help"], capture_output=True, text=True, check=True).stdout
    assert "--distribution" in help_text and "--skip-bad" in help_text


def test_comparing_saved_dnas_builds_no_network_and_imports_no_model_library(fixtures_dir):
    script = (
        "import sys\n"
        "from vdna.cli import main\n"
        f"assert main(['compare', {str(fixtures_dir / 'hist_a')!r}, {str(fixtures_dir / 'hist_b')!r}]) == 0\n"
        "print(sorted(name for name in ('timm', 'torchvision') if name in sys.modules))\n"
    )
    shown = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.splitlines()
    assert shown[0].startswith("emd: ") and shown[-1] == "[]"


def test_make_compact_and_compare_it(two_sets, tmp_path, capsys):
    first, _ = two_sets
    assert main(["make", str(first), "-o", str(tmp_path / "c"), "--compact", "--quiet", "--workers", "0"]) == 0
    assert capsys.readouterr().out.rstrip().endswith(".vdnz")
    assert (tmp_path / "c.vdnz").is_file() and not (tmp_path / "c.npz").exists()
    assert main(["compare", str(tmp_path / "c.vdnz"), str(first), "--quiet", "--json", "--workers", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["value"] == 0.0


@pytest.mark.slow
def test_make_and_rank_with_streams_and_where_streams_do_not_apply(two_sets, tmp_path, capsys, one_torch_thread):
    first, second = two_sets
    assert main(["make", str(first), "-o", str(tmp_path / "one"), "--quiet", "--workers", "0"]) == 0
    assert main(["make", str(first), "-o", str(tmp_path / "two"), "--quiet", "--workers", "0", "--streams", "2"]) == 0
    one, two = load_vdna_from_files(tmp_path / "one"), load_vdna_from_files(tmp_path / "two")
    assert two.provenance.extraction_settings["streams"] == 2
    assert all(torch.equal(one.data[layer], two.data[layer]) for layer in one.neurons_list)
    assert main(["make", str(first), "-o", str(tmp_path / "r"), "--ray", "--streams", "2"]) == 2
    assert "--streams is an option of local runs, not of Ray runs" in capsys.readouterr().err
    capsys.readouterr()
    ranking = ["rank", str(first), str(second), "--quiet", "--workers", "0"]  # per-image DNAs, merged in order
    assert main(ranking) == 0
    alone = capsys.readouterr().out
    assert main([*ranking, "--streams", "2"]) == 0
    assert capsys.readouterr().out == alone and len(alone.splitlines()) == 3


STATS = ["--resamples", "20", "--permutations", "30", "--seed", "4", "--quiet", "--workers", "0"]


def test_compare_stats_of_folders_is_compare_sets_of_their_per_image_dnas(two_sets, capsys, dna_of):
    first, second = two_sets
    assert main(["compare", str(first), str(second), "--stats", "--by-layer", "--json", *STATS]) == 0
    shown = json.loads(capsys.readouterr().out)
    images = [dna_of(folder, distribution_name="image-histogram-1000") for folder in two_sets]
    expected = compare_sets(*images, resamples=20, permutations=30, seed=4)
    assert shown["value"] == expected.value and shown["a"]["distribution"] == "image-histogram-1000"
    stats = shown["stats"]
    assert stats["ci"] == list(expected.ci) and stats["noise_floor"] == expected.noise_floor
    assert stats["estimate"] == expected.estimate and stats["p_value"] == expected.p_value and "excess" not in stats
    assert list(stats)[:5] == ["estimate", "ci", "noise_floor", "noise_floor_spread", "p_value"]
    assert (stats["resamples"], stats["permutations"], stats["seed"], stats["size_a"]) == (20, 30, 4, 3)
    assert list(shown["layers"]) == list(images[0].neurons_list)  # early to late
    assert shown["layers"]["head"] == expected.layers["head"].to_dict()
    assert shown["layers"]["head"]["noise_floor"] == expected.layers["head"].noise_floor


def test_several_metrics_make_each_sets_dnas_in_one_pass_and_give_what_each_metric_gives_alone(two_sets, capsys, dna_of,
                                                                                                   monkeypatch):
    alone = {metric: [dna_of(folder, distribution_name=kind, num_workers=0) for folder in two_sets]
             for metric, kind in (("emd", "histogram-1000"), ("nfd", "gaussian"), ("fd", "layer-gaussian"))}
    passes = []
    run = VDNAProcessor.run
    monkeypatch.setattr(VDNAProcessor, "run", lambda self, source, config, distributions=None, *rest, **named: (
        passes.append(list(distributions)), run(self, source, config, distributions, *rest, **named))[1])
    assert main(["compare", *map(str, two_sets), "--metrics", "emd,nfd,fd", "--json", "--quiet", "--workers", "0"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert passes == [["histogram-1000", "gaussian", "layer-gaussian"]] * 2
    assert [result["metric"] for result in shown] == ["emd", "nfd", "fd"]
    assert [result["value"] for result in shown] == [EMD(*alone["emd"]).item(), NFD(*alone["nfd"]).item(), FD(*alone["fd"]).item()]

    passes.clear()
    assert main(["compare", *map(str, two_sets), "--metrics", "emd,nfd", "--stats", *STATS]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert passes == [["image-histogram-1000", "image-mean"]] * 2
    assert lines[0].startswith("emd: ") and sum(line.startswith("nfd: ") for line in lines) == 1
    assert sum(line.startswith("  95% CI") for line in lines) == 2


@pytest.mark.parametrize(("arguments", "message"), [
    (["--metric", "emd", "--metrics", "nfd"], "give --metric NAME or --metrics NAME,NAME,..., not both"),
    (["--metrics", "emd,nfd", "--neuron-wise", "units.csv"], "--neuron-wise writes the units of one metric"),
    (["--metrics", "emd,nfd", "--distribution", "gaussian"], "--distribution sets the DNAs of one metric"),
    (["--metrics", "emd,emd"], "metrics are named twice: emd, emd"),
])
def test_several_metrics_refuse_what_applies_to_one(two_sets, tmp_path, capsys, arguments, message):
    arguments = [argument.replace("units.csv", str(tmp_path / "units.csv")) for argument in arguments]
    assert main(["compare", *map(str, two_sets), *arguments, "--quiet"]) == 2
    assert message in capsys.readouterr().err


def test_an_unknown_metric_in_the_list_is_named_with_the_valid_ones(two_sets, capsys):
    with pytest.raises(SystemExit):
        main(["compare", *map(str, two_sets), "--metrics", "emd,nope"])
    assert f"unknown metric nope; valid: {', '.join(list_distances())}" in capsys.readouterr().err


def test_compare_stats_of_saved_per_image_dnas_prints_the_statistics_and_the_layers(two_sets, tmp_path, capsys, dna_of):
    for name, folder in zip("ab", two_sets):
        dna_of(folder, distribution_name="image-histogram-1000").save(tmp_path / name)
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--stats", "--by-layer", "--layer", "blocks.6.0",
                 "--neuron-wise", str(tmp_path / "n.csv"), *STATS]) == 0
    lines = capsys.readouterr().out.splitlines()
    a, b = (load_vdna_from_files(tmp_path / name) for name in "ab")
    expected = compare_sets(a, b, resamples=20, permutations=30, seed=4, neurons={"blocks.6.0": None})
    assert lines[0] == (f"emd: {expected.value:.6f}  (efficientnet_lite0, image-histogram-1000, layer blocks.6.0; "
                        "A: 3 images, B: 3 images)")
    assert lines[1].split()[:2] == ["estimate", f"{expected.estimate:.6g}"] and "sampling noise removed" in lines[1]
    assert lines[2].split()[:5] == ["95%", "CI", f"{expected.ci[0]:.6g}", "to", f"{expected.ci[1]:.6g}"]
    assert lines[3].split()[:4] == ["noise", "floor", f"{expected.noise_floor:.6g}", "+-"]
    assert lines[4].split()[:2] == ["p-value", f"{expected.p_value:.4g}"]
    assert lines[5].strip() == expected.reading()
    assert lines[6:] == layer_table(expected.layers).splitlines() and lines[7].split()[:4] == ["blocks.6.0", "320",
                                                                                                 f"{expected.value:.4g}", "100.0%"]
    rows = list(csv.DictReader((tmp_path / "n.csv").open()))
    per_neuron = EMD(a.subset(), b.subset(), use_neurons_from_layer="blocks.6.0", return_neuron_wise=True)["blocks.6.0"]
    assert len(rows) == 320 and float(rows[5]["emd"]) == float(per_neuron[5])


def test_compare_by_layer_of_dataset_dnas_gives_shares_without_a_noise_floor(two_sets, tmp_path, capsys, dna_of):
    a, b = dna_of(two_sets[0]), dna_of(two_sets[1])
    a.save(tmp_path / "a")
    b.save(tmp_path / "b")
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--by-layer"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1:] == layer_table(layer_shares(a, b)).splitlines() and lines[1].split() == ["layer", "neurons", "value", "share"]
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--by-layer", "--json"]) == 0
    layers = json.loads(capsys.readouterr().out)["layers"]
    assert layers["stem"]["share"] == layer_shares(a, b)["stem"].share and layers["stem"]["noise_floor"] is None


def test_compare_stats_of_gaussians_from_folders(two_sets, capsys, dna_of):
    assert main(["compare", str(two_sets[0]), str(two_sets[1]), "--stats", "--metric", "fd", "--layer", "blocks.2.0",
                 "--json", *STATS]) == 0
    shown = json.loads(capsys.readouterr().out)
    means = [dna_of(folder, distribution_name="image-mean") for folder in two_sets]
    expected = compare_sets(*means, "fd", resamples=20, permutations=30, seed=4, neurons={"blocks.2.0": None})
    assert shown["a"]["distribution"] == "image-mean" and shown["value"] == expected.value
    assert shown["stats"]["ci"] == list(expected.ci) and shown["stats"]["interval"] == "squared"
    assert shown["stats"]["p_value"] == expected.p_value and "layers" not in shown


@pytest.mark.slow
def test_a_first_run_compiles_the_kernels_as_its_own_phase_and_progress_advances_per_image(two_sets, tmp_path):
    first, _ = two_sets
    environment = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "kernels"), "TQDM_MININTERVAL": "0"}

    def progress_of_make(output: str) -> list[str]:
        command = [shutil.which("vdna"), "make", str(first), "-o", str(tmp_path / output), "--batch-size", "2"]
        shown = subprocess.run(command, capture_output=True, text=True, check=True, env=environment).stderr
        return [line.strip() for line in shown.replace("\r", "\n").splitlines() if line.strip()]

    first_run = progress_of_make("first")
    compiling = [line for line in first_run if line.startswith("compiling kernels, once")]
    assert compiling and "1/1" in compiling[-1]
    images_done = [line.split("|")[2].split()[0] for line in first_run if line.startswith("DNA histogram-1000")]
    assert ["1/3", "2/3", "3/3"] == sorted(set(images_done) - {"0/3"})  # one step per image in batches of 2
    assert first_run.index(compiling[-1]) < first_run.index(next(line for line in first_run if "DNA" in line))
    second_run = progress_of_make("second")
    assert not any(line.startswith("compiling kernels") for line in second_run)  # cached by the first run
    assert any(line.startswith("DNA histogram-1000") and "3/3" in line for line in second_run)
