"""The histogram kernel against numpy.histogram, on both paths, including values on bin edges."""

from __future__ import annotations

import dataclasses

import numba
import numpy as np
import pytest
import torch

from vdna.distances import emd
from vdna.kernels import (
    _INT32_COUNTS_LIMIT,
    Binning,
    _histogram_compiled,
    _histogram_positions,
    _histogram_searchsorted,
    accumulate_histograms,
    bin_edges,
    bins_in_place,
    float32_thresholds,
    histogram_per_neuron,
)


def reference_histograms(values: np.ndarray, bins: int, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    """numpy.histogram of each neuron's values (batch, neurons, positions), clamped, in float64."""
    clamped = np.clip(values.astype(np.float64), low, high)
    per_neuron = clamped.transpose(1, 0, 2).reshape(values.shape[1], -1)
    return np.stack([np.histogram(row, bins=bins, range=(low, high))[0] for row in per_neuron])


def activations_with_edges(bins: int, seed: int = 0) -> torch.Tensor:
    """Random activations, some beyond [-1, 1], plus every bin edge exactly (as float64)."""
    rng = np.random.default_rng(seed)
    values = rng.normal(0.0, 0.7, size=(5, 3, 40))
    values[:, :, :10] = rng.uniform(-1.5, 1.5, size=(5, 3, 10))
    edges = bin_edges(bins)
    values[0, :, : min(40, len(edges))] = edges[: min(40, len(edges))]
    values[1, :, 0] = 1.0
    values[1, :, 1] = -1.0
    return torch.from_numpy(values)


@pytest.mark.parametrize("bins", [2, 7, 50, 1000])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_histograms_equal_numpy_on_random_values_and_edges(bins, dtype):
    values = activations_with_edges(bins).to(dtype)
    counts = histogram_per_neuron(values, bins)
    assert counts.dtype == torch.int64
    np.testing.assert_array_equal(counts.numpy(), reference_histograms(values.numpy(), bins))


def test_value_on_each_edge_lands_in_the_bin_it_opens_and_last_edge_in_last_bin():
    bins = 1000
    edges = torch.from_numpy(bin_edges(bins)).view(1, 1, -1)
    counts = histogram_per_neuron(edges, bins)[0]
    expected = torch.ones(bins, dtype=torch.int64)
    expected[-1] = 2
    assert torch.equal(counts, expected)


def test_float32_values_on_exact_edges():
    values = torch.tensor([[[-1.0, -0.5, 0.0, 0.5, 1.0, 0.25, -0.75]]], dtype=torch.float32)
    counts = histogram_per_neuron(values, 8)[0].tolist()
    # edges -1, -0.75, ..., 1: each value opens its bin; 1.0 goes to the closed last bin.
    assert counts == [1, 1, 1, 0, 1, 1, 1, 1]


def test_values_outside_the_range_are_clamped_into_the_end_bins():
    values = torch.tensor([[[-7.0, -1.0000001, 3.0, float("inf"), float("-inf")]]], dtype=torch.float64)
    counts = histogram_per_neuron(values, 4)[0].tolist()
    assert counts == [3, 0, 0, 2]
    two_neurons = values.to(torch.float32).expand(1, 2, 5)
    for layout in (two_neurons.contiguous(), channels_last(two_neurons)):
        assert histogram_per_neuron(layout, 4).tolist() == [[3, 0, 0, 2]] * 2


def normalised_case(seed: int = 3, neurons: int = 6):
    rng = np.random.default_rng(seed)
    values = rng.normal(0.3, 2.0, size=(4, neurons, 97)).astype(np.float32)
    centre, half = rng.normal(0, 0.5, size=neurons), rng.uniform(0.5, 3.0, size=neurons)
    edges = bin_edges(1000)
    # activations sitting exactly on (the float32 neighbours of) normalised bin edges
    on_edges = (centre[:, None] + edges[None, ::25] * half[:, None]).astype(np.float32)
    values[0, :, : on_edges.shape[1]] = on_edges
    values[1, :, : on_edges.shape[1]] = np.nextafter(on_edges, np.float32(-np.inf))
    return torch.from_numpy(values), centre, half


def test_compiled_kernel_and_searchsorted_path_equal_the_float64_definition():
    values, centre, half = normalised_case()
    binning = Binning.create(centre, half, 1000)
    compiled = torch.zeros((6, 1000), dtype=torch.int64)
    accumulate_histograms(values, compiled, binning)
    searched = torch.zeros((6, 1000), dtype=torch.int64)
    _histogram_searchsorted(values, binning, searched)
    assert torch.equal(compiled, searched)
    normalised = (values.double() - torch.from_numpy(centre).view(1, -1, 1)) / torch.from_numpy(half).view(1, -1, 1)
    np.testing.assert_array_equal(compiled.numpy(), reference_histograms(normalised.numpy(), 1000))
    assert torch.equal(histogram_per_neuron(normalised, 1000), compiled)



def values_around_every_threshold(seed: int = 11, neurons: int = 40, bins: int = 1000):
    """Activations on each neuron's thresholds and their float32 neighbours, exact zeros, clamped values.

    Neuron 0 has a centre of 0, so an activation of 0 sits exactly on a bin edge; neuron 1's range
    puts 0 just beyond the top of its range, neuron 2's just below the bottom.
    """
    rng = np.random.default_rng(seed)
    centre, half = rng.normal(0, 2, size=neurons), rng.uniform(1e-3, 5, size=neurons)
    centre[0], centre[1], centre[2] = 0.0, -half[1] * 1.0001, half[2] * 1.0001
    thresholds = float32_thresholds(centre, half, bins)
    around = [np.nextafter(thresholds, np.float32(-np.inf)), thresholds, np.nextafter(thresholds, np.float32(np.inf))]
    spread = (centre[:, None] + rng.uniform(-1.3, 1.3, size=(neurons, 3 * (bins - 1))) * half[:, None]).astype(np.float32)
    per_neuron = np.concatenate(around + [spread, np.zeros((neurons, 502), np.float32)], axis=1)
    per_neuron = rng.permuted(per_neuron, axis=1)
    values = per_neuron.reshape(neurons, 4, -1).transpose(1, 0, 2)
    return torch.from_numpy(np.ascontiguousarray(values)), centre, half


def test_every_threshold_its_neighbours_zeros_and_clamped_values_bin_as_the_float64_definition():
    values, centre, half = values_around_every_threshold()
    binning = Binning.create(centre, half, 1000)
    assert 0 < binning.margin < 0.01
    compiled = torch.zeros((len(centre), 1000), dtype=torch.int64)
    assert accumulate_histograms(values, compiled, binning) == 0
    normalised = (values.double() - torch.from_numpy(centre).view(1, -1, 1)) / torch.from_numpy(half).view(1, -1, 1)
    np.testing.assert_array_equal(compiled.numpy(), reference_histograms(normalised.numpy(), 1000))
    searched = torch.zeros_like(compiled)
    _histogram_searchsorted(values, binning, searched)
    assert torch.equal(compiled, searched)
    assert compiled[0, 500] >= 500 and compiled[1, 999] >= 500 and compiled[2, 0] >= 500  # the zeros


def test_checking_every_value_against_thresholds_gives_the_same_counts():
    values, centre, half = values_around_every_threshold(seed=12, neurons=8)
    binning = Binning.create(centre, half, 1000)
    estimated = torch.zeros((8, 1000), dtype=torch.int64)
    accumulate_histograms(values, estimated, binning)
    checked = torch.zeros_like(estimated)
    accumulate_histograms(values, checked, dataclasses.replace(binning, margin=float("inf")))
    assert torch.equal(estimated, checked)


def test_a_binning_moved_to_its_own_device_keeps_the_cpu_rows_it_made():
    _, centre, half = values_around_every_threshold(seed=17, neurons=3)
    binning = Binning.create(centre, half, 1000)
    rows = binning.cpu_rows(3)
    assert binning.to("cpu") is binning and binning.to(torch.device("cpu")).cpu_rows(3) is rows
    moved = binning.to("meta")
    assert moved is not binning and moved.offset.device.type == "meta"


def test_the_margin_is_only_as_wide_as_the_estimate_strays():
    values, centre, half = values_around_every_threshold(seed=16, neurons=12)
    binning = Binning.create(centre, half, 1000)
    normalised = (values.double() - torch.from_numpy(centre).view(1, -1, 1)) / torch.from_numpy(half).view(1, -1, 1)
    expected = reference_histograms(normalised.numpy(), 1000)
    wrong = {}
    for share in (1.0, 0.9):  # of the worst stray, the margin less its 1e-6 of slack
        counts = torch.zeros((12, 1000), dtype=torch.int64)
        accumulate_histograms(values, counts, dataclasses.replace(binning, margin=(binning.margin - 1e-6) * share))
        wrong[share] = int(np.abs(counts.numpy() - expected).sum())
    assert wrong[1.0] == 0 and wrong[0.9] > 0


def test_counts_are_flushed_before_their_int32_counters_could_overflow():
    values, centre, half = values_around_every_threshold(seed=13, neurons=5)
    binning = Binning.create(centre, half, 1000)
    whole = torch.zeros((5, 1000), dtype=torch.int64)
    _histogram_compiled(values, binning, whole)
    for limit in (7, 1000, values.shape[2] + 1):  # parts of a run of positions; several runs per flush
        flushed = torch.zeros_like(whole)
        _histogram_compiled(values, binning, flushed, counts_limit=limit)
        assert torch.equal(flushed, whole), limit


@pytest.mark.parametrize("check_every_value", [False, True])
def test_short_rows_binned_several_at_a_time_as_the_float64_definition(check_every_value):
    values, centre, half = values_around_every_threshold(seed=15, neurons=6)
    short_rows = values.transpose(0, 1).reshape(6, 56, 116).transpose(0, 1).contiguous()  # several rows per block
    short_rows[3, 2, 7] = short_rows[4, 2, 0] = short_rows[30, 5, 115] = float("nan")
    binning = Binning.create(centre, half, 1000)
    if check_every_value:
        binning = dataclasses.replace(binning, margin=float("inf"))
    normalised = (short_rows.double() - torch.from_numpy(centre).view(1, -1, 1)) / torch.from_numpy(half).view(1, -1, 1)
    expected = reference_histograms(np.nan_to_num(normalised.numpy(), nan=5.0), 1000)
    expected[[2, 5], -1] -= [2, 1]
    for limit in (_INT32_COUNTS_LIMIT, 300):  # counts flushed every 2 rows
        counts = torch.zeros((6, 1000), dtype=torch.int64)
        assert _histogram_compiled(short_rows, binning, counts, counts_limit=limit) == 3
        np.testing.assert_array_equal(counts.numpy(), expected)


@pytest.mark.parametrize("shape", [(2, 3, 0), (0, 3, 5)])
def test_activations_without_values_give_empty_histograms(shape):
    counts = histogram_per_neuron(torch.zeros(shape), 10)
    assert counts.shape == (3, 10) and int(counts.abs().sum()) == 0


def channels_last(values: torch.Tensor) -> torch.Tensor:
    """The same ``(batch, neurons, positions)`` values with each position's neurons side by side in memory."""
    return values.transpose(1, 2).contiguous().transpose(1, 2)


def test_channels_last_activations_are_binned_in_place_as_the_float64_definition():
    values, centre, half = values_around_every_threshold(seed=14, neurons=24)
    binning = Binning.create(centre, half, 1000)
    in_place = channels_last(values)
    assert bins_in_place(in_place, 1000) and not bins_in_place(values, 1000)
    copied = torch.zeros((24, 1000), dtype=torch.int64)
    accumulate_histograms(values, copied, binning)
    normalised = (values.double() - torch.from_numpy(centre).view(1, -1, 1)) / torch.from_numpy(half).view(1, -1, 1)
    np.testing.assert_array_equal(copied.numpy(), reference_histograms(normalised.numpy(), 1000))
    found = torch.zeros_like(copied)
    assert accumulate_histograms(in_place, found, binning) == 0
    assert torch.equal(found, copied)
    checked = torch.zeros_like(copied)
    accumulate_histograms(in_place, checked, dataclasses.replace(binning, margin=float("inf")))
    assert torch.equal(checked, copied)
    rows = in_place.transpose(1, 2).reshape(-1, 24)
    for limit in (7, 1000):  # a call's rows stay within the range of int32 counts
        flushed = torch.zeros_like(copied)
        _histogram_positions(rows, binning, flushed, counts_limit=limit)
        assert torch.equal(flushed, copied), limit
    shared = activations_with_edges(50).to(torch.float32)
    assert torch.equal(histogram_per_neuron(channels_last(shared), 50), histogram_per_neuron(shared, 50))
    with_nan = in_place.clone()
    with_nan[2, 5, 7] = float("nan")
    assert accumulate_histograms(with_nan, torch.zeros_like(copied), binning) == 1


def test_only_channels_last_float32_layers_with_few_enough_counts_are_binned_in_place():
    assert bins_in_place(channels_last(torch.zeros((2, 2048, 9))), 1000)
    assert not bins_in_place(channels_last(torch.zeros((2, 2100, 9))), 1000)  # int32 counts beyond 8 MiB
    assert bins_in_place(channels_last(torch.zeros((2, 2100, 9))), 100)
    assert not bins_in_place(channels_last(torch.zeros((2, 16, 9), dtype=torch.float64)), 1000)
    assert not bins_in_place(torch.zeros((2, 16, 9)), 1000)  # neuron-major already
    assert not bins_in_place(channels_last(torch.zeros((2, 16, 1))), 1000)


@pytest.mark.parametrize("where", ["anywhere", "near zero"])
def test_float32_thresholds_are_exact(where):
    rng = np.random.default_rng(9)
    centre, half = rng.normal(0, 3, size=20), rng.uniform(1e-3, 10, size=20)
    edges = bin_edges(257)[1:-1]
    if where == "near zero":  # c + e * h cancels to about 1e-17, far from the exact threshold in float32 steps
        half = np.ones(20)
        centre = -edges[rng.choice(len(edges), size=20, replace=False)]
    thresholds = float32_thresholds(centre, half, 257)
    below = np.nextafter(thresholds, np.float32(-np.inf))
    reach = (thresholds.astype(np.float64) - centre[:, None]) / half[:, None] >= edges
    reach_below = (below.astype(np.float64) - centre[:, None]) / half[:, None] >= edges
    assert reach.all() and not reach_below.any()
    assert np.all(np.diff(thresholds, axis=1) >= 0)


def test_dead_neuron_with_a_tiny_range_still_bins_exactly():
    values = torch.tensor([[[0.0, 0.0, 1e-9, -1e-9, 5.0, -5.0]]], dtype=torch.float32)
    binning = Binning.create(np.zeros(1), np.full(1, 1e-8), 10)
    out = torch.zeros((1, 10), dtype=torch.int64)
    accumulate_histograms(values, out, binning)
    normalised = values.double() / 1e-8
    np.testing.assert_array_equal(out.numpy(), reference_histograms(normalised.numpy(), 10))


def test_counts_do_not_depend_on_how_a_batch_is_split():
    values = activations_with_edges(1000, seed=5).to(torch.float32)
    whole = histogram_per_neuron(values, 1000)
    pieces = sum(histogram_per_neuron(chunk, 1000) for chunk in values.split(2))
    assert torch.equal(whole, pieces)


def test_non_contiguous_activations_give_the_same_counts():
    values = activations_with_edges(50).to(torch.float32)
    strided = values.transpose(1, 2).contiguous().transpose(1, 2)
    assert not strided.is_contiguous()
    assert torch.equal(histogram_per_neuron(strided, 50), histogram_per_neuron(values, 50))


def test_nan_activations_raise_and_are_counted():
    values = torch.zeros((1, 2, 4))
    values[0, 1, 2] = float("nan")
    with pytest.raises(ValueError, match="1 NaN value"):
        histogram_per_neuron(values, 10)
    out = torch.zeros((2, 10), dtype=torch.int64)
    assert accumulate_histograms(values, out, Binning.create(np.zeros(2), np.ones(2), 10)) == 1
    with pytest.raises(ValueError, match="1 NaN value"):
        histogram_per_neuron(values.double(), 10)


def test_kernel_argument_errors():
    binning = Binning.create(np.zeros(2), np.ones(2), 5)
    with pytest.raises(ValueError, match="bins must be an integer >= 2, got 1"):
        histogram_per_neuron(torch.zeros((1, 1, 1)), 1)
    with pytest.raises(ValueError, match="low must be below high"):
        histogram_per_neuron(torch.zeros((1, 1, 1)), 4, low=1.0, high=1.0)
    with pytest.raises(ValueError, match=r"must be \(batch, neurons, positions\)"):
        histogram_per_neuron(torch.zeros((2, 3)), 4)
    with pytest.raises(ValueError, match="activations have 3 neurons, the histograms 2"):
        accumulate_histograms(torch.zeros((1, 3, 4)), torch.zeros((2, 5), dtype=torch.int64), binning)
    with pytest.raises(TypeError, match="histograms must be int64"):
        accumulate_histograms(torch.zeros((1, 2, 4)), torch.zeros((2, 5), dtype=torch.int32), binning)
    with pytest.raises(ValueError, match="histograms have 4 bins, the binning 5"):
        accumulate_histograms(torch.zeros((1, 2, 4)), torch.zeros((2, 4), dtype=torch.int64), binning)
    with pytest.raises(ValueError, match="finite centres and positive, finite half widths"):
        Binning.create(np.zeros(1), np.zeros(1), 5)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="numba's pool must have more threads than torch uses")
def test_compiled_code_leaves_torch_thread_count_alone(one_torch_thread):
    # numba's OpenMP pool shares torch's runtime: running it on more threads used to raise torch's
    # thread count, which changes how CPU convolutions round.
    values = torch.randn(3, 64, 300)
    counts = histogram_per_neuron(values, 100)
    assert torch.get_num_threads() == 1
    assert torch.equal(histogram_per_neuron(values.double(), 100), counts)
    assert torch.get_num_threads() == 1
    assert torch.all(emd(counts, counts.flip(0)) >= 0)
    assert torch.get_num_threads() == 1
