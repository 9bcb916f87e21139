"""density: how many real k-NN balls hold each fake embedding, over k, averaged (Naeem et al. 2020).

Computed as :mod:`~vdna.distances.precision_distance` says (k=5 by default, blocks; a ball holds an
embedding strictly inside it or at its centre, so identical sets give exactly 1); not bounded by 1: above
1 where the fake set crowds into dense parts of the real one. The roles are keywords, ``density(real=...,
fake=...)``; the registered ``compare(a, b)`` takes ``a`` as the real set and ``b`` as the fake one.
"""

from __future__ import annotations

from .precision_distance import keyword_part, registered_part

density = keyword_part("density", "The real k-NN balls holding each ``fake`` embedding, over ``k``, averaged over the fake ones", __name__)

DISTANCE = registered_part("density", "real 5-NN balls of per-image embeddings holding each b image, over 5, averaged")


__all__ = ["DISTANCE", "density"]
