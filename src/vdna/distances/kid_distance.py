"""kid: the Kernel Inception Distance (Binkowski et al. 2018) of one layer's per-image embeddings.

The squared MMD under the cubic polynomial kernel ``k(x, y) = (x.y / d + 1)^3`` (``d`` the embeddings'
dimension), unbiased estimator, averaged over ``subsets`` random subsets of ``subset_size`` images of
each set (100 of min(1000, images) by default), as torch-fidelity's ``metric_kid.py`` defines it:
each subset's images are drawn without replacement by ``numpy.random.RandomState(seed).choice``, the
first set's then the second's, so that with the same seed (torch-fidelity's default is 2020, ours too)
the subsets, and the values, are torch-fidelity's. The spread it reports is the standard deviation
over subsets (``np.std``, ddof 0). KID on Inception's pool3 embeddings is the field's KID; here it is
computed on any layer of any extractor. Identical sets are not at 0: the unbiased estimate of each
subset pair is an estimate of 0, not 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ._embeddings import BLOCK, Embeddings, check_images, embedding_distance, embedding_pair, mmd2
from ._resampling import one_torch_thread

SUBSETS = 100
SUBSET_SIZE = 1000
SEED = 2020
_BATCH_VALUES = 2**23  # kernel values of a batch of subsets held at once (64 MiB of float64)


def polynomial_kernel(products: torch.Tensor, x_norms: torch.Tensor, y_norms: torch.Tensor, dimensions: int) -> torch.Tensor:
    """``(x.y / d + 1)^3``."""
    return (products / dimensions + 1) ** 3


def _batched_mmd2(x: torch.Tensor, y: torch.Tensor, draws: list[tuple[np.ndarray, np.ndarray]]) -> torch.Tensor:
    """Unbiased squared MMD of each drawn pair of subsets (equal sizes), all in one batch of products."""
    first = x[torch.from_numpy(np.stack([pair[0] for pair in draws]))].to(torch.float64)
    second = y[torch.from_numpy(np.stack([pair[1] for pair in draws]))].to(torch.float64)
    dimensions, size = x.shape[1], first.shape[1]

    def kernel(p, q):
        return polynomial_kernel(p @ q.mT, None, None, dimensions)

    def off_diagonal(k):
        return k.sum(dim=(1, 2)) - k.diagonal(dim1=1, dim2=2).sum(dim=1)

    within = (off_diagonal(kernel(first, first)) + off_diagonal(kernel(second, second))) / (size * (size - 1))
    return within - 2 * kernel(first, second).sum(dim=(1, 2)) / (size * size)


@dataclass(frozen=True)
class KID:
    """KID of two sets: the ``mean`` over subsets, their standard deviation ``std``, and each subset's ``values``."""

    mean: float
    std: float
    values: tuple[float, ...]


def kid_of_embeddings(
    x: torch.Tensor, y: torch.Tensor, subsets: int = SUBSETS, subset_size: int | None = None, seed: int = SEED, block: int = BLOCK,
) -> KID:
    """KID of two ``(images, dimensions)`` arrays (see the module's note); ``subset_size`` None: min(1000, images)."""
    if isinstance(subsets, bool) or not isinstance(subsets, (int, np.integer)) or subsets < 1:
        raise ValueError(f"subsets must be a positive integer, got {subsets!r}")
    size = min(SUBSET_SIZE, x.shape[0], y.shape[0]) if subset_size is None else subset_size
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 2:
        raise ValueError(f"KID's subsets need at least 2 images each, got subset_size={size!r}")
    for position, matrix in (("first", x), ("second", y)):
        check_images(matrix, size, position, f"KID with subsets of {size} images")
    rng = np.random.RandomState(seed)
    draws = [(rng.choice(x.shape[0], size, replace=False), rng.choice(y.shape[0], size, replace=False)) for _ in range(subsets)]
    at_once = max(1, _BATCH_VALUES // (size * size)) if size <= block else 0
    values: list[float] = []
    if max(x.shape[0], y.shape[0]) <= block:  # each set's kernel values once, every subset's sums read from them
        return _kid_of(_subset_values(x, y, draws))
    with one_torch_thread():  # many small products: fastest on one thread, and the same rounding on any machine
        if at_once:
            for start in range(0, subsets, at_once):
                values += _batched_mmd2(x, y, draws[start : start + at_once]).tolist()
        else:  # subsets larger than a block: each one's kernel sums block by block
            dimensions = x.shape[1]
            for first, second in draws:
                values.append(float(mmd2(x[torch.from_numpy(first)], y[torch.from_numpy(second)],
                                          lambda p, _, __: polynomial_kernel(p, _, __, dimensions), "unbiased", block)))
    return _kid_of(values)


def _kid_of(values: list[float]) -> KID:
    return KID(float(np.mean(values)), float(np.std(values)), tuple(values))


def _subset_values(x: torch.Tensor, y: torch.Tensor, draws: list[tuple[np.ndarray, np.ndarray]]) -> list[float]:
    """Unbiased squared MMD of each drawn pair of subsets, from the kernel matrices of the whole sets (one block each)."""
    x, y = x.to(torch.float64), y.to(torch.float64)
    dimensions = x.shape[1]
    within_x, within_y, across = (polynomial_kernel(p @ q.T, None, None, dimensions) for p, q in ((x, x), (y, y), (x, y)))
    values = []
    for first, second in draws:
        first, second = torch.from_numpy(first), torch.from_numpy(second)
        size = first.numel()
        own = within_x[first][:, first], within_y[second][:, second]
        pairs = sum(kernel.sum() - kernel.diagonal().sum() for kernel in own) / (size * (size - 1))
        values.append(float(pairs - 2 * across[first][:, second].sum() / (size * size)))
    return values


def kid(
    a: Embeddings,
    b: Embeddings,
    *,
    layer: str | None = None,
    subsets: int = SUBSETS,
    subset_size: int | None = None,
    seed: int = SEED,
    return_std: bool = False,
    block: int = BLOCK,
) -> torch.Tensor | KID:
    """KID between the embeddings of ``layer`` (the last by default) of two ``image-mean`` DNAs (or two arrays).

    A 0-d float64 tensor, the mean over subsets; with ``return_std``, the :class:`KID` (mean, std, values).
    """
    x, y = embedding_pair(a, b, layer, "kid")
    result = kid_of_embeddings(x, y, subsets, subset_size, seed, block)
    return result if return_std else torch.tensor(result.mean, dtype=torch.float64)


DISTANCE = embedding_distance(
    "kid", "kid",
    "Kernel Inception Distance: unbiased squared MMD of the per-image embeddings under a cubic polynomial kernel, "
    "mean over 100 subsets",
    lambda x, y: kid(x, y),
    interval="basic",  # an unbiased squared distance: sampling noise adds linearly
    least_images=2,
)


__all__ = ["DISTANCE", "KID", "kid", "kid_of_embeddings", "polynomial_kernel"]
