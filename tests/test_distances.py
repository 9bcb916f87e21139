"""EMD, NFD and FD against hand computations and SciPy; every error path of the wrappers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch
from helpers import gauss_dna, hist_dna, layer_gauss_dna, random_spd

from vdna import EMD, FD, NFD
from vdna.distances import emd, frechet_1d, frechet_distance


def test_emd_of_small_histograms_by_hand():
    # [1,0,0] vs [0,0,1]: cumulative [1,1,1] vs [0,0,1] -> 1 + 1 + 0
    assert emd(torch.tensor([[1, 0, 0]]), torch.tensor([[0, 0, 1]])).item() == 2.0
    # [2,2,0,0] vs [0,1,1,2]: cumulative [.5,1,1,1] vs [0,.25,.5,1] -> .5 + .75 + .5 + 0
    assert emd(torch.tensor([[2, 2, 0, 0]]), torch.tensor([[0, 1, 1, 2]])).item() == pytest.approx(1.75, abs=1e-15)
    # scaling a histogram does not change it once normalised
    assert emd(torch.tensor([[3, 1]]), torch.tensor([[30, 10]])).item() == 0.0


def test_emd_equals_wasserstein_over_bin_centres_in_bin_units():
    rng = np.random.default_rng(0)
    bins = 40
    first, second = rng.integers(0, 50, size=(2, 5, bins))
    centres = np.arange(bins) + 0.5
    expected = [scipy.stats.wasserstein_distance(centres, centres, a, b) for a, b in zip(first, second)]
    np.testing.assert_allclose(emd(torch.from_numpy(first), torch.from_numpy(second)).numpy(), expected, rtol=1e-12)


def test_emd_of_a_dna_with_itself_is_exactly_zero_and_symmetric():
    rng = np.random.default_rng(1)
    a = hist_dna({"l0": rng.integers(0, 9, size=(4, 20)), "l1": rng.integers(1, 9, size=(3, 20))})
    b = hist_dna({"l0": rng.integers(0, 9, size=(4, 20)), "l1": rng.integers(1, 9, size=(3, 20))})
    assert EMD(a, a).item() == 0.0
    assert EMD(a, b).item() == EMD(b, a).item() > 0


def test_emd_average_layer_neuron_and_neuron_wise():
    a = hist_dna({"l0": [[1, 0, 0], [0, 1, 0]], "l1": [[1, 1, 0]]})
    b = hist_dna({"l0": [[0, 0, 1], [0, 1, 0]], "l1": [[0, 1, 1]]})
    # neuron EMDs: l0 -> [2, 0], l1 -> [1]
    assert EMD(a, b).item() == pytest.approx(1.0)
    assert EMD(a, b, use_neurons_from_layer="l0").item() == pytest.approx(1.0)
    assert EMD(a, b, use_neurons_from_layer="l0", use_neuron_index=0).item() == pytest.approx(2.0)
    neuron_wise = EMD(a, b, return_neuron_wise=True)
    assert {k: v.tolist() for k, v in neuron_wise.items()} == {"l0": [2.0, 0.0], "l1": [1.0]}
    assert list(EMD(a, b, use_neurons_from_layer="l1", return_neuron_wise=True)) == ["l1"]
    assert EMD(a, b, neurons={"l0": [0], "l1": None}).item() == pytest.approx(1.5)


def test_weighted_emd_is_eq_5():
    a = hist_dna({"l0": [[1, 0, 0], [0, 1, 0]], "l1": [[1, 1, 0]]})
    b = hist_dna({"l0": [[0, 0, 1], [0, 1, 0]], "l1": [[0, 1, 1]]})
    assert EMD(a, b, neuron_weights=torch.tensor([0.5, 3.0, 2.0])).item() == pytest.approx(0.5 * 2 + 3.0 * 0 + 2.0 * 1)
    assert EMD(a, b, neuron_weights={"l0": [1.0, 1.0], "l1": [0.0]}).item() == pytest.approx(2.0)
    assert EMD(a, b, neuron_weights=[1 / 3] * 3).item() == pytest.approx(EMD(a, b).item())
    assert EMD(a, b, use_neurons_from_layer="l0", neuron_weights=[0.25, 1.0]).item() == pytest.approx(0.5)


def test_weight_errors():
    a = hist_dna({"l0": [[1, 0, 0], [0, 1, 0]], "l1": [[1, 1, 0]]})
    with pytest.raises(ValueError, match=r"one value per compared neuron, shape \(3,\), got \(2,\)"):
        EMD(a, a, neuron_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="weights of layer 'l0' have 1 values, expected 2"):
        EMD(a, a, neuron_weights={"l0": [1.0], "l1": [1.0]})
    with pytest.raises(ValueError, match=r"no entry for layers \['l1'\]"):
        EMD(a, a, neuron_weights={"l0": [1.0, 1.0]})
    with pytest.raises(ValueError, match="NaN or infinite"):
        EMD(a, a, neuron_weights=[1.0, float("nan"), 1.0])
    with pytest.raises(ValueError, match="returns unweighted distances"):
        EMD(a, a, neuron_weights=[1.0] * 3, return_neuron_wise=True)


def test_selection_errors():
    a = hist_dna({"l0": [[1, 0, 0], [0, 1, 0]]})
    with pytest.raises(ValueError, match="layer 'nope' is not in this DNA; its layers are: l0"):
        EMD(a, a, use_neurons_from_layer="nope")
    with pytest.raises(ValueError, match="neuron index 2 is out of range for layer 'l0', which has 2 neurons"):
        EMD(a, a, use_neurons_from_layer="l0", use_neuron_index=2)
    with pytest.raises(ValueError, match="use_neuron_index needs use_neurons_from_layer"):
        EMD(a, a, use_neuron_index=0)
    with pytest.raises(ValueError, match="return_neuron_wise cannot be combined with use_neuron_index"):
        EMD(a, a, use_neurons_from_layer="l0", use_neuron_index=0, return_neuron_wise=True)
    with pytest.raises(ValueError, match=r"must lie in \[0, 2\)"):
        EMD(a, a, neurons={"l0": [5]})


def test_comparing_different_dnas_says_what_differs():
    base = hist_dna({"l0": [[1, 0, 0]]})
    with pytest.raises(ValueError, match=r"distributions differ \('histogram-3' vs 'histogram-4'\)"):
        EMD(base, hist_dna({"l0": [[1, 0, 0, 1]]}))
    with pytest.raises(ValueError, match=r"feature extractors differ \('test_net' vs 'other'\)"):
        EMD(base, hist_dna({"l0": [[1, 0, 0]]}, extractor="other"))
    with pytest.raises(ValueError, match="layers differ"):
        EMD(base, hist_dna({"l1": [[1, 0, 0]]}))
    with pytest.raises(ValueError, match="activation ranges differ"):
        EMD(hist_dna({"l0": [[1, 0, 0]]}, ranges_sha256="a" * 64), hist_dna({"l0": [[1, 0, 0]]}, ranges_sha256="b" * 64))
    with pytest.raises(ValueError, match="extractor weights differ"):
        EMD(hist_dna({"l0": [[1, 0, 0]]}, weights_sha256="a" * 64), hist_dna({"l0": [[1, 0, 0]]}, weights_sha256="b" * 64))
    gauss = gauss_dna({"l0": np.zeros(1)}, {"l0": np.ones(1)})
    with pytest.raises(ValueError, match="EMD needs histogram DNAs; the second one is gaussian"):
        EMD(base, gauss)
    with pytest.raises(ValueError, match="NFD needs gaussian or layer-gaussian DNAs; the first one is histogram"):
        NFD(base, gauss)
    with pytest.raises(TypeError, match="the second argument is a str, not a VDNA"):
        EMD(base, "base")


def test_emd_of_an_empty_histogram_raises():
    with pytest.raises(ValueError, match="histogram row 1 has no counts"):
        emd(torch.tensor([[1, 2], [0, 0]]), torch.tensor([[1, 2], [3, 4]]))


def test_nfd_by_formula_and_exact_zero():
    mu1, var1 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 4.0, 0.0])
    mu2, var2 = np.array([1.0, 1.0, -2.0]), np.array([4.0, 1.0, 0.0])
    a, b = gauss_dna({"l": mu1}, {"l": var1}), gauss_dna({"l": mu2}, {"l": var2})
    expected = (mu1 - mu2) ** 2 + var1 + var2 - 2 * np.sqrt(var1 * var2)  # [2, 1, 0]
    np.testing.assert_allclose(NFD(a, b, return_neuron_wise=True)["l"].numpy(), expected, atol=1e-15)
    assert NFD(a, b).item() == pytest.approx(1.0)
    assert NFD(a, a).item() == 0.0
    assert NFD(a, b, neuron_weights=[0.0, 2.0, 5.0]).item() == pytest.approx(2.0)


def test_frechet_1d_never_negative_with_zero_variances():
    values = frechet_1d(torch.zeros(3), torch.zeros(3), torch.tensor([0.0, 1e-9, 2.0]), torch.zeros(3))
    assert values.tolist() == [0.0, pytest.approx(1e-18), 4.0]
    with pytest.raises(ValueError, match="variances must not be negative"):
        frechet_1d(torch.zeros(1), -torch.ones(1), torch.zeros(1), torch.ones(1))


def scipy_fd(mu1, sigma1, mu2, sigma2) -> float:
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2).real
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


@pytest.mark.parametrize("size", [1, 5, 64])
def test_fd_matches_scipy_sqrtm_on_well_conditioned_inputs(size):
    rng = np.random.default_rng(size)
    mu1, mu2 = rng.normal(size=size), rng.normal(size=size)
    sigma1, sigma2 = random_spd(size, rng), random_spd(size, rng)
    ours = frechet_distance(*(torch.from_numpy(x) for x in (mu1, sigma1, mu2, sigma2))).item()
    assert ours == pytest.approx(scipy_fd(mu1, sigma1, mu2, sigma2), rel=1e-6)


def test_fd_with_singular_covariances_is_real_finite_and_non_negative():
    rng = np.random.default_rng(7)
    size = 50
    sigma = random_spd(size, rng, rank=3)  # fewer images than neurons
    for other in (sigma, sigma + 1e-12 * np.eye(size), random_spd(size, rng, rank=2)):
        value = frechet_distance(torch.zeros(size), torch.from_numpy(sigma), torch.zeros(size), torch.from_numpy(other))
        assert value.dtype == torch.float64 and torch.isfinite(value) and value.item() >= 0.0
    zero = torch.zeros((size, size), dtype=torch.float64)
    assert frechet_distance(torch.zeros(size), zero, torch.zeros(size), zero).item() == 0.0


def test_fd_wrapper_layers_mean_weights_and_identity():
    rng = np.random.default_rng(11)
    a = layer_gauss_dna({"l0": rng.normal(size=(30, 4)), "l1": rng.normal(size=(30, 3))})
    b = layer_gauss_dna({"l0": rng.normal(1.0, 1.0, size=(30, 4)), "l1": rng.normal(size=(30, 3)) * 2})
    per_layer = [FD(a, b, use_neurons_from_layer=layer).item() for layer in ("l0", "l1")]
    for layer, value in zip(("l0", "l1"), per_layer):
        args = [a.data[layer]["mu"].numpy(), a.data[layer]["sigma"].numpy(), b.data[layer]["mu"].numpy(), b.data[layer]["sigma"].numpy()]
        assert value == pytest.approx(scipy_fd(*args), rel=1e-6)
    assert FD(a, b).item() == pytest.approx(np.mean(per_layer))
    assert FD(a, b, neuron_weights=[2.0, 0.5]).item() == pytest.approx(2 * per_layer[0] + 0.5 * per_layer[1])
    assert FD(a, b, neuron_weights={"l0": 1.0, "l1": 0.0}).item() == pytest.approx(per_layer[0])
    assert FD(a, a).item() == 0.0
    with pytest.raises(ValueError, match=r"one value per compared layer, shape \(2,\), got \(3,\)"):
        FD(a, b, neuron_weights=[1.0, 1.0, 1.0])
    single = FD(a, b, use_neurons_from_layer="l1", use_neuron_index=2).item()
    mu1, mu2 = a.data["l1"]["mu"][2].item(), b.data["l1"]["mu"][2].item()
    v1, v2 = a.data["l1"]["sigma"][2, 2].item(), b.data["l1"]["sigma"][2, 2].item()
    assert single == pytest.approx((mu1 - mu2) ** 2 + v1 + v2 - 2 * np.sqrt(v1 * v2))
    with pytest.raises(ValueError, match="FD needs layer-gaussian DNAs; the first one is gaussian"):
        FD(gauss_dna({"l0": np.zeros(4)}, {"l0": np.ones(4)}), b)


def test_nfd_of_layer_gaussians_uses_their_diagonals():
    rng = np.random.default_rng(12)
    a = layer_gauss_dna({"l0": rng.normal(size=(20, 3))})
    b = layer_gauss_dna({"l0": rng.normal(size=(20, 3))})
    diagonal = gauss_dna(
        {"l0": a.data["l0"]["mu"].numpy()}, {"l0": torch.diagonal(a.data["l0"]["sigma"]).numpy()}, num_images=20
    )
    assert NFD(a, b).item() == pytest.approx(NFD(diagonal, b).item(), rel=1e-12)


def test_emd_of_integer_and_float_histograms_is_the_l1_distance_of_normalised_cumulative_sums():
    rng = np.random.default_rng(21)
    first, second = (rng.integers(0, 50, size=(30, 200)) for _ in range(2))
    cumulative = [np.cumsum(h, axis=1) / h.sum(axis=1, keepdims=True) for h in (first, second)]
    expected = torch.from_numpy(np.abs(cumulative[0] - cumulative[1]).sum(axis=1))
    counts = emd(torch.from_numpy(first), torch.from_numpy(second))
    torch.testing.assert_close(counts, expected, rtol=1e-12, atol=1e-12)
    as_floats = emd(torch.from_numpy(first).double() / 7, torch.from_numpy(second).double())
    torch.testing.assert_close(as_floats, expected, rtol=1e-12, atol=1e-12)


def test_the_former_name_of_neuron_weights_still_works_and_says_its_new_name():
    a = hist_dna({"l0": [[1, 0, 0], [0, 1, 0]]})
    b = hist_dna({"l0": [[0, 0, 1], [0, 1, 0]]})
    with pytest.warns(DeprecationWarning, match="weights= is now named neuron_weights="):
        assert EMD(a, b, weights=[1.0, 0.0]).item() == EMD(a, b, neuron_weights=[1.0, 0.0]).item() == 2.0
    with pytest.raises(TypeError, match=r"give neuron_weights= only \(weights= is its former name\)"):
        EMD(a, b, weights=[1.0, 0.0], neuron_weights=[1.0, 0.0])
