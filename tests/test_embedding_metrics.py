"""The field's metrics on per-image embeddings (kid, mmd-rbf, precision, recall, density, coverage, vendi,
fd-infinity, sliced-wasserstein): agreement with their reference implementations on real images, what
identical sets give, independence from the block size, the roles of the two sets, every error, and the
registry and statistics they plug into."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import scipy.stats
import torch
from helpers import cmmd_reference, fd_infinity_reference

from vdna.distances import (
    KID,
    coverage,
    density,
    fd_infinity,
    kid,
    mmd_rbf,
    prdc,
    precision,
    random_directions,
    realism_scores,
    recall,
    sliced_wasserstein,
    vendi_score,
)
from vdna.distances._registry import get_distance, list_distances
from vdna.distances.fd_infinity_distance import subset_sizes
from vdna.distances.kid_distance import kid_of_embeddings
from vdna.distributions import VDNAImageMeans
from vdna.stats import compare_sets

NEW = ["coverage", "density", "fd-infinity", "kid", "mmd-rbf", "precision", "recall", "sliced-wasserstein", "vendi"]
IMAGES = 48


def relative(ours, theirs) -> float:
    return abs(float(ours) - float(theirs)) / abs(float(theirs))


@pytest.fixture(scope="module")
def sets(dna_of, data_dir):
    """``image-mean`` DNAs of 48 BSD100 and 48 Urban100 images, made once."""
    return tuple(dna_of(data_dir / name, distribution_name="image-mean", num_images=IMAGES, num_workers=0)
                 for name in ("bsd100", "urban100"))


@pytest.fixture(scope="module")
def last(sets):
    """The two sets' embeddings of the extractor's last layer, ``(images, neurons)`` float64."""
    layer = sets[0].layers[-1]
    return sets[0].data[layer], sets[1].data[layer]


def two_layers(dna: VDNAImageMeans, count: int) -> VDNAImageMeans:
    """The first ``count`` images of ``dna``, its first two layers only (32 and 16 neurons): a small real per-image DNA."""
    layers = dna.layers[:2]
    part = dna.select_images(range(count))
    return VDNAImageMeans.create({}, part.feature_extractor_name, {layer: part.neurons_list[layer] for layer in layers},
                                 {layer: part.data[layer] for layer in layers}, count, part.provenance)


# -- agreement with the reference implementations ------------------------------------------------------------
def test_kid_is_torch_fidelitys_kid_on_the_same_subsets(last):
    from torch_fidelity.metric_kid import kid_features_to_metric

    x, y = last
    ours = kid(x, y, subsets=20, subset_size=30, return_std=True)
    theirs = kid_features_to_metric(x, y, kid_subsets=20, kid_subset_size=30, rng_seed=2020, verbose=False)
    assert isinstance(ours, KID) and len(ours.values) == 20
    assert relative(ours.mean, theirs["kernel_inception_distance_mean"]) < 1e-6
    assert relative(ours.std, theirs["kernel_inception_distance_std"]) < 1e-6
    assert float(kid(x, y, subsets=20, subset_size=30)) == ours.mean


def test_kid_is_torchmetrics_kid_on_whole_sets(last):
    from torchmetrics.image.kid import KernelInceptionDistance

    x, y = last
    metric = KernelInceptionDistance(feature=torch.nn.Identity(), subsets=1, subset_size=IMAGES)
    metric.update(x, real=True)
    metric.update(y, real=False)
    mean, _ = metric.compute()
    assert relative(kid(x, y, subsets=1), mean) < 1e-6


def test_precision_recall_density_coverage_are_the_prdc_packages(last):
    from prdc import compute_prdc

    x, y = last
    ours = prdc(real=x, fake=y, k=5)
    with contextlib.redirect_stdout(io.StringIO()):
        theirs = compute_prdc(real_features=x.numpy(), fake_features=y.numpy(), nearest_k=5)
    for name in ("precision", "recall", "density", "coverage"):
        assert 0 < theirs[name] and relative(getattr(ours, name), theirs[name]) < 1e-6, name
    assert float(precision(real=x, fake=y)) == ours.precision and float(recall(real=x, fake=y)) == ours.recall
    assert float(density(real=x, fake=y)) == ours.density and float(coverage(real=x, fake=y)) == ours.coverage


def test_precision_and_recall_with_k3_are_torch_fidelitys(last):
    from torch_fidelity.metric_prc import prc_features_to_metric

    x, y = last
    ours = prdc(real=x, fake=y, k=3)
    theirs = prc_features_to_metric(y, x, prc_neighborhood=3, prc_batch_size=10000, save_cpu_ram=False, verbose=False)
    assert relative(ours.precision, theirs["precision"]) < 1e-6 and relative(ours.recall, theirs["recall"]) < 1e-6


def test_realism_score_reaches_one_exactly_inside_a_real_ball(last):
    x, y = last
    scores = realism_scores(real=x, fake=y, k=3, pruned=0.0)
    assert scores.shape == (IMAGES,) and float((scores >= 1).double().mean()) == float(precision(real=x, fake=y, k=3))
    pruned = realism_scores(real=x, fake=y, k=3)  # half the real balls, the largest, left out: never higher
    assert bool((pruned <= scores).all())
    assert bool(torch.isinf(realism_scores(real=x, fake=x[:5], pruned=0.0)).all())  # a real image is as real as can be


def test_mmd_rbf_is_cmmds_formula(last):
    x, y = last
    assert relative(mmd_rbf(x, y), cmmd_reference(x.numpy(), y.numpy())) < 1e-6
    assert relative(mmd_rbf(x, y, sigma=3.0, scale=1.0), cmmd_reference(x.numpy(), y.numpy(), 3.0, 1.0)) < 1e-6
    m, n = len(x), len(y)
    gamma = 1 / 200
    k = {name: np.exp(-gamma * scipy.spatial.distance.cdist(p, q, "sqeuclidean"))
         for name, (p, q) in {"xx": (x, x), "yy": (y, y), "xy": (x, y)}.items()}
    unbiased = 1000 * ((k["xx"].sum() - m) / (m * (m - 1)) + (k["yy"].sum() - n) / (n * (n - 1)) - 2 * k["xy"].mean())
    assert relative(mmd_rbf(x, y, estimator="unbiased"), unbiased) < 1e-6


def test_vendi_score_is_vendi_scores(sets, last):
    from vendi_score import vendi

    x, _ = last
    few = sets[0].data["stem"]  # 32 dimensions, 48 images: the d x d dual form
    for matrix in (x, few):
        for q in (1, 2, 0.5):
            assert relative(vendi_score(matrix, q), vendi.score_dual(matrix.numpy(), q=q)) < 1e-6
        assert relative(vendi_score(matrix), vendi.score_X(matrix.numpy())) < 1e-6
    assert relative(vendi_score(few, "inf"), vendi.score_dual(few.numpy(), q="inf")) < 1e-6
    assert float(vendi_score(sets[0])) == float(vendi_score(x))  # a DNA: its last layer


def test_fd_infinity_is_the_intercept_of_the_line_through_fds(sets):
    x, y = (dna.data["blocks.3.0"] for dna in sets)  # 80 dimensions: 30 Fréchet distances in a test's time
    assert subset_sizes(len(y)).tolist() == np.linspace(4, 48, 15).astype(np.int32).tolist()
    assert relative(fd_infinity(x, y, seed=3), fd_infinity_reference(x.numpy(), y.numpy(), seed=3)) < 1e-6


def test_sliced_wasserstein_is_the_mean_of_scipys_w1_over_the_directions(last):
    x, y = last
    directions = random_directions(x.shape[1], 40, seed=5)
    assert torch.allclose(directions.norm(dim=0), torch.ones(40, dtype=torch.float64))
    expected = np.mean([scipy.stats.wasserstein_distance(x.numpy() @ d, y[:30].numpy() @ d) for d in directions.numpy().T])
    assert relative(sliced_wasserstein(x, y[:30], directions=40, seed=5), expected) < 1e-6


# -- identical sets --------------------------------------------------------------------------------------------
def test_identical_sets(last):
    x, _ = last
    assert float(mmd_rbf(x, x)) == 0.0 and float(sliced_wasserstein(x, x, directions=20)) == 0.0
    assert float(get_distance("vendi").compare(one_layer(x), one_layer(x.clone()))) == 0.0
    whole = prdc(real=x, fake=x.clone())
    assert (whole.precision, whole.recall, whole.density, whole.coverage) == (1.0, 1.0, 1.0, 1.0)
    # unbiased estimators estimate 0 and are not 0: the unbiased RBF MMD^2 of a set with itself is
    # 2 (sum of its kernel off the diagonal) / (m^2 (m - 1)) - 2 / m, below 0 for distinct embeddings
    m = len(x)
    off = np.exp(-scipy.spatial.distance.cdist(x, x, "sqeuclidean") / 200).sum() - m
    unbiased = mmd_rbf(x, x, estimator="unbiased", scale=1.0)
    assert float(unbiased) < 0 and relative(unbiased, 2 * off / (m * m * (m - 1)) - 2 / m) < 1e-9
    one = kid_of_embeddings(x, x, subsets=1)  # KID: the unbiased estimate, with the cross pairs' diagonal kept
    k = (x.numpy() @ x.numpy().T / x.shape[1] + 1) ** 3
    assert relative(one.mean, 2 * (k.sum() - np.trace(k)) / (m * (m - 1)) - 2 * k.sum() / m**2) < 1e-9


def one_layer(x: torch.Tensor) -> VDNAImageMeans:
    return VDNAImageMeans.create({}, "net", {"only": x.shape[1]}, {"only": x}, x.shape[0])


def test_identical_embeddings_are_not_at_zero_precision_as_in_the_prdc_package():
    """All embeddings equal: every k-NN radius is 0, and the prdc package's strict ``d < r`` holds nothing."""
    from prdc import compute_prdc

    same = np.ones((20, 8))
    with contextlib.redirect_stdout(io.StringIO()):
        theirs = compute_prdc(real_features=same, fake_features=same, nearest_k=5)
    assert theirs == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
    ours = prdc(real=torch.from_numpy(same), fake=torch.from_numpy(same))
    assert (ours.precision, ours.recall, ours.coverage) == (1.0, 1.0, 1.0)
    assert ours.density == 20 / 5  # each embedding sits at the centre of all 20 balls


