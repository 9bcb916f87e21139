"""coverage: the share of real k-NN balls that hold at least one fake embedding (Naeem et al. 2020).

Computed as :mod:`~vdna.distances.precision_distance` says (closed balls, k=5 by default, blocks). The
roles are keywords, ``coverage(real=..., fake=...)``; the registered ``compare(a, b)`` takes ``a`` as the
real set and ``b`` as the fake one. Higher is closer.
"""

from __future__ import annotations

from .precision_distance import keyword_part, registered_part

coverage = keyword_part("coverage", "The share of ``real`` embeddings whose k-NN ball holds a ``fake`` embedding", __name__)

DISTANCE = registered_part("coverage", "share of the real set's 5-NN balls of per-image embeddings holding a b image")


__all__ = ["DISTANCE", "coverage"]
