"""Each class of mistake, checked once at its boundary, for every command or entry point it applies to.

A new command inherits these checks by using the same argument types (outputs, input files,
counts), the same validators (neuron selections, weights), the same merge checks and the same
one-line error, warning and interrupt handling.
"""

from __future__ import annotations

import argparse
import re

import numpy as np
import pytest
import torch
from helpers import gauss_dna, hist_dna, layer_gauss_dna

from vdna.cli import _dna_output, _input_file, _output_file, build_parser, main
from vdna.distances import get_distance, list_distances


def _commands() -> dict[str, argparse.ArgumentParser]:
    commands = next(action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction))
    return dict(commands.choices)


def _argv(command: str, parser: argparse.ArgumentParser, flag: str) -> list[str]:
    """The command with a placeholder for each argument it requires, ending with ``flag`` awaiting its value."""
    argv = [command]
    for action in parser._actions:
        if not action.option_strings:
            argv.append(action.dest.upper())
        elif action.required and flag not in action.option_strings:
            argv += [action.option_strings[-1], "2"]
    return [*argv, flag]


# Every flag of every command that writes a file, found in the parser: a new one is tested here by itself.
OUTPUTS = [
    (_argv(command, parser, action.option_strings[-1]), action.option_strings[-1])
    for command, parser in _commands().items()
    for action in parser._actions
    if action.type in (_output_file, _dna_output)
]
# Flags whose value is free text (a layer's name, a list of sizes, folders of images read later): any other
# flag that takes a value has a checked type (a file written or read, a number) or a list of choices.
FREE_TEXT = {"--extractor", "--distribution", "--device", "--ray", "--layer", "--attribute", "--other-real",
             "--other-generated", "--test", "--target", "--sizes", "--fd-layer"}


def test_every_flag_that_takes_a_value_is_checked_or_free_text():
    unchecked = {
        f"{command} {action.option_strings[-1]}"
        for command, parser in _commands().items()
        for action in parser._actions
        if action.option_strings and action.nargs != 0 and action.type in (None, str) and not action.choices
        and not isinstance(action, argparse._HelpAction) and action.option_strings[-1] not in FREE_TEXT
    }
    assert not unchecked
    assert (["sample-size", "IMAGES", "REFERENCE", "--sizes", "2", "--plot"], "--plot") in OUTPUTS
    assert (["make", "SOURCE", "--output", "2", "--checkpoint"], "--checkpoint") in OUTPUTS  # a setting's flag: from its declaration
    assert {flag for _, flag in INPUTS} == {"--relevant", "--performance", "--neuron-weights", "--ranges", "--weights"}


def _bad_targets(tmp_path):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_folder").mkdir()
    return {
        "an existing folder": (str(tmp_path / "a_folder"), "is a folder; give the path of a file"),
        "a path under a file": (str(tmp_path / "a_file" / "out"), "a_file is a file, so"),
        "an empty path": ("", "a file path is needed, got an empty one"),
        "an unwritable folder": ("/proc/vdna-out", "is not a writable folder"),
    }


def _one_line_error(capsys, flag: str) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vdna ") and ": error: " in lines[0], lines
    assert flag in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(("argv", "flag"), OUTPUTS, ids=[f"{argv[0]} {flag}" for argv, flag in OUTPUTS])
def test_every_output_is_checked_before_any_work_and_the_error_names_the_flag(argv, flag, tmp_path, capsys):
    for kind, (target, reason) in _bad_targets(tmp_path).items():
        with pytest.raises(SystemExit) as stopped:
            main([*argv, target])
        assert stopped.value.code == 2, kind
        line = _one_line_error(capsys, flag)
        assert reason in line, (kind, line)


INPUTS = [
    (_argv(command, parser, action.option_strings[-1]), action.option_strings[-1])
    for command, parser in _commands().items()
    for action in parser._actions
    if action.type is _input_file
]