# -- blocks ---------------------------------------------------------------------------------------------------------
def test_results_do_not_depend_on_the_block_size(sets, last):
    x, y = last
    for block in (13,):  # blocks of 13 rows: 48 = 3 x 13 + 9
        assert prdc(real=x, fake=y[:40], block=block) == prdc(real=x, fake=y[:40])
        assert prdc(real=x, fake=y[:40], k=2, block=block) == prdc(real=x, fake=y[:40], k=2)
        torch.testing.assert_close(realism_scores(real=x, fake=y, block=block), realism_scores(real=x, fake=y), rtol=1e-12, atol=0)
        for function in (lambda a, b, **o: kid(a, b, subsets=3, **o), mmd_rbf, lambda a, b, **o: mmd_rbf(a, b, estimator="unbiased", **o),
                         lambda a, b, **o: sliced_wasserstein(a, b, directions=10, **o)):
            torch.testing.assert_close(function(x, y, block=block), function(x, y), rtol=1e-10, atol=0)
        small = sets[0].data["stem"]
        torch.testing.assert_close(fd_infinity(small, sets[1].data["stem"], block=block), fd_infinity(small, sets[1].data["stem"]),
                                   rtol=1e-7, atol=0)  # covariances summed in another order, through a square root
        torch.testing.assert_close(vendi_score(small, block=block), vendi_score(small), rtol=1e-12, atol=0)


