"""Ranking images against a reference set by every retrieval method, on real images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import image_files
from PIL import Image

from vdna.apps.augment import random_augmentation
from vdna.apps.retrieval import (
    DEFAULT_METHOD,
    METHODS,
    average_precision,
    late_layers,
    rank_images,
    retrieval_distances,
)
from vdna.cli import main
from vdna.distances import emd_to_reference
from vdna.preprocess import Preprocessor

REFERENCE, DISTRACTORS = 3, 2


@pytest.fixture(scope="module")
def files(data_dir, tmp_path_factory):
    """3 Urban100 reference images, then a held-out Urban100 image augmented (the relevant one), then 2 BSD100 images."""
    folder = tmp_path_factory.mktemp("retrieval")
    urban = image_files(data_dir / "urban100", 60)
    with Image.open(urban[-1]) as image:
        changed, _ = random_augmentation(image, np.random.default_rng(3))
    planted = folder / "planted.png"
    changed.save(planted)
    return urban[:REFERENCE] + [planted] + image_files(data_dir / "bsd100", DISTRACTORS)


@pytest.fixture(scope="module")
def dnas(processor, files):
    """``(candidates, reference)``: each a list of the image-histogram and image-mean DNAs."""
    made = list(processor.make_vdnas(files, ["image-histogram-1000", "image-mean"], verbose=False).values())  # one pass
    reference = [dna.select_images(range(REFERENCE)) for dna in made]
    candidates = [dna.select_images(range(REFERENCE, len(files))) for dna in made]
    return candidates, reference


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_ranks_the_planted_image_first(dnas, method):
    candidates, reference = dnas
    ranking = rank_images(candidates, reference, method=method)
    assert ranking[0].name.endswith("planted.png")
    assert [item.distance for item in ranking] == sorted(item.distance for item in ranking)


def test_embedding_cosine_is_the_mean_over_layers_of_cosines_of_activation_means(processor, files, dnas, one_torch_thread):
    extractor = processor.get_extractor(device="cpu")
    info = extractor.info
    preprocess = Preprocessor(info.input_size, info.mean, info.std)
    chosen = [0, 1, REFERENCE, REFERENCE + 1]  # two reference images, the planted image and a distractor
    with torch.inference_mode():
        activations = [extractor(preprocess(np.asarray(Image.open(files[i]).convert("RGB")), i)[None]) for i in chosen]
    cosines = []
    for layer in info.layers:
        means = np.stack([a[layer][0].double().mean(dim=1).numpy() for a in activations])
        centre = means[:2].mean(axis=0)
        rows = means[2:]
        cosines.append(rows @ centre / (np.linalg.norm(rows, axis=1) * np.linalg.norm(centre)))
    expected = 1 - np.mean(cosines, axis=0)
    candidates, reference = dnas[0][1].select_images([0, 1]), dnas[1][1].select_images([0, 1])
    found = retrieval_distances(candidates, reference, method="embedding-cosine").numpy()
    np.testing.assert_allclose(found, expected, rtol=0, atol=1e-12)
    # a Gaussian DNA of the reference gives the same mean vector
    gauss = retrieval_distances(candidates, reference.gaussian(), method="embedding-cosine").numpy()
    np.testing.assert_allclose(gauss, expected, rtol=0, atol=1e-12)


def test_embedding_distance_is_the_mean_squared_z_score(dnas):
    candidates, reference = dnas
    layer = reference[1].layers[-1]
    rows, ref = candidates[1].data[layer].numpy(), reference[1].data[layer].numpy()
    mean, std = ref.mean(axis=0), ref.std(axis=0, ddof=1)
    kept = std > 0
    expected = (((rows[:, kept] - mean[kept]) / std[kept]) ** 2).mean(axis=1)
    found = retrieval_distances(candidates[1], reference[1], method="embedding-distance", neurons={layer: None})
    np.testing.assert_allclose(found.numpy(), expected, rtol=1e-12)


def test_emd_ratio_divides_each_neuron_by_the_reference_images_own_mean_emd(dnas):
    candidates, reference = dnas
    layer = reference[0].layers[-1]
    pooled = reference[0].subset()
    own = emd_to_reference(reference[0], pooled, neurons={layer: None}, return_neuron_wise=True)[layer].mean(dim=0)
    theirs = emd_to_reference(candidates[0], pooled, neurons={layer: None}, return_neuron_wise=True)[layer]
    kept = own > 1e-9  # neurons all reference images fill alike give round-off (1e-13), not a spread
    assert (~kept).any() and (own[~kept] < 1e-12).all()
    expected = (theirs[:, kept] / own[kept]).mean(dim=1)
    found = retrieval_distances(candidates[0], reference[0], method="emd-ratio", neurons={layer: None})
    torch.testing.assert_close(found, expected, rtol=1e-14, atol=0)
    # by default on the last third of the layers
    late = retrieval_distances(candidates[0], reference[0], method="emd-ratio", neurons=late_layers(reference[0]))
    assert torch.equal(retrieval_distances(candidates[0], reference[0], method="emd-ratio"), late)


def test_emd_keeps_the_papers_ranking_and_warns_that_the_default_needs_more(dnas):
    candidates, reference = dnas
    pooled = reference[0].subset()
    with pytest.warns(UserWarning, match="ranking by 'emd'.*needs image-histogram and image-mean DNAs"):
        ranking = rank_images(candidates[0], pooled)
    distances = emd_to_reference(candidates[0], pooled)
    assert [item.distance for item in ranking] == sorted(distances.tolist())
    assert rank_images(candidates[0], pooled, method="emd") == ranking
    # a per-image reference counts as the sum of its images
    assert rank_images(candidates[0], reference[0], method="emd") == ranking


def test_the_default_method_is_used_when_its_inputs_are_given(dnas):
    candidates, reference = dnas
    default = rank_images(candidates, reference)
    assert default == rank_images(candidates, reference, method=DEFAULT_METHOD)


def test_select_images_keeps_each_images_dna(dnas):
    candidates, _ = dnas
    hists, means = candidates
    chosen = hists.select_images([2, 1])
    assert chosen.names == [hists.names[2], hists.names[1]]
    for layer in hists.layers:
        assert torch.equal(chosen.image(0).data[layer], hists.image(2).data[layer])
        assert torch.equal(chosen.image(1).data[layer], hists.image(1).data[layer])
        assert torch.equal(means.select_images([2, 1]).data[layer], means.data[layer][[2, 1]])
    with pytest.raises(IndexError, match="out of range"):
        hists.select_images([3])
    with pytest.raises(ValueError, match="no images chosen"):
        hists.select_images([])


def test_wrong_inputs_say_what_to_pass(dnas):
    candidates, reference = dnas
    with pytest.raises(ValueError, match="unknown retrieval method 'cosine'; valid: emd, embedding-cosine"):
        rank_images(candidates, reference, method="cosine")
    with pytest.raises(ValueError, match="'embedding-cosine' needs image-mean DNAs of the images .*got image-histogram"):
        rank_images(candidates[0], reference, method="embedding-cosine")
    with pytest.raises(ValueError, match="'emd-ratio' needs image-histogram DNAs of the reference .*got histogram"):
        rank_images(candidates, reference[0].subset(), method="emd-ratio")
    with pytest.raises(ValueError, match="'hybrid' needs image-mean DNAs of the reference"):
        rank_images(candidates, reference[0], method="hybrid")
    with pytest.raises(ValueError, match="weights .* apply to method 'emd' only"):
        rank_images(candidates, reference, neuron_weights=torch.ones(10), method="hybrid")
    with pytest.raises(ValueError, match="images: two image-mean DNAs given"):
        rank_images([candidates[1], candidates[1]], reference)
    with pytest.raises(ValueError, match="describe different images"):
        rank_images([candidates[0], candidates[1].select_images([1, 0, 2])], reference)
    with pytest.raises(TypeError, match="reference must be a DNA or a sequence of DNAs, got str"):
        rank_images(candidates, ["reference/"])


def test_rank_command_ranks_saved_dnas_by_the_method_asked(dnas, tmp_path, capsys):
    candidates, reference = dnas
    candidates[1].save(tmp_path / "means")
    reference[1].save(tmp_path / "reference-means")
    assert main(["rank", str(tmp_path / "means"), str(tmp_path / "reference-means"), "--method", "embedding-distance"]) == 0
    first = capsys.readouterr().out.splitlines()[0].split()
    expected = rank_images(candidates[1], reference[1], method="embedding-distance")[0]
    assert first[1:] == [f"{expected.distance:.6f}", expected.name]
    assert main(["rank", str(tmp_path / "means"), str(tmp_path / "reference-means"), "--method", "emd"]) == 2
    assert "is an image-mean DNA; this needs per-image DNAs (image-histogram)" in capsys.readouterr().err


@pytest.mark.slow
def test_rank_command_makes_the_dnas_its_method_needs_from_folders(files, dnas, tmp_path, capsys):
    reference_folder, candidate_folder = tmp_path / "reference", tmp_path / "candidates"
    for folder, chosen in ((reference_folder, files[:REFERENCE]), (candidate_folder, files[REFERENCE:])):
        folder.mkdir()
        for path in chosen:
            (folder / path.name).symlink_to(path)
    assert main(["rank", str(candidate_folder), str(reference_folder), "--quiet", "--workers", "0"]) == 0
    first = capsys.readouterr().out.splitlines()[0].split()
    candidates, reference = dnas
    expected = rank_images(candidates, reference)[0]  # the default method, from both kinds of DNAs
    assert first[1:] == [f"{expected.distance:.6f}", str(candidate_folder / "planted.png")]


@pytest.mark.slow
def test_the_default_ranks_at_least_as_well_as_embedding_cosine_on_a_held_out_task(processor, data_dir, tmp_path):
    """Sun-Hays 80 (not the tuning set): 10 reference images, 5 augmented held-out ones among 15 others."""
    sun = image_files(data_dir / "sunhays80", 80)
    rng = np.random.default_rng(0)
    planted = []
    for path in sun[40:45]:
        with Image.open(path) as image:
            changed, _ = random_augmentation(image, rng)
        planted.append(tmp_path / f"{path.stem}.png")
        changed.save(planted[-1])
    distractors = image_files(data_dir / "bsd100", 5) + image_files(data_dir / "urban100", 5) + image_files(data_dir / "imagenet1k", 5)
    files = sun[:10] + planted + distractors
    made = list(processor.make_vdnas(files, ["image-histogram-1000", "image-mean"], verbose=False).values())  # one pass
    reference = [dna.select_images(range(10)) for dna in made]
    candidates = [dna.select_images(range(10, len(files))) for dna in made]
    relevant = np.arange(len(files) - 10) < len(planted)
    scores = {method: average_precision(retrieval_distances(candidates, reference, method=method), relevant)
              for method in (DEFAULT_METHOD, "embedding-cosine")}
    assert scores[DEFAULT_METHOD] >= scores["embedding-cosine"]
