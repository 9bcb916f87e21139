"""The histogram kernel against numpy.histogram, on both paths, including values on bin edges."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vdna.kernels import _histogram_torch, accumulate_histograms, bin_edges, histogram_per_neuron


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
def test_histograms_equal_numpy_on_random_values_and_edges(bins):
    values = activations_with_edges(bins)
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


def test_cpu_kernel_and_torch_path_are_bit_identical_with_normalisation():
    rng = np.random.default_rng(3)
    values = torch.from_numpy(rng.normal(0.3, 2.0, size=(4, 6, 97)).astype(np.float32))
    centre = torch.from_numpy(rng.normal(0, 0.5, size=6))
    half = torch.from_numpy(rng.uniform(0.5, 3.0, size=6))
    compiled = torch.zeros((6, 1000), dtype=torch.int64)
    accumulate_histograms(values, compiled, centre, half)
    tensor_ops = torch.zeros((6, 1000), dtype=torch.int64)
    _histogram_torch(values, centre, half, torch.from_numpy(bin_edges(1000)), tensor_ops)
    assert torch.equal(compiled, tensor_ops)
    normalised = (values.double() - centre.view(1, -1, 1)) / half.view(1, -1, 1)
    np.testing.assert_array_equal(compiled.numpy(), reference_histograms(normalised.numpy(), 1000))


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
    assert accumulate_histograms(values, out) == 1


def test_kernel_argument_errors():
    with pytest.raises(ValueError, match="bins must be a positive integer"):
        histogram_per_neuron(torch.zeros((1, 1, 1)), 0)
    with pytest.raises(ValueError, match="low must be below high"):
        histogram_per_neuron(torch.zeros((1, 1, 1)), 4, low=1.0, high=1.0)
    with pytest.raises(ValueError, match=r"must be \(batch, neurons, positions\)"):
        histogram_per_neuron(torch.zeros((2, 3)), 4)
    with pytest.raises(ValueError, match="activations have 3 neurons, the histograms 2"):
        accumulate_histograms(torch.zeros((1, 3, 4)), torch.zeros((2, 5), dtype=torch.int64))
    with pytest.raises(TypeError, match="histograms must be int64"):
        accumulate_histograms(torch.zeros((1, 2, 4)), torch.zeros((2, 5), dtype=torch.int32))
