"""mmd-rbf: the squared MMD of one layer's per-image embeddings under a Gaussian RBF kernel (CMMD's formula).

``k(x, y) = exp(-||x - y||^2 / (2 sigma^2))``; the ``"biased"`` estimator (every pair, as CMMD computes it,
``mean Kxx + mean Kyy - 2 mean Kxy``) or the ``"unbiased"`` one (each set's pairs of an embedding with itself
left out); times ``scale``. The defaults, ``sigma=10`` and ``scale=1000`` with the biased estimator, are
CMMD's (Jayasumana et al. 2024), which is this on CLIP image embeddings; here on any layer. Kernel sums are
taken block by block in float64, so large sets never form an ``images x images`` matrix. Identical sets
are at exactly 0 with the biased estimator; the unbiased one estimates 0 and is not 0 on them.
"""

from __future__ import annotations

import torch

from ._embeddings import BLOCK, Embeddings, check_images, embedding_distance, embedding_pair, mmd2

SIGMA = 10.0
SCALE = 1000.0


def mmd_rbf_of_embeddings(
    x: torch.Tensor, y: torch.Tensor, sigma: float = SIGMA, scale: float = SCALE, estimator: str = "biased", block: int = BLOCK,
) -> torch.Tensor:
    """``scale`` times the squared RBF MMD of two ``(images, dimensions)`` arrays, a 0-d float64 tensor."""
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}")
    smallest = 2 if estimator == "unbiased" else 1
    for position, matrix in (("first", x), ("second", y)):
        check_images(matrix, smallest, position, f"the {estimator} MMD estimator")
    gamma = 1.0 / (2.0 * sigma * sigma)

    def kernel(products, x_norms, y_norms):
        return torch.exp(-gamma * (x_norms + y_norms - 2 * products).clamp(min=0))

    return scale * mmd2(x, y, kernel, estimator, block)


def mmd_rbf(
    a: Embeddings,
    b: Embeddings,
    *,
    layer: str | None = None,
    sigma: float = SIGMA,
    scale: float = SCALE,
    estimator: str = "biased",
    block: int = BLOCK,
) -> torch.Tensor:
    """Squared RBF MMD (times ``scale``) between the embeddings of ``layer`` (the last by default) of two
    ``image-mean`` DNAs (or two arrays); CMMD's formula with the defaults."""
    x, y = embedding_pair(a, b, layer, "mmd-rbf")
    return mmd_rbf_of_embeddings(x, y, sigma, scale, estimator, block)


DISTANCE = embedding_distance(
    "mmd-rbf", "mmd-rbf",
    "squared MMD of the per-image embeddings under a Gaussian RBF kernel (sigma 10, times 1000: CMMD's formula)",
    lambda x, y: mmd_rbf(x, y),
    interval="basic",  # a squared distance: sampling noise adds linearly
)


__all__ = ["DISTANCE", "SCALE", "SIGMA", "mmd_rbf", "mmd_rbf_of_embeddings"]
