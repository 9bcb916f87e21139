"""vendi: the Vendi score (Friedman & Dieng 2023) of a set's per-image embeddings, and the gap between two sets'.

The Vendi score of order ``q`` is the exponential of the Rényi entropy of order ``q`` of the eigenvalues of
``K / n``, ``K`` the cosine-similarity kernel of the ``n`` embeddings (each normalised to unit length; a
zero embedding stays zero), as ``vendi_score.vendi.score_dual`` computes it: an effective number of
distinct images, from 1 (all alike) to ``n``. When there are more images than dimensions the ``d x d``
matrix ``X^T X / n`` (accumulated block by block) has the same non-zero eigenvalues and is used instead.
``q=1`` (the default) is Shannon's entropy, ``q=inf`` gives ``1 / max eigenvalue``.

:func:`vendi_score` gives one set's score. As a registered distance between two sets, ``vendi`` is the
absolute difference of their Vendi scores: how much more, or less, diverse one set is than the other, not
whether they hold the same images (two disjoint sets of equal diversity are at 0).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._embeddings import BLOCK, Embeddings, check_images, embedding_distance, embedding_pair, embeddings
from ._resampling import one_torch_thread


def _order(q: float | str) -> float:
    if q == "inf":
        return math.inf
    if isinstance(q, bool) or not isinstance(q, (int, float, np.integer, np.floating)) or not q >= 0:
        raise ValueError(f"q must be a non-negative order (or inf), got {q!r}")
    return float(q)


def vendi_of_embeddings(x: torch.Tensor, q: float = 1, block: int = BLOCK) -> torch.Tensor:
    """The Vendi score of order ``q`` of ``(images, dimensions)`` embeddings, a 0-d float64 tensor."""
    order = _order(q)
    check_images(x, 1, "given", "the Vendi score")
    n, d = x.shape
    if n <= d:  # n x n: the images' similarities
        unit = torch.cat([_unit(part.to(torch.float64)) for part in x.split(block)])
        gram = unit @ unit.T
    else:  # d x d: the dual form, block by block
        gram = torch.zeros((d, d), dtype=torch.float64)
        for part in x.split(block):
            unit = _unit(part.to(torch.float64))
            gram += unit.T @ unit
    with one_torch_thread():  # a factorisation: fastest on one thread, and the same rounding on any machine
        values = torch.linalg.eigvalsh(gram / n)
    return torch.exp(_entropy(values, order))


def _unit(rows: torch.Tensor) -> torch.Tensor:
    norms = rows.norm(dim=1, keepdim=True)
    return rows / torch.where(norms == 0, torch.ones_like(norms), norms)


def _entropy(values: torch.Tensor, order: float) -> torch.Tensor:
    """Rényi entropy of order ``order`` of eigenvalues (those not positive, round-off, left out)."""
    p = values[values > 0]
    if order == 1:
        return -(p * p.log()).sum()
    if math.isinf(order):
        return -values.max().log()
    return (p**order).sum().log() / (1 - order)


def vendi_score(dna: Embeddings, q: float = 1, *, layer: str | None = None, block: int = BLOCK) -> torch.Tensor:
    """The Vendi score of order ``q`` of the embeddings of ``layer`` (the last by default) of an ``image-mean``
    DNA (or of an array), a 0-d float64 tensor."""
    return vendi_of_embeddings(embeddings(dna, layer, "given", "the Vendi score"), q, block)


def vendi_gap(a: Embeddings, b: Embeddings, *, q: float = 1, layer: str | None = None, block: int = BLOCK) -> torch.Tensor:
    """``|vendi_score(a) - vendi_score(b)|``: what the registered ``vendi`` distance gives of one layer."""
    x, y = embedding_pair(a, b, layer, "vendi")
    return (vendi_of_embeddings(x, q, block) - vendi_of_embeddings(y, q, block)).abs()


DISTANCE = embedding_distance(
    "vendi", "vendi-gap",
    "absolute difference of the two sets' Vendi scores (order 1, cosine similarity of per-image embeddings)",
    lambda x, y: vendi_gap(x, y),
    interval="basic",
)


__all__ = ["DISTANCE", "vendi_gap", "vendi_of_embeddings", "vendi_score"]
