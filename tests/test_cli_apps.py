"""The application commands of ``vdna``: rank, neurons, realism, attributes, transfer, sample-size, report."""

from __future__ import annotations

import csv
import json

import pytest
from conftest import image_files

from vdna import load_vdna_from_files
from vdna.apps.retrieval import average_precision, rank_images
from vdna.apps.transfer import ranking_discrepancy
from vdna.cli import main
from vdna.distances import EMD
from vdna.stats import noise_floor_curve

QUIET = ["--quiet", "--workers", "0"]


@pytest.fixture(scope="module")
def folders(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("folders")
    made = {}
    for name, folder, start in (("urban", "urban100", 0), ("urban_ref", "urban100", 20), ("bsd", "bsd100", 0), ("sun", "sunhays80", 0)):
        target = root / name
        target.mkdir()
        for path in image_files(data_dir / folder, start + 3)[start:]:
            (target / path.name).symlink_to(path)
        made[name] = target
    mixed = root / "mixed"
    mixed.mkdir()
    for name in ("urban", "bsd"):
        for path in sorted(made[name].iterdir()):
            (mixed / f"{name}_{path.name}").symlink_to(path.resolve())
    made["mixed"] = mixed
    return made


@pytest.mark.parametrize("command", ["rank", "neurons", "realism", "attributes", "transfer", "sample-size", "report"])
def test_every_application_command_explains_itself(command, capsys):
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f"usage: vdna {command} ")
    description = shown[: shown.index("\npositional arguments:")].split("\n\n", 1)[1]  # between usage and arguments
    assert len(" ".join(description.split())) > 150, description


