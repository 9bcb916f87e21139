"""fd-infinity: the Fréchet distance extrapolated to infinitely many images (Chong & Forsyth 2020).

FD (FID's formula, :func:`~vdna.distances.fd_distance.frechet_distance`) is biased upward by an amount
that falls as ``1/N`` with the number ``N`` of compared images. As dgm-eval's ``metrics/fd.py`` computes
FD-infinity: the first (real, reference) set's Gaussian is fitted to all its images; the second (fake)
set's to ``points`` (15) subsets of it drawn without replacement (seeded), of sizes evenly spaced from
``min(5000, max(N/10, 2))`` to all ``N`` images; a line is fitted by least squares to FD against ``1/size``
(``np.polyfit``) and its value at ``1/size = 0`` is reported. It can be negative where the line overshoots.
Means and covariances are accumulated block by block in float64; the reference covariance's square root is
taken once.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._embeddings import (
    BLOCK,
    Embeddings,
    check_images,
    embedding_distance,
    embedding_pair,
    mean_and_covariance,
)
from ._resampling import one_torch_thread
from .fd_distance import frechet_distance, psd_sqrt

POINTS = 15
SEED = 0


def subset_sizes(images: int, points: int = POINTS) -> np.ndarray:
    """The subset sizes FD is evaluated at: ``points`` evenly spaced from min(5000, max(images // 10, 2)) to ``images``."""
    return np.linspace(min(5000, max(images // 10, 2)), images, points).astype(np.int64)


def _subset_fd(mean: torch.Tensor, covariance: torch.Tensor, root: torch.Tensor, subset: torch.Tensor, block: int) -> torch.Tensor:
    """FD between the reference Gaussian (``root``: its covariance's square root) and a subset's.

    With fewer images than dimensions, ``tr sqrtm(S1 S2)`` is the sum of the singular values of
    ``R A / sqrt(n - 1)`` (``R`` the subset's centred rows, ``A = sqrtm(S1)``): an ``n x d`` factorisation
    instead of a ``d x d`` one, as :func:`~vdna.distances.fd_distance.resampled_fds` does.
    """
    if subset.shape[0] > subset.shape[1]:
        return frechet_distance(mean, covariance, *mean_and_covariance(subset, block), root1=root)
    rows = subset.to(torch.float64)
    centred = rows - rows.mean(dim=0)
    scale = subset.shape[0] - 1
    cross = torch.linalg.svdvals(centred @ root).sum() / math.sqrt(scale)
    value = (mean - rows.mean(dim=0)).square().sum() + covariance.trace() + centred.square().sum() / scale - 2 * cross
    return value.clamp(min=0)


def fd_infinity_of_embeddings(
    real: torch.Tensor, fake: torch.Tensor, points: int = POINTS, seed: int = SEED, block: int = BLOCK, return_fit: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """FD-infinity of ``(images, dimensions)`` embeddings; with ``return_fit`` also the sizes and their FDs."""
    if isinstance(points, bool) or not isinstance(points, (int, np.integer)) or points < 2:
        raise ValueError(f"points must be an integer of at least 2 (a line needs two), got {points!r}")
    check_images(real, 2, "real", "a covariance")
    check_images(fake, 3, "fake", "FD-infinity (subsets of at least two sizes)")
    mean, covariance = mean_and_covariance(real, block)
    with one_torch_thread():
        root = psd_sqrt(covariance)  # once, for every subset
    sizes = subset_sizes(fake.shape[0], points)
    rng = np.random.default_rng(seed)
    fds = []
    for size in sizes.tolist():
        subset = fake[torch.from_numpy(rng.choice(fake.shape[0], size, replace=False))]
        with one_torch_thread():  # factorisations: fastest on one thread, and the same rounding on any machine
            fds.append(float(_subset_fd(mean, covariance, root, subset, block)))
    fds = np.array(fds)
    _, intercept = np.polyfit(1.0 / sizes, fds, deg=1)
    value = torch.tensor(float(intercept), dtype=torch.float64)
    return (value, sizes, fds) if return_fit else value


def fd_infinity(
    a: Embeddings, b: Embeddings, *, layer: str | None = None, points: int = POINTS, seed: int = SEED, block: int = BLOCK,
) -> torch.Tensor:
    """FD-infinity between the embeddings of ``layer`` (the last by default) of two ``image-mean`` DNAs (or arrays):
    ``a`` the real (reference) set, fitted whole, ``b`` the fake one, subsampled. A 0-d float64 tensor."""
    x, y = embedding_pair(a, b, layer, "fd-infinity", ("real", "fake"))
    return fd_infinity_of_embeddings(x, y, points, seed, block)


DISTANCE = embedding_distance(
    "fd-infinity", "fd-infinity",
    "Fréchet distance of per-image embeddings extrapolated to infinitely many images (a: the reference set, b: subsampled)",
    lambda x, y: fd_infinity(x, y),
    interval="basic",
    least_images=3,
)


__all__ = ["DISTANCE", "POINTS", "fd_infinity", "fd_infinity_of_embeddings", "subset_sizes"]
