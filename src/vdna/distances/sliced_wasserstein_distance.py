"""sliced-wasserstein: the sliced Wasserstein-1 distance of two sets' per-image embeddings.

The mean, over ``directions`` random unit directions (seeded, 1000 by default), of the 1-D Wasserstein-1
distance between the two sets' projections on the direction, ``integral |F_a(t) - F_b(t)| dt`` of their
empirical distribution functions (``scipy.stats.wasserstein_distance``'s W1), so sets of any two sizes
compare. It is the sliced counterpart of DNA-EMD, which averages the same 1-D W1 over the neurons, that is
over the axis-aligned directions (and of histograms, not of the exact values): here the directions mix
the neurons of a layer. W1, not W2, so that it sits beside DNA-EMD in the same units as the embeddings
(a projection's units). Projections are made block by block in float64.
"""

from __future__ import annotations

import numpy as np
import torch

from ._embeddings import BLOCK, Embeddings, embedding_distance, embedding_pair

DIRECTIONS = 1000
SEED = 0
_VALUES_AT_ONCE = 2**22  # projected values sorted at a time (32 MiB of float64)


def random_directions(dimensions: int, directions: int = DIRECTIONS, seed: int = SEED) -> torch.Tensor:
    """``(dimensions, directions)`` float64 unit vectors, uniform on the sphere, from ``seed``."""
    if isinstance(directions, bool) or not isinstance(directions, (int, np.integer)) or directions < 1:
        raise ValueError(f"directions must be a positive integer, got {directions!r}")
    generator = torch.Generator().manual_seed(seed)
    vectors = torch.randn((dimensions, directions), generator=generator, dtype=torch.float64)
    return vectors / vectors.norm(dim=0, keepdim=True)


def wasserstein_1d(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """W1 of the empirical distributions of the columns of ``u`` ``(n, k)`` and ``v`` ``(m, k)``: ``(k,)`` float64."""
    u, v = u.T.contiguous().sort(dim=1).values, v.T.contiguous().sort(dim=1).values
    both = torch.cat([u, v], dim=1).sort(dim=1).values
    points = both[:, :-1].contiguous()
    below_u = torch.searchsorted(u, points, right=True).to(torch.float64) / u.shape[1]
    below_v = torch.searchsorted(v, points, right=True).to(torch.float64) / v.shape[1]
    return ((below_u - below_v).abs() * both.diff(dim=1)).sum(dim=1)


def _projected(x: torch.Tensor, directions: torch.Tensor, block: int) -> torch.Tensor:
    return torch.cat([rows.to(torch.float64) @ directions for rows in x.split(block)])


def sliced_wasserstein_of_embeddings(
    x: torch.Tensor, y: torch.Tensor, directions: int = DIRECTIONS, seed: int = SEED, block: int = BLOCK, return_all: bool = False,
) -> torch.Tensor:
    """Sliced W1 of ``(images, dimensions)`` embeddings (a 0-d float64 tensor; ``return_all``: one per direction)."""
    if x.shape[0] < 1 or y.shape[0] < 1:
        raise ValueError("the sliced Wasserstein distance needs at least one image in each set")
    vectors = random_directions(x.shape[1], directions, seed)
    at_once = max(1, _VALUES_AT_ONCE // (x.shape[0] + y.shape[0]))
    values = torch.cat([
        wasserstein_1d(_projected(x, part, block), _projected(y, part, block)) for part in vectors.split(at_once, dim=1)
    ])
    return values if return_all else values.mean()


def sliced_wasserstein(
    a: Embeddings, b: Embeddings, *, layer: str | None = None, directions: int = DIRECTIONS, seed: int = SEED, block: int = BLOCK,
) -> torch.Tensor:
    """Sliced W1 between the embeddings of ``layer`` (the last by default) of two ``image-mean`` DNAs (or arrays)."""
    x, y = embedding_pair(a, b, layer, "sliced-wasserstein")
    return sliced_wasserstein_of_embeddings(x, y, directions, seed, block)


DISTANCE = embedding_distance(
    "sliced-wasserstein", "sliced-w1",
    "mean over 1000 random directions of the 1-D Wasserstein-1 distance of the projected per-image embeddings",
    lambda x, y: sliced_wasserstein(x, y),
    interval="squared",  # a first-power distance, as DNA-EMD: sampling noise adds in quadrature
)


__all__ = ["DIRECTIONS", "DISTANCE", "random_directions", "sliced_wasserstein", "sliced_wasserstein_of_embeddings",
           "wasserstein_1d"]