def test_rank_prints_the_ranking_and_scores_it(folders, tmp_path, capsys):
    assert main(["make", str(folders["mixed"]), "-o", str(tmp_path / "images"), "--distribution", "image-histogram-1000", *QUIET]) == 0
    assert main(["make", str(folders["urban_ref"]), "-o", str(tmp_path / "ref"), *QUIET]) == 0
    capsys.readouterr()
    relevant = tmp_path / "relevant.txt"
    relevant.write_text("\n".join(f"urban_{p.name}" for p in sorted(folders["urban"].iterdir())))
    assert main(["rank", str(tmp_path / "images"), str(tmp_path / "ref"), "--top", "3", "--csv", str(tmp_path / "r.csv"),
                 "--relevant", str(relevant), "--pr-plot", str(tmp_path / "pr.png"), "--grid", str(tmp_path / "g.png")]) == 0
    out = capsys.readouterr().out.splitlines()
    images = load_vdna_from_files(tmp_path / "images")
    expected = rank_images(images, load_vdna_from_files(tmp_path / "ref"))
    assert out[0].split()[1:] == [f"{expected[0].distance:.6f}", expected[0].name]
    assert out[3] == "   ... 3 more (--top 0 shows all)"
    labels = [item.name.split("/")[-1].startswith("urban_") for item in expected]
    assert out[4].startswith(f"average precision (PR AUC): {average_precision([e.distance for e in expected], labels):.4f}")
    with open(tmp_path / "r.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["image"] for row in rows] == [item.name for item in expected]
    assert (tmp_path / "pr.png").stat().st_size > 1000 and (tmp_path / "g.png").stat().st_size > 1000


def test_neurons_lists_the_most_different_neurons(folders, tmp_path, capsys, dna_of):
    assert main(["neurons", str(folders["urban"]), str(folders["bsd"]), "--top", "2", "--csv", str(tmp_path / "n.csv"),
                 "--histograms", str(tmp_path / "h.png"), "--profile", str(tmp_path / "p.png"), *QUIET]) == 0
    out = capsys.readouterr().out.splitlines()
    urban, bsd = dna_of(folders["urban"]), dna_of(folders["bsd"])
    per_layer = EMD(urban, bsd, return_neuron_wise=True)
    best = max(((layer, i, float(v)) for layer, values in per_layer.items() for i, v in enumerate(values)), key=lambda t: t[2])
    assert out[0].split() == ["1", f"{best[0]}[{best[1]}]", "emd", f"{best[2]:.6f}"]
    with open(tmp_path / "n.csv") as handle:
        assert sum(1 for _ in handle) == 1 + urban.num_neurons
    assert (tmp_path / "h.png").is_file() and (tmp_path / "p.png").is_file()


def test_realism_uses_the_neurons_sensitive_on_other_classes(folders, capsys):
    assert main(["realism", str(folders["mixed"]), str(folders["urban_ref"]), "--other-real", str(folders["urban"]),
                 "--other-generated", str(folders["sun"]), "--neurons", "30", "--top", "0", *QUIET]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("ranking on the 30 neurons most sensitive to real vs generated")
    assert len(out) == 1 + 6
    with pytest.raises(SystemExit):
        main(["realism", "--help"])


def test_realism_needs_both_other_sets(folders, capsys):
    assert main(["realism", str(folders["mixed"]), str(folders["urban_ref"]), "--other-real", str(folders["urban"]), *QUIET]) == 2
    assert "--other-real and --other-generated go together" in capsys.readouterr().err


def test_attributes_learns_from_folders_of_pairs(folders, tmp_path, capsys, dna_of):
    for split, sources in (("train", ("urban", "bsd", "sun")), ("validation", ("urban_ref", "bsd", "sun"))):
        for attribute, (with_source, without_source) in {"city": (sources[0], sources[1]), "outdoor": (sources[2], sources[1])}.items():
            for side, source in (("with", with_source), ("without", without_source)):
                dna_of(folders[source], distribution_name="histogram-100").save(tmp_path / split / attribute / side)
    output = tmp_path / "weights.json"
    assert main(["attributes", str(tmp_path / "train"), str(tmp_path / "validation"), "--target", "city",
                 "--learning-rate", "1e-4", "--test", str(tmp_path / "validation"), "-o", str(output)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("city: removal ") and "; test " in line
    saved = json.loads(output.read_text())
    assert saved["metric"] == "emd" and len(saved["attributes"]["city"]["weights"]["head"]) == 1280
    assert saved["attributes"]["city"]["validation"] == saved["attributes"]["city"]["test"]
    assert main(["attributes", str(tmp_path / "train"), str(tmp_path / "nowhere")]) == 2
    assert "not a folder of attribute DNAs" in capsys.readouterr().err


def test_transfer_ranks_sources_and_scores_the_ranking(folders, tmp_path, capsys, dna_of):
    paths = []
    for name in ("urban", "bsd", "sun"):
        dna_of(folders[name]).save(tmp_path / name)
        paths.append(str(tmp_path / name))
    performance = {"urban": {"bsd": 50.0, "sun": 40.0}, "bsd": {"urban": 30.0, "sun": 60.0}}
    (tmp_path / "perf.json").write_text(json.dumps(performance))
    assert main(["transfer", *paths, "--performance", str(tmp_path / "perf.json"), "--heatmap", str(tmp_path / "m.png")]) == 0
    out = capsys.readouterr().out.splitlines()
    dnas = {name: load_vdna_from_files(tmp_path / name) for name in ("urban", "bsd", "sun")}
    distances = {t: {s: float(EMD(dnas[s], dnas[t])) for s in performance[t]} for t in performance}
    assert out[-1] == f"ranking discrepancy d: {ranking_discrepancy(performance, distances):.4f}"
    assert out[0].startswith("urban: ") and (tmp_path / "m.png").is_file()


@pytest.mark.slow
def test_sample_size_prints_curves(folders, tmp_path, capsys, dna_of):
    assert main(["sample-size", str(folders["mixed"]), str(folders["urban_ref"]), "--sizes", "2,4,6", "--seeds", "2",
                 "--fd", "--fd-layer", "blocks.2.0", "--plot", str(tmp_path / "s.png"), *QUIET]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("dna-emd: settles within 5% of its last value from ")
    images = dna_of(folders["mixed"], distribution_name="image-histogram-1000")
    pooled = dna_of(folders["urban_ref"], distribution_name="image-histogram-1000")
    full = float(EMD(images.subset(), pooled.subset()))
    assert out[3].split()[:2] == ["6", f"{full:.6f}"]
    assert out[4].startswith("fd: settles") and (tmp_path / "s.png").is_file()
    # the noise floor: 2, 4 and 6 of the 9 images of IMAGES and REFERENCE pooled against 3 others, over 2 draws
    floor = noise_floor_curve(images, [2, 4, 6], pooled, draws=2, seed=0)
    for line, mean, std in zip(out[1:4], floor.mean(axis=0), floor.std(axis=0)):
        assert line.split()[4:] == ["noise", "floor", f"{mean:.6f}", "+-", f"{std:.6f}"]
    means = [dna_of(folders[name], distribution_name="image-mean") for name in ("mixed", "urban_ref")]
    fd_floor = noise_floor_curve(*means[:1], [2, 4, 6], means[1], draws=2, seed=0, metric="fd", layers=["blocks.2.0"])
    assert out[7].split()[4:7] == ["noise", "floor", f"{fd_floor[:, 2].mean():.6f}"]
    assert out[8] == ("noise floor: the distance from n images to 3 images (REFERENCE's size), drawn at random from IMAGES "
                      "and REFERENCE pooled: what the curve reads when both come from one source; mean +- std over 2 draws")


@pytest.mark.slow
def test_report_command(folders, tmp_path, capsys):
    assert main(["report", str(folders["urban"]), str(folders["bsd"]), "-o", str(tmp_path / "r.html"), "--top-neurons", "2", *QUIET]) == 0
    assert capsys.readouterr().out.strip() == f"report -> {tmp_path / 'r.html'}"
    assert "<h1>urban vs bsd</h1>" in (tmp_path / "r.html").read_text()


def test_rank_refuses_a_dataset_dna_as_per_image_dnas(folders, tmp_path, capsys, dna_of):
    dna_of(folders["urban"]).save(tmp_path / "u")
    assert main(["rank", str(tmp_path / "u"), str(tmp_path / "u")]) == 2
    assert "needs per-image DNAs (image-histogram)" in capsys.readouterr().err


def test_calibrate_writes_ranges_that_make_vdna_uses(folders, tmp_path, capsys, processor, dna_of):
    output = tmp_path / "ranges.json"
    assert main(["calibrate", str(folders["urban"]), "-o", str(output), "--margin", "0.1", *QUIET]) == 0
    line = capsys.readouterr().out.strip()
    from vdna import load_activation_ranges

    ranges = load_activation_ranges(output)
    assert line.endswith(f"(sha256 {ranges.digest})") and "activation ranges of 3 images, 3120 neurons" in line
    assert ranges.margin == 0.1
    dna = processor.make_vdna(folders["bsd"], activation_ranges=output, verbose=False)
    default = dna_of(folders["bsd"])
    assert dna.provenance.ranges_sha256 == ranges.digest != default.provenance.ranges_sha256
    with pytest.raises(ValueError, match="activation ranges differ"):
        EMD(dna, default)
    with pytest.raises(SystemExit):  # calibrate makes activation ranges: it has no --distribution
        main(["calibrate", str(folders["urban"]), "-o", str(output), "--distribution", "gaussian"])
    assert "unrecognized arguments: --distribution gaussian" in capsys.readouterr().err