@pytest.mark.parametrize(("argv", "flag"), INPUTS, ids=[f"{argv[0]} {flag}" for argv, flag in INPUTS])
def test_every_input_file_is_checked_before_any_work(argv, flag, tmp_path, capsys):
    with pytest.raises(SystemExit, match="2"):
        main([*argv, str(tmp_path / "missing.txt")])
    assert "missing.txt does not exist" in _one_line_error(capsys, flag)
    with pytest.raises(SystemExit, match="2"):
        main([*argv, str(tmp_path)])
    assert "is a folder, not a file" in _one_line_error(capsys, flag)


@pytest.mark.parametrize(
    ("argv", "flag", "reason"),
    [
        (["rank", "I", "R", "--top", "-5"], "--top", "must be a non-negative whole number, got -5"),
        (["realism", "G", "R", "--top", "-1"], "--top", "must be a non-negative whole number, got -1"),
        (["realism", "G", "R", "--neurons", "0"], "--neurons", "must be a positive whole number, got 0"),
        (["neurons", "A", "B", "--top", "0"], "--top", "must be a positive whole number, got 0"),
        (["report", "A", "B", "-o", "r.html", "--top-neurons", "0"], "--top-neurons", "must be a positive whole number"),
        (["report", "A", "B", "-o", "r.html", "--images-shown", "-2"], "--images-shown", "must be a positive whole number"),
        (["sample-size", "I", "R", "--sizes", "2", "--seeds", "0"], "--seeds", "must be a positive whole number, got 0"),
        (["attributes", "T", "V", "--patience", "0"], "--patience", "must be a positive whole number, got 0"),
        (["attributes", "T", "V", "--learning-rate", "-0.001"], "--learning-rate", "must be at least 0, got -0.001"),
        (["calibrate", "S", "-o", "r.json", "--margin", "12"], "--margin", "must be in [0, 10), got 12"),
        (["sample-size", "I", "R", "--tolerance", "nan"], "--tolerance", "must be a finite number, got nan"),
        (["attributes", "T", "V", "--learning-rate", "inf"], "--learning-rate", "must be a finite number, got inf"),
        (["rank", "I", "R", "--bins", "1"], "--bins", "must be a whole number >= 2, got 1"),
        (["rank", "I", "R", "--top", "many"], "--top", "expected a whole number, got 'many'"),
    ],
)
def test_numbers_are_checked_as_flags(argv, flag, reason, capsys):
    with pytest.raises(SystemExit, match="2"):
        main(argv)
    assert reason in _one_line_error(capsys, flag)


def test_a_missing_argument_is_one_line_too(capsys):
    with pytest.raises(SystemExit, match="2"):
        main(["compare", "A"])
    assert "the following arguments are required: b" in _one_line_error(capsys, "vdna compare")


# -- neuron selections and weights, for every distance ------------------------------------------------------
def _pair(name: str):
    """Two set DNAs of two layers (3 and 2 units) that ``name`` compares."""
    distance = get_distance(name)
    rng = np.random.default_rng(0)
    if "histogram" in distance.set_types:
        return (hist_dna({"l0": rng.integers(1, 9, (3, 6)), "l1": rng.integers(1, 9, (2, 6))}) for _ in range(2))
    if "image-mean" in distance.set_types:  # per-image embeddings: 9 images, as many as a Gaussian's samples
        from vdna.distributions import VDNAImageMeans

        return (VDNAImageMeans.create({}, "test_net", {"l0": 3, "l1": 2}, {"l0": torch.from_numpy(rng.normal(size=(9, 3))),
                                      "l1": torch.from_numpy(rng.normal(size=(9, 2)))}, 9) for _ in range(2))
    if "gaussian" in distance.set_types:
        return (gauss_dna({"l0": rng.normal(size=3), "l1": rng.normal(size=2)}, {"l0": rng.random(3) + 0.5, "l1": rng.random(2) + 0.5})
                for _ in range(2))
    return (layer_gauss_dna({"l0": rng.normal(size=(9, 3)), "l1": rng.normal(size=(9, 2))}) for _ in range(2))


