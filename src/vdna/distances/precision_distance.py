"""precision: the share of fake embeddings inside the real set's k-NN manifold (Kynkäänniemi et al. 2019).

Each real embedding's ball reaches its k-th nearest other real embedding (k=5 by default, as the
``prdc`` package; Kynkäänniemi et al. and torch-fidelity use k=3); precision is the share of fake
embeddings inside at least one real ball, recall (:mod:`~vdna.distances.recall_distance`) the share of
real embeddings inside at least one fake ball, density and coverage (Naeem et al. 2020) count the real
balls holding each fake embedding and the real balls holding one. This module also gives all four at
once (:func:`prdc`, one pass) and the per-sample realism score (:func:`realism_scores`).

The two sets play different roles, so the functions take them as keywords only, ``precision(real=...,
fake=...)``; the registered distance's ``compare(a, b)`` takes ``a`` as the real (reference) set and
``b`` as the fake (generated, or compared) one. Higher is closer.

Distances are computed in blocks (:mod:`vdna.distances._embeddings`), float64, so 50,000 x 50,000
pairs never form one matrix. Balls are closed (``d <= r``, as Kynkäänniemi et al. and torch-fidelity;
the ``prdc`` package uses ``d < r``), and a squared distance within float64 rounding of 0 is 0, so
duplicates are at distance 0: identical sets give precision = recall = coverage = 1. Density counts a
ball when the fake embedding is strictly inside it or at its centre (``d < r`` or ``d == 0``), so that
identical sets of distinct embeddings give exactly 1 (with closed balls each real ball would also hold
its k-th neighbour's copy: (k+1)/k). The ``prdc`` package's strict ``d < r`` makes a ball of radius 0
(an embedding with k duplicates) empty, so a set of identical embeddings compared with itself gets
precision, recall, density and coverage 0; here precision, recall and coverage are 1 and density counts
every coinciding ball (images / k).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ._embeddings import (
    BLOCK,
    Embeddings,
    check_k,
    embedding_distance,
    embedding_pair,
    knn_radii,
    neighbourhoods,
    realism,
)

K = 5
PARTS = ("precision", "recall", "density", "coverage")


@dataclass(frozen=True)
class PRDC:
    """Precision, recall, density and coverage of a fake set against a real one (None: not computed)."""

    precision: float | None
    recall: float | None
    density: float | None
    coverage: float | None


def prdc_of_embeddings(
    real: torch.Tensor, fake: torch.Tensor, k: int = K, parts: tuple[str, ...] = PARTS, block: int = BLOCK,
) -> PRDC:
    """The ``parts`` asked of ``(images, dimensions)`` real and fake embeddings: one pass over their pairs."""
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        raise ValueError(f"parts must name some of {', '.join(PARTS)}, got {list(parts)}")
    k = check_k(k, {"real": real.shape[0], "fake": fake.shape[0]})
    needs_real = bool({"precision", "density", "coverage"} & set(parts))
    real_radii = knn_radii(real, k, block) if needs_real else None
    fake_radii = knn_radii(fake, k, block) if "recall" in parts else None
    found = neighbourhoods(real, fake, real_radii, fake_radii, block)
    values = {
        "precision": lambda: (found.fake_in_real > 0).double().mean(),
        "recall": lambda: found.real_in_fake.double().mean(),
        "density": lambda: found.fake_density.double().sum() / (k * fake.shape[0]),
        "coverage": lambda: (found.real_nearest <= real_radii).double().mean(),
    }
    return PRDC(**{part: float(values[part]()) if part in parts else None for part in PARTS})


def prdc(*, real: Embeddings, fake: Embeddings, k: int = K, layer: str | None = None, block: int = BLOCK) -> PRDC:
    """Precision, recall, density and coverage of ``fake`` against ``real`` (``image-mean`` DNAs, ``layer`` the
    last by default, or arrays), in one pass over their pairs."""
    x, y = embedding_pair(real, fake, layer, "prdc", ("real", "fake"))
    return prdc_of_embeddings(x, y, k, PARTS, block)


def one_part(part: str, real: Embeddings, fake: Embeddings, k: int, layer: str | None, block: int) -> torch.Tensor:
    """One of precision, recall, density, coverage as a 0-d float64 tensor, computing only what it needs."""
    x, y = embedding_pair(real, fake, layer, part, ("real", "fake"))
    return torch.tensor(getattr(prdc_of_embeddings(x, y, k, (part,), block), part), dtype=torch.float64)


def keyword_part(part: str, summary: str, module: str) -> Callable[..., torch.Tensor]:
    """``part(*, real, fake, k=5, layer=None, block=BLOCK)``: one of the four, a 0-d float64 tensor; the sets
    are keywords only, so they cannot be swapped silently."""

    def function(*, real: Embeddings, fake: Embeddings, k: int = K, layer: str | None = None, block: int = BLOCK) -> torch.Tensor:
        return one_part(part, real, fake, k, layer, block)

    function.__name__ = function.__qualname__ = part
    function.__module__ = module
    function.__doc__ = f"{summary} (keywords only; ``real`` and ``fake``: ``image-mean`` DNAs, ``layer`` the last by default, or arrays)."
    return function


precision = keyword_part("precision", "The share of ``fake`` embeddings inside the k-NN balls of the ``real`` ones", __name__)


def realism_scores(
    *, real: Embeddings, fake: Embeddings, k: int = 3, layer: str | None = None, pruned: float = 0.5, block: int = BLOCK,
) -> torch.Tensor:
    """Each fake embedding's realism score (Kynkäänniemi et al. 2019): ``max_i r_i / ||fake - real_i||`` over the
    real embeddings ``i`` with the smallest k-NN radii ``r_i`` (the ``pruned`` share with the largest left out, half
    as in the paper); above 1 inside some ball. Infinite for a fake embedding equal to a real one."""
    x, y = embedding_pair(real, fake, layer, "realism", ("real", "fake"))
    k = check_k(k, {"real": x.shape[0]})
    if not 0 <= pruned < 1:
        raise ValueError(f"pruned must lie in [0, 1), the share of real balls left out, got {pruned!r}")
    radii = knn_radii(x, k, block)
    kept = radii.argsort(stable=True)[: max(1, round(x.shape[0] * (1 - pruned)))]
    return realism(x[kept], y, radii[kept], block)


def registered_part(part: str, description: str):
    """The record of one of precision, recall, density, coverage: ``compare(a, b)``, ``a`` real and ``b`` fake."""
    return embedding_distance(
        part, part, description + " (a: the real set, b: the fake one; higher is closer)",
        lambda x, y: one_part(part, x, y, K, None, BLOCK),
        lower_is_closer=False,
        interval="percentile",  # a share, not a distance with noise added to it
        least_images=K + 1,  # the k-th nearest other image
    )


DISTANCE = registered_part("precision", "share of the b images inside the real set's 5-NN balls of per-image embeddings")


__all__ = [
    "DISTANCE",
    "PARTS",
    "PRDC",
    "K",
    "one_part",
    "prdc",
    "prdc_of_embeddings",
    "precision",
    "realism_scores",
    "registered_part",
]
