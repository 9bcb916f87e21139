"""recall: the share of real embeddings inside the fake set's k-NN manifold (Kynkäänniemi et al. 2019).

Computed as :mod:`~vdna.distances.precision_distance` says (closed balls, k=5 by default, blocks); the
roles are keywords, ``recall(real=..., fake=...)``; the registered ``compare(a, b)`` takes ``a`` as the
real set and ``b`` as the fake one. Higher is closer.
"""

from __future__ import annotations

from .precision_distance import keyword_part, registered_part

recall = keyword_part("recall", "The share of ``real`` embeddings inside the k-NN balls of the ``fake`` ones", __name__)

DISTANCE = registered_part("recall", "share of the real images inside the b set's 5-NN balls of per-image embeddings")


__all__ = ["DISTANCE", "recall"]