# -- roles ------------------------------------------------------------------------------------------------------------
def test_the_sets_roles_are_keywords(sets):
    a, b = sets
    assert float(precision(real=a, fake=b)) != float(precision(real=b, fake=a))
    assert float(coverage(real=a, fake=b)) != float(coverage(real=b, fake=a))
    for function in (precision, recall, density, coverage, prdc, realism_scores):
        with pytest.raises(TypeError, match="positional argument"):
            function(a, b)
    record = get_distance("precision")
    layer = a.layers[-1]
    assert float(record.compare(a, b, neurons={layer: None})) == float(precision(real=a, fake=b))
    assert not record.lower_is_closer and get_distance("kid").lower_is_closer


# -- errors -----------------------------------------------------------------------------------------------------------
def test_every_mistake_is_refused_with_its_reason(sets, dna_of, data_dir, last):
    a, b = sets
    x, y = last
    gaussian = a.gaussian()
    with pytest.raises(ValueError, match="kid needs image-mean DNAs .*the second one is gaussian"):
        kid(a, gaussian)
    with pytest.raises(ValueError, match="kid needs image-mean DNAs; the second one is gaussian"):
        get_distance("kid").compare(a, gaussian)
    with pytest.raises(ValueError, match="cannot compare these DNAs: .*layers differ"):
        mmd_rbf(a, two_layers(b, 10))
    with pytest.raises(ValueError, match="layer 'nope' is not in this DNA"):
        kid(a, b, layer="nope")
    with pytest.raises(ValueError, match="compares whole layers of per-image embeddings: neurons= may only name layers"):
        get_distance("precision").compare(a, b, neurons={"head": [0, 1]})
    with pytest.raises(ValueError, match=r"k=48 needs more than 48 images in each set .*the real set has 48"):
        precision(real=a, fake=b, k=48)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        recall(real=a, fake=b, k=0)
    with pytest.raises(ValueError, match="the first set has 48 image.*KID with subsets of 1000 images needs at least 1000"):
        kid(a, b, subset_size=1000)
    with pytest.raises(ValueError, match="KID's subsets need at least 2 images each"):
        kid(x[:1], y)
    with pytest.raises(ValueError, match="subsets must be a positive integer"):
        kid(x, y, subsets=0)
    with pytest.raises(TypeError, match="give kid two image-mean DNAs or two arrays"):
        kid(a, y)
    with pytest.raises(ValueError, match="the first embeddings have 1280 dimensions and the second 32"):
        sliced_wasserstein(x, a.data["stem"])
    with pytest.raises(ValueError, match="the first embeddings contain NaN"):
        mmd_rbf(torch.full((3, 2), float("nan"), dtype=torch.float64), y[:, :2])
    with pytest.raises(ValueError, match="must be a 2-D float array"):
        mmd_rbf(x[0], y)
    with pytest.raises(ValueError, match="layer='head' names a layer of a DNA"):
        mmd_rbf(x, y, layer="head")
    with pytest.raises(ValueError, match="sigma must be positive"):
        mmd_rbf(x, y, sigma=0)
    with pytest.raises(ValueError, match="estimator must be 'biased' or 'unbiased'"):
        mmd_rbf(x, y, estimator="u-statistic")
    with pytest.raises(ValueError, match="q must be a non-negative order"):
        vendi_score(a, q=-1)
    with pytest.raises(ValueError, match="points must be an integer of at least 2"):
        fd_infinity(a, b, points=1)
    with pytest.raises(ValueError, match="the fake set has 2 image.*FD-infinity .*needs at least 3"):
        fd_infinity(x, y[:2])
    with pytest.raises(ValueError, match="directions must be a positive integer"):
        sliced_wasserstein(a, b, directions=0)
    with pytest.raises(ValueError, match=r"pruned must lie in \[0, 1\)"):
        realism_scores(real=a, fake=b, pruned=1.0)
    with pytest.raises(ValueError, match="block must be a positive number of rows"):
        mmd_rbf(x, y, block=0)
    with pytest.raises(TypeError, match="the given argument is a list, not an image-mean VDNA or an array"):
        vendi_score([[1.0, 2.0]])
    with pytest.raises(ValueError, match="weights must not be negative"):
        get_distance("vendi").compare(a, b, neuron_weights=-np.ones(len(a.layers)))


