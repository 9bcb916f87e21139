"""Bootstrap intervals for the distance between two sources, sampling noise removed.

A distance between finite image sets is biased upward (noise adds distance), and a bootstrap
resample, a sample of the sample, adds about as much noise again; so the plain percentile interval
of the bootstrap distances lies above the value and misses. The basic (reverse-percentile)
interval ``(2 v - q_97.5, 2 v - q_2.5)`` reflects them about the value, which removes the bias
where the noise adds up linearly (a sum of squared differences such as NFD). Where noise adds in
quadrature (``d**2 ~ true**2 + noise**2``, a first-power distance such as EMD), the basic interval
of the squared distance, ``sqrt(2 v**2 - q(d*^2))``, does. Each distance's record names the one it
uses (:attr:`vdna.distances.Distance.interval`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

CONFIDENCE = 0.95
INTERVAL_METHODS = ("squared", "basic", "percentile")


def bootstrap_interval(
    value: float, replicates: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE, method: str = "squared"
) -> tuple[float, float]:
    """A ``confidence`` interval for the distance between two sources from its bootstrap ``replicates``.

    With ``q_low``, ``q_high`` the quantiles of the replicates ``d*`` and ``v`` the value:
    ``"squared"`` (the default): the basic interval of the squared distance, ``sqrt(2 v**2 - q_high(d*^2))``
    to ``sqrt(2 v**2 - q_low(d*^2))`` (each clamped at 0); ``"basic"`` (reverse percentile):
    ``(2 v - q_high, 2 v - q_low)``, clamped at 0; ``"percentile"``: ``(q_low, q_high)``.
    """
    if method not in INTERVAL_METHODS:
        raise ValueError(f"method must be one of {INTERVAL_METHODS}, got {method!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    values = np.asarray(replicates, dtype=np.float64)
    if values.ndim != 1 or values.size == 0 or not np.isfinite(values).all():
        raise ValueError("replicates must be a non-empty 1-D sequence of finite distances")
    levels = [(1 - confidence) / 2, (1 + confidence) / 2]
    if method == "percentile":
        low, high = np.quantile(values, levels)
        return float(low), float(high)
    if method == "basic":
        low, high = np.quantile(values, levels)
        return max(0.0, 2 * value - float(high)), max(0.0, 2 * value - float(low))
    low, high = np.quantile(values**2, levels)
    return math.sqrt(max(0.0, 2 * value**2 - float(high))), math.sqrt(max(0.0, 2 * value**2 - float(low)))


__all__ = ["CONFIDENCE", "INTERVAL_METHODS", "bootstrap_interval"]
