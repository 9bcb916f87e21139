"""What resampling per-image DNAs shares across distances: weights, parallel chunks, Gaussians of many resamples.

A resample is a vector of per-image weights: multinomial counts for a bootstrap, 0/1 membership
for a split of pooled images. Each distance's ``resample`` compares the DNAs of many resamples at
once from the stored per-image data, without running the network again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numba
import numpy as np
import torch

from ..distributions import VDNAImageMeans
from ..kernels import torch_threads

NEURONS_PER_TASK = 4  # neurons a thread takes at a time: threads share the work even when one is held up
Pairs = tuple[np.ndarray, np.ndarray]
"""Per-image weights ``(images, resamples)`` of the two sets compared."""


@contextlib.contextmanager
def parallel_chunks(size: int) -> Iterator[None]:
    """Parallel loops hand out ``size`` iterations at a time (not one share per thread), then as before."""
    before = numba.set_parallel_chunksize(size)
    try:
        yield
    finally:
        numba.set_parallel_chunksize(before)


@numba.njit(parallel=True, cache=True, nogil=True, boundscheck=False)
def _weighted_moments_cpu(samples, weights, active, counts, mean, variance):  # pragma: no cover - compiled
    """Per neuron (row of ``samples``, one value per image) and resample: weighted mean and unbiased variance.

    ``weights`` ``(images, resamples)``; ``counts`` the weights' sum per resample (the resample's size).
    """
    neurons, images = samples.shape
    resamples = weights.shape[1]
    for n in numba.prange(neurons):
        values = samples[n]
        sums = np.zeros(resamples)
        for i in range(images):
            if active[i]:
                weight = weights[i]
                for r in range(resamples):
                    sums[r] += weight[r] * values[i]
        centre = sums / counts
        squares = np.zeros(resamples)
        for i in range(images):
            if active[i]:
                weight = weights[i]
                for r in range(resamples):
                    deviation = values[i] - centre[r]
                    squares[r] += weight[r] * deviation * deviation
        for r in range(resamples):
            mean[n, r] = centre[r]
            variance[n, r] = squares[r] / (counts[r] - 1) if counts[r] > 1 else 0.0


def pooled_samples(a: VDNAImageMeans, b: VDNAImageMeans | None, layer: str) -> torch.Tensor:
    parts = [a.data[layer].cpu()] + ([] if b is None else [b.data[layer].cpu()])
    return torch.cat(parts).to(torch.float64)


def weighted_moments(samples: np.ndarray, weights: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """``(neurons, resamples)`` weighted means and variances of ``samples`` ``(neurons, images)``."""
    weights = np.ascontiguousarray(weights, dtype=np.float64)
    mean = np.empty((samples.shape[0], weights.shape[1]))
    variance = np.empty_like(mean)
    with torch_threads(), parallel_chunks(NEURONS_PER_TASK):
        _weighted_moments_cpu(samples, weights, weights.any(axis=1), weights.sum(axis=0), mean, variance)
    return torch.from_numpy(mean), torch.from_numpy(variance)



@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """torch on one thread: small factorisations run fastest so, and give the same rounding on any machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


__all__ = ["NEURONS_PER_TASK", "Pairs", "one_torch_thread", "parallel_chunks", "pooled_samples", "weighted_moments"]