# -- registry and statistics --------------------------------------------------------------------------------------
def test_the_metrics_are_registered_by_name(sets):
    import vdna
    import vdna.distances

    assert set(NEW) <= set(list_distances())
    for function in ("kid", "mmd_rbf", "prdc", "precision", "recall", "density", "coverage", "realism_scores", "vendi_score",
                     "fd_infinity", "sliced_wasserstein"):
        assert getattr(vdna, function) is getattr(vdna.distances, function) and function in vdna.__all__
    record = get_distance("mmd-rbf")
    assert record.name == "mmd-rbf" and record.unit == "layer" and record.image_type == "image-mean"
    a, b = (two_layers(dna, 20) for dna in sets)
    for name in ("mmd-rbf", "sliced-wasserstein"):
        record = get_distance(name)
        values = record.unit_values(a, b)
        assert list(values) == a.layers and all(value.shape == (1,) and value.dtype == torch.float64 for value in values.values())
        assert float(record.compare(a, b)) == pytest.approx(float(torch.cat(list(values.values())).mean()), rel=1e-15)
        only = record.compare(a, b, neurons={a.layers[0]: None})
        assert only.ndim == 0 and only.dtype == torch.float64 and float(only) == float(values[a.layers[0]][0])
    assert float(get_distance("mmd-rbf").compare(a, b, neurons={a.layers[-1]: None})) == float(mmd_rbf(a, b))


@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow) if name == "fd-infinity" else name for name in NEW])
def test_compare_sets_runs_for_each_metric(sets, name):
    a, b = (two_layers(dna, count) for dna, count in zip(sets, (12, 10)))
    result = compare_sets(a, b, metric=name, resamples=20, permutations=20)
    record = get_distance(name)
    assert result.value == float(record.compare(a, b)) and list(result.layers) == a.layers
    assert len(result.bootstrap) == 20 and len(result.null) == 20 and np.isfinite(result.bootstrap).all()
