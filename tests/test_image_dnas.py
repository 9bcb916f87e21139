"""Per-image DNAs of a set (one pass), retrieval ranking, PR curves, realism and sample-size curves, on real images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import image_files

from vdna import load_vdna_from_files
from vdna.apps.realism import rank_by_realism, realism_neurons
from vdna.apps.retrieval import average_precision, precision_recall_curve, rank_images
from vdna.apps.sample_size import sample_size_curve
from vdna.distances import EMD, FD, NFD, emd_to_reference


@pytest.fixture(scope="module")
def candidates(processor, data_dir):
    """Six BSD100 images then six Urban100 images."""
    return image_files(data_dir / "bsd100", 6) + image_files(data_dir / "urban100", 6)


@pytest.fixture(scope="module")
def image_dnas(processor, candidates):
    return processor.make_vdna(candidates, distribution_name="image-histogram-1000", verbose=False)


@pytest.fixture(scope="module")
def urban_reference(processor, data_dir):
    return processor.make_vdna(image_files(data_dir / "urban100", 30)[10:], verbose=False)


def test_each_image_dna_and_every_subset_equal_make_vdna_on_those_images(processor, image_dnas, candidates):
    assert image_dnas.names == [str(path) for path in candidates]
    assert len(image_dnas) == 12
    whole = processor.make_vdna(candidates, verbose=False)
    pair = processor.make_vdna([candidates[3], candidates[8]], verbose=False)
    for layer in whole.neurons_list:
        assert torch.equal(image_dnas.subset().data[layer], whole.data[layer])
        assert torch.equal(image_dnas.subset([3, 8]).data[layer], pair.data[layer])
    single = processor.make_vdna([candidates[5]], verbose=False)
    assert all(torch.equal(image_dnas.image(5).data[layer], single.data[layer]) for layer in single.neurons_list)
    assert image_dnas.image(5).num_images == 1


def test_per_image_dnas_are_batch_and_worker_independent_and_merge_by_concatenation(processor, image_dnas, candidates):
    other = processor.make_vdna(candidates, distribution_name="image-histogram-1000", batch_size=5, num_workers=0, verbose=False)
    halves = processor.make_vdna(candidates[:7], distribution_name="image-histogram-1000", verbose=False) + processor.make_vdna(
        candidates[7:], distribution_name="image-histogram-1000", verbose=False
    )
    for collection in (other, halves):
        assert collection.names == image_dnas.names
        for layer, part in image_dnas.data.items():
            for key in ("offsets", "bins", "counts"):
                assert torch.equal(collection.data[layer][key], part[key])


def test_save_and_load_round_trip_keeps_every_image(image_dnas, tmp_path):
    image_dnas.save(tmp_path / "images")
    loaded = load_vdna_from_files(tmp_path / "images")
    assert type(loaded) is type(image_dnas) and loaded.names == image_dnas.names
    for layer in image_dnas.neurons_list:
        assert torch.equal(loaded.subset().data[layer], image_dnas.subset().data[layer])
    # stored sparse: far smaller than dense per-image histograms
    dense_bytes = len(image_dnas) * image_dnas.num_neurons * 1000 * 2
    assert (tmp_path / "images.npz").stat().st_size < dense_bytes / 10


def test_emd_of_every_image_matches_the_dense_emd(image_dnas, urban_reference):
    fast = emd_to_reference(image_dnas, urban_reference)
    slow = torch.stack([EMD(image_dnas.image(i), urban_reference) for i in range(len(image_dnas))])
    torch.testing.assert_close(fast, slow, rtol=1e-12, atol=1e-10)
    selection = {"stem": [0, 5], "head": None}
    weights = {"stem": [0.5, 0.25], "head": torch.full((1280,), 1e-3)}
    torch.testing.assert_close(
        emd_to_reference(image_dnas, urban_reference, neurons=selection, neuron_weights=weights),
        torch.stack([EMD(image_dnas.image(i), urban_reference, neurons=selection, neuron_weights=weights) for i in range(12)]),
        rtol=1e-12, atol=1e-10,
    )
    # an image compared with its own DNA is at distance 0
    assert float(emd_to_reference(image_dnas, image_dnas.image(4))[4]) == pytest.approx(0.0, abs=1e-9)


def test_urban_images_rank_closest_to_an_urban_reference(image_dnas, urban_reference):
    ranking = rank_images(image_dnas, urban_reference)
    assert [r.distance for r in ranking] == sorted(r.distance for r in ranking)
    assert ranking[0].index >= 6  # an Urban100 image first
    relevant = [i >= 6 for i in range(12)]
    distances = [r.distance for r in sorted(ranking, key=lambda r: r.index)]
    assert average_precision(distances, relevant) > 0.7  # chance: 0.5


def test_precision_recall_against_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    distances = np.round(rng.random(300), 2)  # ties included
    relevant = rng.random(300) < 0.3
    ours = average_precision(distances, relevant)
    assert ours == pytest.approx(metrics.average_precision_score(relevant, -distances), abs=1e-12)
    precision, recall, _ = precision_recall_curve(distances, relevant)
    reference_precision, reference_recall, _ = metrics.precision_recall_curve(relevant, -distances)
    np.testing.assert_allclose(precision[1:], reference_precision[:-1][::-1])
    np.testing.assert_allclose(recall[1:], reference_recall[:-1][::-1])


def test_hand_computed_average_precision():
    # ranking: relevant, irrelevant, relevant -> precisions 1 and 2/3 at recalls 1/2 and 1
    assert average_precision([0.1, 0.2, 0.3], [True, False, True]) == pytest.approx((1 + 2 / 3) / 2)
    # tied images are retrieved together: precision 1/2 at recall 1
    assert average_precision([0.5, 0.5], [True, False]) == pytest.approx(0.5)


def test_realism_neurons_from_other_dnas_focus_the_ranking(processor, image_dnas, urban_reference, data_dir):
    bsd = processor.make_vdna(image_files(data_dir / "bsd100", 24)[10:], verbose=False)
    neurons = realism_neurons([urban_reference], [bsd], count=50)
    assert neurons.num_neurons == 50
    ranking = rank_by_realism(image_dnas, urban_reference, neurons)
    assert {r.index for r in ranking[:3]} <= set(range(6, 12))
    relevant = [i >= 6 for i in range(12)]
    focused = average_precision([r.distance for r in sorted(ranking, key=lambda r: r.index)], relevant)
    everything = average_precision(emd_to_reference(image_dnas, urban_reference), relevant)
    assert focused > everything  # the 50 neurons that tell the two sets apart rank better than all 3120
    expected = emd_to_reference(image_dnas, urban_reference, neurons=neurons)
    assert [r.distance for r in ranking] == sorted(expected.tolist())


@pytest.mark.slow
def test_sample_size_curve_for_emd_and_fd(processor, image_dnas, candidates, urban_reference):
    curve = sample_size_curve(image_dnas, urban_reference, sizes=[2, 6, 12], seeds=3)
    assert curve.distances.shape == (3, 3)
    # the full set is the same for every seed: no spread at the largest size
    assert curve.std[-1] == pytest.approx(0.0, abs=1e-12)
    assert curve.mean[-1] == pytest.approx(float(EMD(image_dnas.subset(), urban_reference)), rel=1e-12)
    order = np.random.default_rng(1).permutation(12)[:6]
    assert curve.distances[1, 1] == pytest.approx(float(EMD(image_dnas.subset(order), urban_reference)), rel=1e-12)
    means = processor.make_vdna(candidates, distribution_name="image-mean", verbose=False)
    reference = processor.make_vdna(candidates[6:], distribution_name="layer-gaussian", verbose=False)
    fd_curve = sample_size_curve(means, reference, sizes=[6, 12], seeds=1, layers=["head"])
    direct = processor.make_vdna(candidates, distribution_name="layer-gaussian", verbose=False)
    assert fd_curve.mean[-1] == pytest.approx(float(FD(direct, reference, use_neurons_from_layer="head")), rel=1e-6)
    gauss = processor.make_vdna(candidates[6:], distribution_name="gaussian", verbose=False)
    nfd_curve = sample_size_curve(means, gauss, sizes=[12], seeds=1, metric="nfd")
    assert nfd_curve.mean[-1] == pytest.approx(float(NFD(means.gaussian(), gauss)), rel=1e-12)


def test_settled_size():
    from vdna.apps.sample_size import SampleSizeCurve

    curve = SampleSizeCurve("emd", [10, 20, 40, 80], np.array([[2.0, 1.2, 1.04, 1.0]]))
    assert curve.settled_size(0.05) == 40
    assert curve.settled_size(0.3) == 20


def test_errors(image_dnas, urban_reference, processor, candidates):
    with pytest.raises(ValueError, match="no image is marked relevant"):
        average_precision([0.1, 0.2], [False, False])
    with pytest.raises(ValueError, match="2 distances but 3 relevance labels"):
        average_precision([0.1, 0.2], [True, False, True])
    with pytest.raises(ValueError, match=r"sizes must lie in \[2, 12\]"):
        sample_size_curve(image_dnas, urban_reference, sizes=[5, 13])
    with pytest.raises(TypeError, match="needs a layer-gaussian reference"):
        sample_size_curve(processor.make_vdna(candidates[:3], distribution_name="image-mean", verbose=False), urban_reference, sizes=[2])
    with pytest.raises(TypeError, match="images must be per-image DNAs"):
        emd_to_reference(urban_reference, urban_reference)
    with pytest.raises(IndexError, match="image index 12 is out of range for 12 images"):
        image_dnas.image(12)
    with pytest.raises(ValueError, match="cannot compare 1000-bin images with a 10-bin reference"):
        emd_to_reference(image_dnas, processor.make_vdna(candidates[:2], distribution_name="histogram-10", verbose=False))