NEURON_WISE = [name for name in list_distances() if get_distance(name).unit == "neuron"]


@pytest.mark.parametrize("name", NEURON_WISE)
@pytest.mark.parametrize(
    ("neurons", "error", "match"),
    [
        ({"l0": [1.5]}, TypeError, r"neuron indices of layer 'l0' must be integers, got 1.5"),
        ({"l0": [True]}, TypeError, r"neuron indices of layer 'l0' must be integers, got True"),
        ({"l0": torch.tensor([0.0])}, TypeError, r"must be integers, got an array of torch.float32"),
        ({"l0": np.array([True])}, TypeError, r"must be integers, got an array of bool"),
        ({"l0": []}, ValueError, r"neurons selects no neuron of layer 'l0'"),
        ({}, ValueError, r"neurons selects nothing"),
        ({"l0": [3]}, ValueError, r"neuron indices for layer 'l0' must lie in \[0, 3\), got \[3\]"),
        ({"l0": "0"}, TypeError, r"neurons of layer 'l0' must be a sequence of neuron indices"),
        ([0, 1], TypeError, r"neurons must map layers to neuron indices"),
    ],
)
def test_neuron_selections_are_checked_for_every_distance(name, neurons, error, match):
    a, b = _pair(name)
    with pytest.raises(error, match=match):
        get_distance(name).compare(a, b, neurons=neurons)
    assert get_distance(name).compare(a, b, neurons={"l0": np.array([0, 2]), "l1": None}) >= 0  # numpy indices are fine


@pytest.mark.parametrize("name", list_distances())
@pytest.mark.parametrize(
    ("weights", "match"),
    [("negative", "weights must not be negative"), ("zero", "weights are all zero"), ("nan", "NaN or infinite")],
)
def test_weights_are_checked_for_every_distance(name, weights, match):
    a, b = _pair(name)
    units = 2 if get_distance(name).unit == "layer" else 5
    vector = {"negative": -np.ones(units), "zero": np.zeros(units), "nan": np.full(units, np.nan)}[weights]
    with pytest.raises(ValueError, match=match):
        get_distance(name).compare(a, b, neuron_weights=vector)


def per_image_histograms(seed: int = 1, images: int = 4):
    """Per-image histograms of two small layers, from synthetic activations."""
    from vdna.distributions import parse_distribution
    from vdna.ranges import ActivationRanges

    layers = {"l0": 3, "l1": 2}
    ranges = ActivationRanges("test_net", {layer: np.full(n, -2, np.float32) for layer, n in layers.items()},
                              {layer: np.full(n, 2, np.float32) for layer, n in layers.items()})
    dna_class, parameters = parse_distribution("image-histogram-8")
    accumulator = dna_class.accumulator(parameters, layers, ranges, torch.device("cpu"))
    generator = torch.Generator().manual_seed(seed)
    accumulator.update({layer: torch.randn(images, n, 5, generator=generator) for layer, n in layers.items()})
    return accumulator.result("test_net")


def test_statistics_and_applications_use_the_same_checks():
    from vdna.apps.retrieval import rank_images
    from vdna.distances import emd_to_reference
    from vdna.stats import compare_sets, noise_floor_curve

    images = per_image_histograms()
    with pytest.raises(ValueError, match="weights must not be negative"):
        compare_sets(images, images, neuron_weights=-np.ones(5))
    with pytest.raises(TypeError, match="must be integers, got 1.5"):
        compare_sets(images, images, neurons={"l0": [1.5]})
    with pytest.raises(TypeError, match="must be integers, got 1.5"):
        emd_to_reference(images, images.subset(), neurons={"l0": [1.5]})
    with pytest.raises(ValueError, match="weights are all zero"):
        emd_to_reference(images, images.subset(), neuron_weights=np.zeros(5))
    with pytest.raises(TypeError, match="must be integers, got True"):
        rank_images(images, images.subset(), neurons={"l0": [True]}, method="emd")
    with pytest.raises(ValueError, match="neurons selects nothing"):
        noise_floor_curve(images, [2], 2, neurons={})


