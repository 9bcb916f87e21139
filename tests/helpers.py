"""Small DNAs built directly from arrays, for tests of distances, merging and files."""

from __future__ import annotations

import numpy as np
import torch

from vdna.distributions import VDNAGauss, VDNAHist, VDNALayerGauss
from vdna.dna import Provenance


def hist_dna(counts: dict[str, list] | dict[str, np.ndarray], extractor: str = "test_net", **provenance) -> VDNAHist:
    """A histogram DNA from per-layer count arrays ``(neurons, bins)``."""
    data = {layer: torch.as_tensor(np.asarray(values), dtype=torch.int64) for layer, values in counts.items()}
    bins = next(iter(data.values())).shape[1]
    neurons = {layer: values.shape[0] for layer, values in data.items()}
    return VDNAHist.create({"bins": bins}, extractor, neurons, data, 10, Provenance(**provenance))


def gauss_dna(mu: dict[str, np.ndarray], var: dict[str, np.ndarray], num_images: int = 10) -> VDNAGauss:
    """A per-neuron Gaussian DNA."""
    data = {
        layer: {"mu": torch.as_tensor(mu[layer], dtype=torch.float64), "var": torch.as_tensor(var[layer], dtype=torch.float64)}
        for layer in mu
    }
    neurons = {layer: len(mu[layer]) for layer in mu}
    return VDNAGauss.create({}, "test_net", neurons, data, num_images)


def layer_gauss_dna(samples: dict[str, np.ndarray]) -> VDNALayerGauss:
    """A layer-Gaussian DNA fitted to per-layer samples ``(images, neurons)``."""
    data = {
        layer: {
            "mu": torch.as_tensor(values.mean(axis=0), dtype=torch.float64),
            "sigma": torch.as_tensor(np.cov(values, rowvar=False).reshape(values.shape[1], values.shape[1]), dtype=torch.float64),
        }
        for layer, values in samples.items()
    }
    neurons = {layer: values.shape[1] for layer, values in samples.items()}
    count = next(iter(samples.values())).shape[0]
    return VDNALayerGauss.create({}, "test_net", neurons, data, count)


def random_spd(size: int, rng: np.random.Generator, rank: int | None = None) -> np.ndarray:
    """A random symmetric positive (semi-)definite matrix of the given rank."""
    factor = rng.normal(size=(size, rank or size + 3))
    return factor @ factor.T / factor.shape[1]
