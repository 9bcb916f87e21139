"""Property-based tests of EMD and of file round trips."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vdna import load_vdna_from_files
from vdna.distances import emd
from vdna.distributions import VDNAActivationRanges, VDNAGauss, VDNAHist, VDNALayerGauss

BINS = st.integers(min_value=2, max_value=40)
EXAMPLES = settings(max_examples=200, deadline=None)


def histograms(bins: int, rows: int = 1):
    counts = arrays(np.int64, (rows, bins), elements=st.integers(min_value=0, max_value=10**6))
    return counts.filter(lambda h: bool(np.all(h.sum(axis=1) > 0)))


@st.composite
def histogram_triples(draw):
    bins = draw(BINS)
    return tuple(torch.from_numpy(draw(histograms(bins))) for _ in range(3))


@EXAMPLES
@given(histogram_triples())
def test_emd_is_a_symmetric_metric(triple):
    a, b, c = triple
    ab, ba = emd(a, b).item(), emd(b, a).item()
    assert ab == ba
    assert emd(a, a).item() == 0.0
    assert ab <= emd(a, c).item() + emd(c, b).item() + 1e-9
    same = np.allclose(a.numpy() / a.sum().item(), b.numpy() / b.sum().item(), rtol=0, atol=1e-15)
    assert (ab < 1e-12) == same


@EXAMPLES
@given(histogram_triples())
def test_emd_is_wasserstein_over_bin_centres_in_bin_widths(triple):
    a, b, _ = triple
    bins = a.shape[1]
    width = 2.0 / bins
    centres = -1.0 + width * (np.arange(bins) + 0.5)
    expected = scipy.stats.wasserstein_distance(centres, centres, a[0].numpy(), b[0].numpy()) / width
    assert np.isclose(emd(a, b).item(), expected, rtol=1e-9, atol=1e-9)


def finite_floats(dtype, low=-1e6, high=1e6):
    return arrays(dtype, st.integers(1, 6), elements=st.floats(low, high, allow_nan=False, width=64 if dtype == np.float64 else 32))


@st.composite
def random_dnas(draw):
    kind = draw(st.sampled_from(["histogram", "gaussian", "layer-gaussian", "activation-ranges"]))
    layers = draw(st.lists(st.integers(1, 5), min_size=1, max_size=3))
    neurons = {f"layer.{i}": n for i, n in enumerate(layers)}
    images = draw(st.integers(1, 10**6))
    values = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
    positive = st.floats(0, 1e6, allow_nan=False, allow_infinity=False)
    if kind == "histogram":
        bins = draw(BINS)
        data = {name: torch.from_numpy(draw(arrays(np.int64, (n, bins), elements=st.integers(0, 2**40)))) for name, n in neurons.items()}
        return VDNAHist.create({"bins": bins}, "net", neurons, data, images)
    if kind == "gaussian":
        data = {
            name: {
                "mu": torch.from_numpy(draw(arrays(np.float64, n, elements=values))),
                "var": torch.from_numpy(draw(arrays(np.float64, n, elements=positive))),
            }
            for name, n in neurons.items()
        }
        return VDNAGauss.create({}, "net", neurons, data, images)
    if kind == "layer-gaussian":
        data = {}
        for name, n in neurons.items():
            factor = draw(arrays(np.float64, (n, n), elements=st.floats(-100, 100, allow_nan=False)))
            data[name] = {"mu": torch.from_numpy(draw(arrays(np.float64, n, elements=values))), "sigma": torch.from_numpy(factor @ factor.T)}
        return VDNALayerGauss.create({}, "net", neurons, data, images)
    data = {}
    for name, n in neurons.items():
        bounds = np.sort(draw(arrays(np.float32, (2, n), elements=st.floats(-1e6, 1e6, allow_nan=False, width=32))), axis=0)
        data[name] = {"min": torch.from_numpy(bounds[0]), "max": torch.from_numpy(bounds[1])}
    return VDNAActivationRanges.create({}, "net", neurons, data, images)


def flat(vdna) -> dict[str, torch.Tensor]:
    out = {}
    for layer, value in vdna.data.items():
        for key, tensor in (value.items() if isinstance(value, dict) else [("", value)]):
            out[f"{layer}/{key}"] = tensor
    return out


@EXAMPLES
@given(random_dnas(), st.booleans())
def test_save_load_round_trips_every_array_bit_for_bit(vdna, compact):
    compact = compact and vdna.type == "histogram"
    with tempfile.TemporaryDirectory() as folder:
        vdna.save(Path(folder) / "dna", compact=compact)
        loaded = load_vdna_from_files(Path(folder) / "dna")
    assert type(loaded) is type(vdna) and loaded.neurons_list == vdna.neurons_list and loaded.num_images == vdna.num_images
    original, reread = flat(vdna), flat(loaded)
    assert original.keys() == reread.keys()
    for key, tensor in original.items():
        assert reread[key].dtype == tensor.dtype
        assert torch.equal(reread[key], tensor), key
