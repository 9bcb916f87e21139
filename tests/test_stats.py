"""Statistics of a distance between image sets: exact resampling core, interval, noise floor, permutation test."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import image_files

from vdna import EMD, FD, NFD
from vdna.distances import get_distance, list_distances, register_distance, unregister_distance
from vdna.distributions import VDNAImageHist
from vdna.stats import (
    LayerShare,
    bootstrap_estimate,
    bootstrap_interval,
    compare_sets,
    layer_shares,
    layer_table,
    noise_floor_curve,
    noise_floor_limits,
    resampled_distances,
    unit_estimates,
)
from vdna.stats._comparison import _bootstrap_weights

DISTRIBUTIONS = ["image-histogram-1000", "image-mean"]


@pytest.fixture(scope="module")
def urban(processor, data_dir):
    """Per-image histograms and means of 40 Urban100 images."""
    return processor.make_vdnas(image_files(data_dir / "urban100", 40), DISTRIBUTIONS, verbose=False)


@pytest.fixture(scope="module")
def bsd(processor, data_dir):
    """Per-image histograms and means of 20 BSD100 images."""
    return processor.make_vdnas(image_files(data_dir / "bsd100", 20), DISTRIBUTIONS, verbose=False)


@pytest.fixture(scope="module")
def pair(urban, bsd):
    """20 Urban100 images against 20 BSD100 images, histograms."""
    return urban["image-histogram-1000"].select_images(range(20)), bsd["image-histogram-1000"]


@pytest.fixture(scope="module")
def urban_vs_bsd(pair):
    return compare_sets(*pair, resamples=100, permutations=100)


def test_the_resampling_core_reproduces_emd_bit_for_bit(pair):
    a, b = pair  # weights: a row per image of a, then of b
    rng = np.random.default_rng(3)
    first = np.zeros((40, 4), dtype=np.int64)
    second = np.zeros_like(first)
    first[:20, 0], second[20:, 0] = 1, 1  # the full sets once
    first[:, 1:] = rng.multinomial(20, np.full(40, 1 / 40), size=3).T  # images of both sets, repeated
    second[:, 1:] = rng.multinomial(7, np.full(40, 1 / 40), size=3).T
    distances = resampled_distances(a, b, first, second)
    for column in range(4):
        sides = []
        for weights in (first[:, column], second[:, column]):
            parts = [dna.subset(np.repeat(np.arange(20), part)) for dna, part in ((a, weights[:20]), (b, weights[20:])) if part.any()]
            sides.append(parts[0] + parts[1] if len(parts) == 2 else parts[0])
        expected = EMD(*sides, return_neuron_wise=True)
        for layer, values in expected.items():
            assert np.array_equal(distances[layer][:, column], values.numpy()), (layer, column)


def test_the_rest_of_a_split_is_its_complement_and_neurons_can_be_chosen(pair):
    a, b = pair
    membership = np.zeros((40, 2), dtype=np.int64)
    membership[:20, 0] = 1
    membership[::2, 1] = 1
    chosen = {"head": [0, 5, 1279], "stem": None}
    split = resampled_distances(a, b, membership, neurons=chosen)
    explicit = resampled_distances(a, b, membership, 1 - membership, neurons=chosen)
    assert list(split) == ["stem", "head"] and split["head"].shape == (3, 2)
    for layer in split:
        assert np.array_equal(split[layer], explicit[layer])
    assert np.array_equal(split["head"][:, 0], EMD(a.subset(), b.subset(), return_neuron_wise=True)["head"][[0, 5, 1279]].numpy())


def test_the_core_reproduces_nfd_and_fd_of_the_full_sets(urban, bsd):
    a, b = urban["image-mean"].select_images(range(20)), bsd["image-mean"]
    first = np.zeros((40, 1), dtype=np.int64)
    first[:20] = 1
    nfd = resampled_distances(a, b, first, 1 - first, metric="nfd")
    for layer, values in NFD(a.gaussian(), b.gaussian(), return_neuron_wise=True).items():
        np.testing.assert_allclose(nfd[layer][:, 0], values.numpy(), rtol=1e-12, atol=1e-15)
    fd = resampled_distances(a, b, first, metric="fd", neurons={"blocks.2.0": None, "blocks.6.0": None})
    for layer in ("blocks.2.0", "blocks.6.0"):  # 40 neurons (full rank), 320 (rank 19: FD's eigenvalues round to ~1e-8)
        expected = float(FD(a.layer_gaussian(), b.layer_gaussian(), use_neurons_from_layer=layer))
        assert fd[layer].shape == (1, 1)
        assert fd[layer][0, 0] == pytest.approx(expected, rel=1e-6)


def test_urban_and_bsd_differ_with_20_images_a_side(pair, urban_vs_bsd):
    a, b = pair
    result = urban_vs_bsd
    assert result.value == float(EMD(a.subset(), b.subset()))
    assert result.p_value < 0.01 and result.p_value == 1 / 101  # no split is as far apart
    assert result.noise_floor + 5 * result.noise_floor_spread < result.value
    assert 0 < result.ci[0] <= result.estimate <= result.ci[1] and result.estimate == bootstrap_estimate(result.value, result.bootstrap)
    assert result.estimate < result.value  # noise inflates the value at 20 images a side
    assert (result.size_a, result.size_b, result.resamples, result.permutations) == (20, 20, 100, 100)
    assert len(result.bootstrap) == 100 and len(result.null) == 100
    assert result.interval == "squared" and result.ci == bootstrap_interval(result.value, result.bootstrap)


def test_layer_shares_add_up_and_match_the_neuron_wise_distances(pair, urban_vs_bsd):
    a, b = pair
    per_neuron = EMD(a.subset(), b.subset(), return_neuron_wise=True)
    layers = urban_vs_bsd.layers
    assert list(layers) == list(a.neurons_list)
    assert math.fsum(part.share for part in layers.values()) == pytest.approx(1.0, abs=1e-12)
    total = sum(float(values.sum()) for values in per_neuron.values())
    for layer, values in per_neuron.items():
        assert layers[layer].neurons == values.numel()
        assert layers[layer].value == pytest.approx(float(values.mean()), rel=1e-12)
        assert layers[layer].share == pytest.approx(float(values.sum()) / total, rel=1e-12)
        assert layers[layer].noise_floor < layers[layer].value
    weights = {layer: torch.full((count,), 2.0 if layer == "head" else 0.0) for layer, count in a.neurons_list.items()}
    weighted = compare_sets(a, b, resamples=10, permutations=10, neuron_weights=weights)
    assert weighted.value == float(EMD(a.subset(), b.subset(), neuron_weights=weights))
    assert weighted.layers["head"].share == 1.0 and weighted.layers["stem"].share == 0.0


def test_halves_of_one_set_are_within_the_noise(urban):
    images = urban["image-histogram-1000"]
    order = np.random.default_rng(0).permutation(40)
    result = compare_sets(images.select_images(order[:20]), images.select_images(order[20:]), permutations=100, resamples=20)
    assert result.p_value > 0.05
    assert abs(result.value - result.noise_floor) < 2 * result.noise_floor_spread
    assert result.ci[0] == 0.0  # no distance between the sources is needed to explain the value


def test_identical_sets_are_at_zero_and_never_significant(pair):
    a, _ = pair
    result = compare_sets(a, a, resamples=10, permutations=20)
    assert result.value == 0.0 and result.p_value == 1.0 and result.ci[0] == 0.0
    assert result.estimate == 0.0 < result.noise_floor


def test_seeded_and_independent_of_the_thread_count(pair, urban, bsd, request):
    a, b = pair
    first = compare_sets(a, b, resamples=8, permutations=8, seed=5)
    request.getfixturevalue("one_torch_thread")  # torch, and with it the compiled passes, on one thread
    one_thread = compare_sets(a, b, resamples=8, permutations=8, seed=5)
    assert one_thread == first and one_thread.bootstrap == first.bootstrap and one_thread.null == first.null
    assert compare_sets(a, b, resamples=8, permutations=8, seed=6).bootstrap != first.bootstrap
    means = urban["image-mean"].select_images(range(20)), bsd["image-mean"]
    assert compare_sets(*means, "nfd", 8, 8, seed=1) == compare_sets(*means, "nfd", 8, 8, seed=1)


def test_gaussian_metrics(urban, bsd):
    a, b = urban["image-mean"].select_images(range(20)), bsd["image-mean"]
    nfd = compare_sets(a, b, "nfd", resamples=50, permutations=50)
    assert nfd.value == float(NFD(a.gaussian(), b.gaussian())) and nfd.p_value < 0.05
    assert nfd.interval == "basic" and nfd.ci == bootstrap_interval(nfd.value, nfd.bootstrap, method="basic")
    layers = {"blocks.5.0": None, "blocks.6.0": None}
    fd = compare_sets(a, b, "fd", resamples=10, permutations=20, neurons=layers)
    first, second = a.layer_gaussian(), b.layer_gaussian()
    expected = [float(FD(first, second, use_neurons_from_layer=layer)) for layer in layers]
    assert fd.value == float(np.mean(expected)) and list(fd.layers) == list(layers)
    assert fd.layers["blocks.6.0"].neurons == 320 and fd.p_value < 0.1
    assert fd.interval == "squared" and fd.ci == bootstrap_interval(fd.value, fd.bootstrap, method="squared")


def test_results_print_and_serialise(urban_vs_bsd, pair):
    result = urban_vs_bsd
    out = json.loads(json.dumps(result.to_dict()))
    assert out["value"] == result.value and out["ci"] == list(result.ci) and out["estimate"] == result.estimate
    assert list(out)[:7] == ["metric", "value", "estimate", "ci", "noise_floor", "noise_floor_spread", "p_value"]
    assert "excess" not in out and "excess" not in out["layers"]["head"] and "units" not in out
    assert list(out["layers"]["head"])[:5] == ["neurons", "value", "estimate", "share", "ci"]
    assert out["layers"]["head"]["estimate"] == result.layers["head"].estimate
    assert out["layers"]["head"]["share"] == result.layers["head"].share and "bootstrap" not in out
    assert len(result.to_dict(samples=True)["null"]) == 100
    line = result.summary()
    assert line.startswith(f"emd {result.value:.4g}, estimate {result.estimate:.4g} (95% CI {result.ci[0]:.4g} to ")
    assert "p = 0.0099 (100 permutations" in line and "excess" not in line
    assert "20 vs 20 images" in line
    lines = str(result).splitlines()
    assert lines[0] == line and lines[1].split()[:4] == ["layer", "neurons", "value", "share"]
    head = result.layers["head"]
    assert lines[-1].split()[:4] == ["head", "1280", f"{head.value:.4g}", f"{100 * head.share:.1f}%"]
    assert lines[1].split()[4:] == ["estimate", "95%", "CI", "noise", "floor", "p"]
    assert lines[-1].split()[4:8] == [f"{head.estimate:.4g}", f"{head.ci[0]:.4g}", "to", f"{head.ci[1]:.4g}"]
    assert lines[-1].split()[8:] == [f"{head.noise_floor:.4g}", "+-", f"{head.noise_floor_spread:.3g}", f"{head.p_value:.3g}"]
    assert len(lines) == 2 + 18
    assert result.reading() == (
        f"Sampling noise removed, the distance between the sources is {result.estimate:.4g} (95% CI {result.ci[0]:.4g} to "
        f"{result.ci[1]:.4g}); measured {result.value:.4g} against a noise floor of {result.noise_floor:.4g}; p = 0.0099 "
        "(no random split of the pooled images was as far apart): the sets differ beyond sampling noise.")
    shares_only = layer_table(layer_shares(*(side.subset() for side in pair))).splitlines()
    assert shares_only[0].split() == ["layer", "neurons", "value", "share"] and shares_only[-1].split() == lines[-1].split()[:4]


def test_a_difference_within_the_noise_reads_so(urban):
    images = urban["image-histogram-1000"]
    result = compare_sets(images.select_images(range(0, 40, 2)), images.select_images(range(1, 40, 2)), resamples=5,
                          permutations=30, seed=2)
    assert result.p_value > 0.05 and result.reading().endswith("no difference beyond sampling noise shows.")
    assert "no random split" not in result.reading()


def test_interval_methods_by_hand():
    replicates = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert bootstrap_interval(3.0, replicates, 0.5, "percentile") == (2.0, 4.0)
    assert bootstrap_interval(3.0, replicates, 0.5, "basic") == (2.0, 4.0)
    assert bootstrap_interval(1.0, replicates, 0.5, "basic") == (0.0, 0.0)  # clamped at 0
    low, high = bootstrap_interval(3.0, replicates, 0.5)  # quantiles of the squares: 4 and 16
    assert (low, high) == (pytest.approx(math.sqrt(2)), pytest.approx(math.sqrt(14)))


def test_the_estimate_is_the_intervals_construction_at_the_median_by_hand():
    replicates = [1.0, 2.0, 3.0, 4.0, 5.0]  # median 3, median of the squares 9
    assert bootstrap_estimate(3.0, replicates) == pytest.approx(3.0)  # sqrt(2 * 9 - 9)
    assert bootstrap_estimate(2.5, replicates) == pytest.approx(math.sqrt(2 * 6.25 - 9))
    assert bootstrap_estimate(2.0, replicates) == 0.0  # 2 * 4 - 9 < 0: clamped
    assert bootstrap_estimate(2.5, replicates, "basic") == 2.0 and bootstrap_estimate(1.0, replicates, "basic") == 0.0
    assert bootstrap_estimate(2.5, replicates, "percentile") == 3.0
    assert unit_estimates(np.array([3.0, 2.5]), np.array([replicates, replicates])) == pytest.approx([3.0, math.sqrt(3.5)])
    rng = np.random.default_rng(0)
    for method in ("squared", "basic", "percentile"):
        for _ in range(200):
            draws = rng.gamma(2.0, 1.0 + 3 * rng.random(), size=int(rng.integers(1, 60)))
            value = float(rng.gamma(2.0, 2.0))
            low, high = bootstrap_interval(value, draws, rng.uniform(0.05, 0.99), method)
            assert low <= bootstrap_estimate(value, draws, method) <= high
    with pytest.raises(ValueError, match="method must be one of"):
        bootstrap_estimate(1.0, [1.0], method="bca")
    with pytest.raises(ValueError, match=r"replicates must be a \(units, resamples\) array"):
        unit_estimates(np.array([1.0]), np.array([1.0]))


RESAMPLED = [name for name in list_distances() if get_distance(name).image_type is not None]


@pytest.mark.parametrize("metric", RESAMPLED)
def test_every_metrics_estimate_removes_its_own_noise_and_lies_in_its_interval(metric, urban, bsd):
    distance = get_distance(metric)
    kind = distance.per_image_distribution()
    a, b = urban[kind].select_images(range(20)), bsd[kind]
    neurons = {"blocks.2.0": None, "blocks.4.0": None} if distance.unit == "layer" else None
    result = compare_sets(a, b, metric, resamples=30, permutations=20, neurons=neurons)
    assert result.interval == distance.interval
    assert result.estimate == bootstrap_estimate(result.value, result.bootstrap, distance.interval)
    assert result.ci[0] <= result.estimate <= result.ci[1]
    for part in result.layers.values():
        assert part.ci[0] <= part.estimate <= part.ci[1]
    assert result.to_dict()["estimate"] == result.estimate


def test_each_units_value_estimate_and_noise_floor_come_from_the_same_resamples(pair, urban_vs_bsd):
    a, b = pair
    chosen = {"stem": [0, 3, 7], "head": None}
    result = compare_sets(a, b, resamples=40, permutations=30, seed=3, neurons=chosen, units=True)
    assert compare_sets(a, b, resamples=40, permutations=30, seed=3, neurons=chosen) == result  # same numbers without units
    assert urban_vs_bsd.units is None and list(result.units) == ["stem", "head"]
    first, second = _bootstrap_weights(np.random.default_rng(3), 20, 20, 40)
    replicates = resampled_distances(a, b, first, second, neurons=chosen)
    full = EMD(a.subset(), b.subset(), return_neuron_wise=True)
    for layer, units in result.units.items():
        indices = np.arange(1280) if chosen[layer] is None else np.array(chosen[layer])
        assert np.array_equal(units.indices, indices)
        assert np.array_equal(units.value, full[layer][indices].numpy())
        assert np.array_equal(units.estimate, unit_estimates(units.value, replicates[layer]))
        assert units.noise_floor.mean() == pytest.approx(result.layers[layer].noise_floor, rel=1e-12)
        live = units.noise_floor > 0
        assert np.array_equal(units.above_noise()[live], units.estimate[live] / units.noise_floor[live])


def test_neurons_rank_by_their_estimate_over_their_own_noise_floor(pair):
    result = compare_sets(*pair, resamples=100, permutations=100, units=True)
    ranked = result.ranked_units()
    assert len(ranked) == sum(pair[0].neurons_list.values())
    ratios = [unit.above_noise for unit in ranked]
    assert ratios == sorted(ratios, reverse=True)
    loudest = max(ranked, key=lambda unit: unit.value)  # the largest raw EMD: a stem neuron, the noisiest of all
    assert (loudest.layer, loudest.index) == ("stem", 20)
    assert loudest.noise_floor == max(unit.noise_floor for unit in ranked)
    assert ranked.index(loudest) > 100  # far above its floor, but 100 neurons are further above theirs
    assert ranked[0].above_noise > loudest.above_noise and ranked[0].value < loudest.value / 2
    with pytest.raises(ValueError, match=r"compare_sets\(..., units=True\) gives them"):
        compare_sets(*pair, resamples=5, permutations=5).ranked_units()


def test_excess_is_a_deprecated_alias_of_the_estimate(urban_vs_bsd):
    with pytest.warns(DeprecationWarning, match="excess is deprecated: use estimate"):
        assert urban_vs_bsd.excess == urban_vs_bsd.estimate
    with pytest.warns(DeprecationWarning, match="excess is deprecated"):
        assert urban_vs_bsd.layers["head"].excess == urban_vs_bsd.layers["head"].estimate


def test_a_metric_where_larger_is_closer_counts_smaller_splits_as_further_apart(urban, bsd):
    nfd = get_distance("nfd")

    def closeness(values):
        return 1.0 / (1.0 + values)

    def unit_values(first, second, neurons=None):
        return {layer: closeness(values) for layer, values in nfd.unit_values(first, second, neurons=neurons).items()}

    def compare(first, second, neurons=None, neuron_weights=None):
        return torch.cat(list(unit_values(first, second, neurons).values())).mean()

    def resample(*args):
        return tuple(closeness(values) for values in nfd.resample(*args))

    register_distance(replace(nfd, name="nfd-closeness", compare=compare, unit_values=unit_values, resample=resample,
                              lower_is_closer=False))
    try:
        a, b = urban["image-mean"].select_images(range(20)), bsd["image-mean"]
        apart = compare_sets(a, b, "nfd-closeness", resamples=30, permutations=40)
        assert apart.value < apart.noise_floor and apart.p_value == 1 / 41  # no split is as far apart: none is less close
        assert apart.ci[0] <= apart.estimate <= apart.ci[1]
        same = compare_sets(a.select_images(range(10)), a.select_images(range(10, 20)), "nfd-closeness", resamples=30,
                            permutations=40)
        assert same.p_value > 0.05 and same.ci[0] <= same.estimate <= same.ci[1]
    finally:
        unregister_distance("nfd-closeness")


def test_noise_floor_curve_is_the_distance_between_disjoint_draws(urban, pair):
    images = urban["image-histogram-1000"]
    distances = noise_floor_curve(images, [20, 5], 15, draws=3, seed=4)  # a reference of 15 images, stood in for by images
    assert distances.shape == (3, 2)
    shuffles = np.random.default_rng(4)
    for draw in range(3):
        order = shuffles.permutation(40)
        for column, size in enumerate([5, 20]):
            expected = EMD(images.subset(order[:size]), images.subset(order[-15:]))
            assert distances[draw, column] == pytest.approx(float(expected), rel=1e-12)  # neurons summed in another order
    assert distances[:, 0].mean() > distances[:, 1].mean()  # fewer images, more noise
    subsets, reference = pair  # a reference given as per-image DNAs is pooled with the images
    pooled = noise_floor_curve(subsets, [4, 20], reference, draws=2, seed=1)
    assert noise_floor_limits(images, 15) == (15, 25) and noise_floor_limits(subsets, reference) == (20, 20)
    both, order = subsets.merge(reference), np.random.default_rng(1).permutation(40)
    assert pooled[0, 1] == pytest.approx(float(EMD(both.subset(order[:20]), both.subset(order[-20:]))), rel=1e-12)
    means = noise_floor_curve(urban["image-mean"], [10], 10, draws=2, layers=["blocks.6.0"])
    expected = FD(urban["image-mean"].layer_gaussian(np.random.default_rng(0).permutation(40)[:10]),
                  urban["image-mean"].layer_gaussian(np.random.default_rng(0).permutation(40)[-10:]),
                  use_neurons_from_layer="blocks.6.0")
    assert means.shape == (2, 1) and means[0, 0] == pytest.approx(float(expected), rel=1e-6)


def test_layer_shares_of_dataset_dnas_are_those_of_compare_sets(pair, urban_vs_bsd, urban, bsd):
    a, b = pair
    shares = layer_shares(a.subset(), b.subset())
    assert shares == {layer: LayerShare(part.neurons, part.value, part.share) for layer, part in urban_vs_bsd.layers.items()}
    assert shares["head"].estimate is None and shares["head"].to_dict()["ci"] is None
    head = EMD(a.subset(), b.subset(), return_neuron_wise=True)["head"][[3, 4]]
    assert layer_shares(a, b, neurons={"head": [3, 4]}) == {"head": LayerShare(2, float(head.numpy().mean()), 1.0)}
    means = urban["image-mean"].select_images(range(20)), bsd["image-mean"]
    fd = layer_shares(means[0].layer_gaussian(), means[1], "fd", neurons={"blocks.5.0": None, "head": None}, neuron_weights=[1.0, 3.0])
    values = [float(FD(means[0].layer_gaussian(), means[1].layer_gaussian(), use_neurons_from_layer=layer)) for layer in fd]
    assert [part.value for part in fd.values()] == pytest.approx(values, rel=1e-12)
    assert fd["head"].share == pytest.approx(3 * values[1] / (values[0] + 3 * values[1]), rel=1e-12)
    assert fd["head"].neurons == 1280


def test_errors(pair, urban, bsd):
    a, b = pair
    means = bsd["image-mean"]
    with pytest.raises(ValueError, match="unknown distance 'l2'; valid: .*emd, fd, .*nfd"):
        compare_sets(a, b, metric="l2")
    with pytest.raises(TypeError, match="metric 'nfd' needs per-image DNAs of type image-mean"):
        compare_sets(a, b, metric="nfd")
    with pytest.raises(TypeError, match="the second set is a VDNAImageMeans"):
        compare_sets(a, means)
    with pytest.raises(TypeError, match="the first set is a VDNAHist"):
        compare_sets(a.subset(), b)
    other = VDNAImageHist(a.name, "resnet50", a.neurons_list, a.data, a.num_images, a.provenance)
    with pytest.raises(ValueError, match="feature extractors differ"):
        compare_sets(a, other)
    for bad in (0, -3, 2.5, True, "200"):
        with pytest.raises(ValueError, match="resamples must be a positive integer"):
            compare_sets(a, b, resamples=bad)
        with pytest.raises(ValueError, match="permutations must be a positive integer"):
            compare_sets(a, b, permutations=bad)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        compare_sets(a, b, seed=-1)
    with pytest.raises(ValueError, match="the second set has 1 image"):
        compare_sets(a, b.select_images([0]))
    with pytest.raises(ValueError, match="layer 'nope' is not in this DNA; its layers are: stem, "):
        compare_sets(a, b, neurons={"nope": None})
    with pytest.raises(ValueError, match="neurons selects no neuron"):
        compare_sets(a, b, neurons={"head": []})
    with pytest.raises(ValueError, match=r"neuron indices for layer 'head' must lie in \[0, 1280\)"):
        compare_sets(a, b, neurons={"head": [1280]})
    with pytest.raises(ValueError, match="weights must be one value per compared neuron"):
        compare_sets(a, b, neuron_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="fd compares whole layers"):
        compare_sets(means, means, "fd", neurons={"head": [1, 2]})
    with pytest.raises(ValueError, match=r"with 40 pooled images and a reference of 15 .* sizes must lie in \[2, 25\]"):
        noise_floor_curve(urban["image-histogram-1000"], [5, 30], 15)
    with pytest.raises(ValueError, match="draws must be a positive integer"):
        noise_floor_curve(urban["image-histogram-1000"], [5], 15, draws=0)
    with pytest.raises(ValueError, match="reference must be a positive integer"):
        noise_floor_curve(urban["image-histogram-1000"], [5], 0)
    with pytest.raises(TypeError, match="the reference is a VDNAImageMeans"):
        noise_floor_curve(urban["image-histogram-1000"], [5], means)
    with pytest.raises(TypeError, match="metric 'emd' compares histogram DNAs .* the second set is a VDNAGauss"):
        layer_shares(a, means.gaussian())
    with pytest.raises(ValueError, match="unknown distance 'l1'; valid: .*emd, fd, .*nfd"):
        layer_shares(a, b, "l1")
    with pytest.raises(ValueError, match="pass either neurons= or layers="):
        noise_floor_curve(urban["image-mean"], [5], 15, neurons={"head": None}, layers=["head"])
    weights = np.ones((40, 2), dtype=np.int64)
    with pytest.raises(ValueError, match=r"first must be integer weights of shape \(40, resamples\)"):
        resampled_distances(a, b, weights[:30])
    with pytest.raises(ValueError, match="first must be integer weights"):
        resampled_distances(a, b, weights.astype(float))
    with pytest.raises(ValueError, match="second weights must not be negative"):
        resampled_distances(a, b, weights, -weights)
    with pytest.raises(ValueError, match="every resample needs at least 1 image"):
        resampled_distances(a, b, weights, 0 * weights)
    with pytest.raises(ValueError, match="with second=None, first must hold 0/1 weights"):
        resampled_distances(a, b, weights)
    with pytest.raises(ValueError, match="method must be one of"):
        bootstrap_interval(1.0, [1.0], method="bca")
    with pytest.raises(ValueError, match="confidence must lie in"):
        bootstrap_interval(1.0, [1.0], confidence=95)
    with pytest.raises(ValueError, match="replicates must be a non-empty"):
        bootstrap_interval(1.0, [])


@pytest.mark.slow
def test_twenty_halvings_of_imagenet_are_not_significant(processor, data_dir):
    images = processor.make_vdna(image_files(data_dir / "imagenet1k", 1000), distribution_name="image-histogram-1000",
                                 verbose=False)
    p_values = []
    for seed in range(20):  # the halvings of experiments/stats_checks.py
        order = np.random.default_rng(1000 + seed).permutation(1000)
        result = compare_sets(images.select_images(order[:500]), images.select_images(order[500:]), seed=seed)
        p_values.append(result.p_value)
        assert abs(result.value - result.noise_floor) < 3 * result.noise_floor_spread, seed
    assert sum(p < 0.05 for p in p_values) <= 2, p_values
    assert np.median(p_values) > 0.2
