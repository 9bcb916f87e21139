"""dna-smd: the standardised mean difference of each neuron, by hand, by the registry and on real images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import gauss_dna, layer_gauss_dna

from vdna.cli import main
from vdna.distances import get_distance, list_distances
from vdna.distances.smd_distance import SMD, standardised_mean_difference
from vdna.stats import compare_sets


def test_by_hand_and_exactly_zero_for_identical_sets():
    a = gauss_dna({"l": np.array([0.0, 1.0, 2.0, 3.0])}, {"l": np.array([1.0, 4.0, 0.0, 2.0])})
    b = gauss_dna({"l": np.array([1.0, 1.0, 2.0, 0.0])}, {"l": np.array([1.0, 0.0, 0.0, 16.0])})
    # |0 - 1| / 1, 0 / sqrt(2), a constant neuron of equal means, |3 - 0| / sqrt(9)
    assert SMD(a, b, return_neuron_wise=True)["l"].tolist() == [1.0, 0.0, 0.0, 1.0]
    assert SMD(a, b).item() == 0.5
    assert SMD(a, b, neuron_weights=[0.25, 1.0, 1.0, 0.75]).item() == 1.0
    assert SMD(a, b, neurons={"l": [0, 3]}).item() == 1.0
    assert SMD(a, a).item() == 0.0


def test_layer_gaussians_give_their_diagonal():
    rng = np.random.default_rng(0)
    first, second = rng.normal(size=(30, 4)), rng.normal(0.5, 2.0, size=(30, 4))
    by_hand = np.abs(first.mean(0) - second.mean(0)) / np.sqrt((first.var(0, ddof=1) + second.var(0, ddof=1)) / 2)
    made = SMD(layer_gauss_dna({"l": first}), layer_gauss_dna({"l": second}), return_neuron_wise=True)["l"]
    np.testing.assert_allclose(made.numpy(), by_hand, rtol=1e-12)


def test_a_neuron_constant_at_two_values_is_refused():
    with pytest.raises(ValueError, match="undefined for a neuron constant in both sets at different values"):
        standardised_mean_difference(torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([2.0]), torch.tensor([0.0]))


def test_registered_with_statistics_on_real_images(dna_of, data_dir, tmp_path, capsys):
    assert "smd" in list_distances() and get_distance("smd").interval == "squared"
    a = dna_of(data_dir / "set14", distribution_name="image-mean", num_images=8, num_workers=0)
    b = dna_of(data_dir / "bsd100", distribution_name="image-mean", num_images=8, num_workers=0)
    result = compare_sets(a, b, "smd", resamples=20, permutations=20, seed=1)
    assert result.value == SMD(a.gaussian(), b.gaussian()).item() > 0
    assert result.ci[0] <= result.value and result.noise_floor > 0 and len(result.layers) == len(a.neurons_list)
    a.save(tmp_path / "a")
    b.save(tmp_path / "b")
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--metric", "smd"]) == 0
    assert capsys.readouterr().out.startswith(f"smd: {result.value:.6f}  (efficientnet_lite0, gaussian, all 18 layers")
