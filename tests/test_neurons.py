"""Neuron sensitivity and selections."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import hist_dna

from vdna import EMD
from vdna.neurons import NeuronSelection, neuron_distances, rank_neurons


def planted_pair(seed: int = 0):
    """Two DNAs identical but for neuron 3 of layer "b", whose histogram moves by 40 bins."""
    rng = np.random.default_rng(seed)
    a = {"a": rng.integers(1, 20, size=(5, 100)), "b": rng.integers(1, 20, size=(6, 100))}
    a["b"][3] = np.rint(500 * np.exp(-0.5 * ((np.arange(100) - 30) / 5.0) ** 2)).astype(int) + 1
    b = {layer: counts.copy() for layer, counts in a.items()}
    b["b"][3] = np.roll(a["b"][3], 40)
    b["a"][1] = a["a"][1] + rng.integers(0, 2, size=100)  # a small difference elsewhere
    return hist_dna(a), hist_dna(b)


def test_planted_sensitive_neuron_is_ranked_first():
    first, second = planted_pair()
    ranked = rank_neurons(first, second)
    assert (ranked[0].layer, ranked[0].index) == ("b", 3) and 35 < ranked[0].distance <= 40  # the bump moved 40 bins
    assert (ranked[1].layer, ranked[1].index) == ("a", 1)
    assert all(neuron.distance == 0.0 for neuron in ranked[2:])
    assert len(ranked) == 11


def test_selections_focus_comparisons():
    first, second = planted_pair()
    top = NeuronSelection.top(rank_neurons(first, second), 1)
    assert dict(top) == {"b": [3]} and top.num_neurons == 1
    assert EMD(first, second, neurons=top).item() == pytest.approx(rank_neurons(first, second)[0].distance)
    rest = NeuronSelection({"a": [0, 2, 3, 4], "b": [0, 1, 2, 4, 5]})
    assert EMD(first, second, neurons=rest).item() == 0.0
    whole_layer = NeuronSelection.layers(first, ["b"])
    assert EMD(first, second, neurons=whole_layer).item() == pytest.approx(EMD(first, second, use_neurons_from_layer="b").item())
    assert set(neuron_distances(first, second, neurons=top)) == {"b"}


def test_selection_errors():
    first, _ = planted_pair()
    with pytest.raises(ValueError, match="count must be at least 1, got 0"):
        NeuronSelection.top([], 0)
    with pytest.raises(ValueError, match="layer 'c' is not in this DNA"):
        NeuronSelection.layers(first, ["c"])


def test_neurons_are_ranked_by_any_distance_measured_neuron_by_neuron(tmp_path, capsys):
    from helpers import gauss_dna, layer_gauss_dna

    from vdna.cli import main

    a = gauss_dna({"l": np.array([0.0, 0.0, 5.0])}, {"l": np.array([1.0, 1.0, 1.0])})
    b = gauss_dna({"l": np.array([0.0, 3.0, 5.0])}, {"l": np.array([1.0, 1.0, 4.0])})
    by_nfd, by_smd = rank_neurons(a, b, "nfd"), rank_neurons(a, b, "smd")
    assert [(n.index, n.distance) for n in by_nfd] == [(1, 9.0), (2, 1.0), (0, 0.0)]  # (mu gap)^2 + (sd gap)^2
    assert [n.index for n in by_smd] == [1, 0, 2] and by_smd[0].distance == 3.0 and by_smd[1].distance == 0.0
    with pytest.raises(ValueError, match="fd compares whole layers, not neurons; rank neurons by emd, nfd, smd"):
        rank_neurons(layer_gauss_dna({"l": np.eye(3)}), layer_gauss_dna({"l": np.eye(3)}), "fd")
    a.save(tmp_path / "a")
    b.save(tmp_path / "b")
    assert main(["neurons", str(tmp_path / "a"), str(tmp_path / "b"), "--metric", "nfd", "--top", "2"]) == 0
    assert capsys.readouterr().out.splitlines() == ["    1  l[1]  nfd 9.000000", "    2  l[2]  nfd 1.000000"]
    assert main(["neurons", str(tmp_path / "a"), str(tmp_path / "b"), "--metric", "nfd", "--histograms", "h.png"]) == 2
    assert "--histograms draws the neurons' histograms; --metric nfd compares gaussian or layer-gaussian DNAs" in (
        capsys.readouterr().err)