def test_attribute_weights_are_learned_non_negative():
    from vdna.apps.attributes import learn_attribute_removal

    rng = np.random.default_rng(3)
    pairs = {name: tuple(hist_dna({"l": rng.integers(1, 9, (4, 6))}) for _ in range(2)) for name in ("hat", "rain", "night")}
    removal = learn_attribute_removal(pairs, pairs, "hat", learning_rate=0.05, max_iterations=300, patience=300)
    assert float(removal.weight_vector().min()) >= 0.0


# -- work bounded before it is allocated ---------------------------------------------------------------------
def test_statistics_refuse_what_cannot_fit_and_say_what_would(tmp_path, capsys):
    from vdna.stats import compare_sets

    images = per_image_histograms()
    with pytest.raises(ValueError, match=r"permutations 1000000000 would keep .* GiB .* permutations up to \d+ fit"):
        compare_sets(images, images, permutations=10**9)
    images.save(tmp_path / "a")
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "a"), "--stats", "--permutations", "1000000000"]) == 2
    assert "--permutations 1000000000 would keep at least" in _one_line_error(capsys, "--permutations")
    chunked = compare_sets(images, per_image_histograms(2), resamples=3, permutations=1300, seed=5)
    assert len(chunked.null) == 1300 and len(set(chunked.null)) > 10  # splits drawn in chunks, all of them kept


def test_splits_drawn_in_chunks_are_the_splits_drawn_at_once():
    from vdna.stats._comparison import _split_weights

    whole = _split_weights(np.random.default_rng(7), 9, 4, 1100)
    rng = np.random.default_rng(7)
    parts = np.concatenate([_split_weights(rng, 9, 4, size) for size in (512, 512, 76)], axis=1)
    assert np.array_equal(whole, parts)


# -- settings travel with state -------------------------------------------------------------------------------
def test_dnas_made_with_other_settings_do_not_merge():
    from dataclasses import replace

    first = hist_dna({"l": [[1, 2, 3]]})
    for name, mine, theirs in (("precision", "float32", "bfloat16"), ("crop_to_square_pre_resize", "none", "center"),
                               ("channels_last", False, True)):
        a = type(first)(first.name, first.feature_extractor_name, first.neurons_list, first.data, first.num_images,
                        replace(first.provenance, extraction_settings={name: mine}))
        b = type(first)(first.name, first.feature_extractor_name, first.neurons_list, first.data, first.num_images,
                        replace(first.provenance, extraction_settings={name: theirs}))
        with pytest.raises(ValueError, match=re.escape(f"cannot merge DNAs made with other settings: {name} ({mine!r} vs {theirs!r})")):
            a + b
        assert (a + a).num_images == 20
    assert (first + first).num_images == 20  # DNAs that record none of them (vdna 0.1.1's) merge as before


