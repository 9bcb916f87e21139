"""Learned attribute removal (eq. 5-7): planted attributes on synthetic DNAs, and the error paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import gauss_dna, hist_dna, layer_gauss_dna

from vdna.apps.attributes import (
    evaluate_removal,
    learn_attribute_removal,
    removal_loss,
    sensitivity_deviations,
    unit_distances,
)
from vdna.distances import EMD

NEURONS, BINS = 60, 50
PLANTED = {"hat": range(6), "glasses": range(6, 12), "smile": range(12, 18)}


def _histograms(rng: np.random.Generator, shifted: range | None) -> np.ndarray:
    """Counts of 2000 samples per neuron; neurons in ``shifted`` have their distribution moved by 12 bins."""
    centres = np.full(NEURONS, BINS / 2.0)
    if shifted is not None:
        centres[list(shifted)] += 12
    samples = rng.normal(centres[:, None], 4.0, size=(NEURONS, 2000)).clip(0, BINS - 1).astype(int)
    return np.stack([np.bincount(row, minlength=BINS) for row in samples])


def _pairs(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    pairs = {}
    for attribute, neurons in PLANTED.items():
        with_attribute = {"early": _histograms(rng, neurons)[:30], "late": _histograms(rng, neurons)[30:]}
        without = {"early": _histograms(rng, None)[:30], "late": _histograms(rng, None)[30:]}
        pairs[attribute] = (hist_dna(with_attribute), hist_dna(without))
    return pairs


def test_deviation_is_zero_for_uniform_weights_and_one_for_weights_blind_to_the_attribute():
    distances = {"a": torch.tensor([1.0, 3.0, 0.0, 0.0]), "b": torch.tensor([0.0, 0.0, 2.0, 2.0])}
    uniform = torch.full((4,), 0.25, dtype=torch.float64)
    assert {k: float(v) for k, v in sensitivity_deviations(uniform, distances).items()} == {"a": 0.0, "b": 0.0}
    blind_to_a = torch.tensor([0.0, 0.0, 0.5, 0.5], dtype=torch.float64)
    deviations = sensitivity_deviations(blind_to_a, distances)
    assert float(deviations["a"]) == 1.0  # 1 - 0 / 1
    assert float(deviations["b"]) == -1.0  # 1 - 2 / 1: twice as sensitive to b as before
    assert float(removal_loss(blind_to_a, distances, "a")) == 1.0  # |1 - 1| + |-1|


def test_unit_distances_are_the_neuron_wise_emds():
    pairs = _pairs(0)
    distances, units = unit_distances(pairs, "emd")
    assert units == {"early": 30, "late": 30}
    with_hat, without_hat = pairs["hat"]
    expected = torch.cat(list(EMD(with_hat, without_hat, return_neuron_wise=True).values()))
    torch.testing.assert_close(distances["hat"], expected, rtol=0, atol=0)


@pytest.mark.slow
def test_learned_weights_remove_the_planted_attribute_and_keep_the_others():
    train, validation, test = _pairs(1), _pairs(2), _pairs(3)
    removal = learn_attribute_removal(train, validation, "hat", metric="emd")
    weights = removal.weight_vector()
    assert removal.target_removal > 0.9
    assert removal.other_deviation < 0.1
    # the weights of the planted neurons went down, relative to the rest
    assert weights[list(PLANTED["hat"])].mean() < 0.2 * weights[18:].mean()
    removal_on_test, others_on_test = evaluate_removal(removal, test)
    assert removal_on_test > 0.85 and others_on_test < 0.15
    # the weights plug into EMD as eq. 5 weights: EMD_W on the target pair is close to 0
    with_hat, without_hat = test["hat"]
    weighted = float(EMD(with_hat, without_hat, neuron_weights=removal.weights))
    assert weighted < 0.15 * float(EMD(with_hat, without_hat))
    assert removal.history and removal.iterations == len(removal.history)


def test_neuron_wise_nfd_learning_on_gaussian_dnas():
    rng = np.random.default_rng(4)

    def split():
        pairs = {}
        for attribute, neurons in PLANTED.items():
            shift = np.zeros(NEURONS)
            shift[list(neurons)] = 3.0
            base = rng.normal(0, 0.05, NEURONS)
            pairs[attribute] = (
                gauss_dna({"all": base + shift + rng.normal(0, 0.05, NEURONS)}, {"all": np.ones(NEURONS)}),
                gauss_dna({"all": base + rng.normal(0, 0.05, NEURONS)}, {"all": np.ones(NEURONS)}),
            )
        return pairs

    removal = learn_attribute_removal(split(), split(), "glasses", metric="nfd", learning_rate=1e-3)
    assert removal.target_removal > 0.9 and removal.other_deviation < 0.1


def test_layer_wise_fd_has_one_weight_per_layer_and_cannot_separate_attributes_sharing_a_layer():
    rng = np.random.default_rng(5)

    def split():
        pairs = {}
        for attribute in ("a", "b"):
            # both attributes move neurons of the same single layer: one weight cannot tell them apart
            shifted = rng.normal(size=(400, 4)) + (np.array([2.0, 0, 0, 0]) if attribute == "a" else np.array([0, 2.0, 0, 0]))
            pairs[attribute] = (layer_gauss_dna({"only": shifted}), layer_gauss_dna({"only": rng.normal(size=(400, 4))}))
        return pairs

    removal = learn_attribute_removal(split(), split(), "a", metric="fd", learning_rate=1e-3)
    assert list(removal.weights) == ["only"] and removal.weights["only"].shape == (1,)
    # with one weight w, Delta_a = Delta_b = 1 - w: removing a removes b just as much
    assert removal.other_deviation == pytest.approx(abs(removal.target_removal), abs=1e-12)
    assert removal.target_removal == pytest.approx(1 - float(removal.weights["only"][0]), abs=1e-12)


def test_errors_name_the_problem():
    pairs = _pairs(0)
    with pytest.raises(ValueError, match="unknown distance 'cosine'; valid: .*emd, fd, .*nfd"):
        unit_distances(pairs, "cosine")
    with pytest.raises(ValueError, match="target attribute 'beard' is not among"):
        learn_attribute_removal(pairs, pairs, "beard")
    with pytest.raises(ValueError, match="same attributes"):
        learn_attribute_removal(pairs, {"hat": pairs["hat"]}, "hat")
    with pytest.raises(ValueError, match="expected a \\(with, without\\) pair"):
        unit_distances({"hat": pairs["hat"][0]}, "emd")
    same = {"hat": (pairs["hat"][0], pairs["hat"][0]), "glasses": pairs["glasses"]}
    with pytest.raises(ValueError, match="zero distance between their DNAs"):
        learn_attribute_removal(same, same, "hat")
    with pytest.raises(ValueError, match="patience and max_iterations must be positive"):
        learn_attribute_removal(pairs, pairs, "hat", patience=0)