# -- one language on the command line --------------------------------------------------------------------------
def test_warnings_and_interrupts_are_one_line(tmp_path, capsys, monkeypatch):
    import warnings

    import vdna.cli

    def warn_then_stop(*_, **__):
        warnings.warn("something to know", UserWarning, stacklevel=1)
        raise KeyboardInterrupt

    monkeypatch.setattr(vdna.cli, "_dna", warn_then_stop)
    assert main(["make", str(tmp_path), "-o", str(tmp_path / "out"), "--checkpoint", str(tmp_path / "c.ckpt")]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["vdna make: warning: something to know",
                   f"vdna make: interrupted; {tmp_path / 'c.ckpt'} keeps the images done: run the same command again to resume"]
    assert not list(tmp_path.iterdir())


def test_saved_files_that_are_not_dnas_are_named_for_what_they_are(tmp_path, capsys):
    (tmp_path / "folder.json").mkdir()
    for argument, reason in ((str(tmp_path), "is a folder, not a saved DNA"), (".", "is a folder, not a saved DNA"),
                             (str(tmp_path / "folder.json"), "is a folder, not a saved DNA")):
        assert main(["inspect", argument]) == 2
        assert reason in _one_line_error(capsys, "vdna inspect")
    hist_dna({"l": [[1, 2, 3]]}).save(tmp_path / "c", compact=True)
    document = (tmp_path / "c.json").read_text().replace('"arrays_sha256"', '"no_sha256"')
    (tmp_path / "c.json").write_text(document)
    assert main(["inspect", str(tmp_path / "c")]) == 2
    assert "c.json records no sha256 of its compact arrays ('arrays_sha256')" in _one_line_error(capsys, "vdna inspect")


def test_transfer_needs_two_sets_and_rank_methods_say_what_saved_dnas_cannot_give(tmp_path, capsys):
    hist_dna({"l": [[1, 2, 3]]}).save(tmp_path / "a")
    assert main(["transfer", str(tmp_path / "a")]) == 2
    assert "transfer compares at least 2 DNAs or image sets, got 1" in _one_line_error(capsys, "vdna transfer")
    assert main(["rank", str(tmp_path / "a"), str(tmp_path / "a"), "--method", "hybrid"]) == 2
    assert "--method hybrid needs image-histogram and image-mean DNAs of each set" in _one_line_error(capsys, "vdna rank")


def test_spread_methods_need_two_reference_images():
    from vdna.apps.retrieval import rank_images

    images = per_image_histograms()
    one = images.select_images([0])
    with pytest.raises(ValueError, match="method 'emd-ratio' .* needs at least 2 reference images; the reference has 1"):
        rank_images(images, one, method="emd-ratio")


def _folder(tmp_path, name, photos, bad: bool = False):
    import shutil

    folder = tmp_path / name
    folder.mkdir()
    for photo in photos:
        shutil.copy(photo, folder / photo.name)
    if bad:
        (folder / "not_an_image.png").write_text("this is text")
    return folder


def test_a_report_of_one_image_says_so_before_the_network_and_offers_no_stats(data_dir, tmp_path, capsys, monkeypatch):
    from vdna.processor import VDNAProcessor

    photos = sorted((data_dir / "set14").iterdir())[:3]
    one, two = _folder(tmp_path, "one", photos[:1]), _folder(tmp_path, "two", photos[1:])
    monkeypatch.setattr(VDNAProcessor, "run", lambda *_, **__: pytest.fail("the network ran"))
    assert main(["report", str(one), str(two), "-o", str(tmp_path / "r.html"), "--quiet"]) == 2
    line = _one_line_error(capsys, "--no-stats")
    assert "one holds 1 image(s): the statistics compare resamples of each set and need at least 2 images a side" in line


@pytest.mark.slow
def test_a_report_lists_the_images_it_skipped_on_the_terminal_and_in_the_page(data_dir, tmp_path, capsys):
    photos = sorted((data_dir / "set14").iterdir())[:4]
    first, second = _folder(tmp_path, "first", photos[:2], bad=True), _folder(tmp_path, "second", photos[2:])
    page = tmp_path / "r.html"
    assert main(["report", str(first), str(second), "-o", str(page), "--skip-bad", "--no-stats", "--quiet", "--workers", "0",
                 "--top-neurons", "1", "--images-shown", "1"]) == 0
    err = capsys.readouterr().err
    assert "skipped 1 image(s):" in err and "not_an_image.png: " in err
    text = page.read_text()
    assert "first: 2 images, 1 skipped:" in text and 'class="skipped"' in text and "not_an_image.png" in text
    assert "How sure is the difference?" not in text
