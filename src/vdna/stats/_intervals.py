"""Bootstrap intervals for the distance between two sources, sampling noise removed.

A distance between finite image sets is biased upward (noise adds distance), and a bootstrap
resample, a sample of the sample, adds about as much noise again; so the plain percentile interval
of the bootstrap distances lies above the value and misses. The basic (reverse-percentile)
interval ``(2 v - q_97.5, 2 v - q_2.5)`` reflects them about the value, which removes the bias
where the noise adds up linearly (a sum of squared differences such as NFD). Where noise adds in
quadrature (``d**2 ~ true**2 + noise**2``, a first-power distance such as EMD), the basic interval
of the squared distance, ``sqrt(2 v**2 - q(d*^2))``, does. Each distance's record names the one it
uses (:attr:`vdna.distances.Distance.interval`).

The same construction at the median of the replicates gives the **estimate** of the distance between
the sources (:func:`bootstrap_estimate`), so the estimate always lies inside the interval.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CONFIDENCE = 0.95
INTERVAL_METHODS = ("squared", "basic", "percentile")


def _checked(replicates: Sequence[float] | np.ndarray, method: str, ndim: int = 1) -> np.ndarray:
    if method not in INTERVAL_METHODS:
        raise ValueError(f"method must be one of {INTERVAL_METHODS}, got {method!r}")
    values = np.asarray(replicates, dtype=np.float64)
    if values.ndim != ndim or values.shape[-1] == 0 or not np.isfinite(values).all():
        shape = "a non-empty 1-D sequence" if ndim == 1 else "a (units, resamples) array"
        raise ValueError(f"replicates must be {shape} of finite distances")
    return values


def _noise_removed(value: float | np.ndarray, replicates: np.ndarray, levels: Sequence[float], method: str) -> np.ndarray:
    """The distance between the sources that each quantile ``levels`` of the ``replicates`` (along their last
    axis) stands for, ``(levels, ...)``: ``"squared"``: ``sqrt(max(0, 2 v**2 - q(d*^2)))``; ``"basic"``:
    ``max(0, 2 v - q(d*))``; ``"percentile"``: ``q(d*)``. The first two decrease as the quantile grows."""
    value = np.asarray(value, dtype=np.float64)
    if method == "percentile":
        return np.quantile(replicates, levels, axis=-1)
    if method == "basic":
        return np.maximum(0.0, 2 * value - np.quantile(replicates, levels, axis=-1))
    return np.sqrt(np.maximum(0.0, 2 * value**2 - np.quantile(replicates**2, levels, axis=-1)))


def bootstrap_interval(
    value: float, replicates: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE, method: str = "squared"
) -> tuple[float, float]:
    """A ``confidence`` interval for the distance between two sources from its bootstrap ``replicates``.

    With ``q_low``, ``q_high`` the quantiles of the replicates ``d*`` and ``v`` the value:
    ``"squared"`` (the default): the basic interval of the squared distance, ``sqrt(2 v**2 - q_high(d*^2))``
    to ``sqrt(2 v**2 - q_low(d*^2))`` (each clamped at 0); ``"basic"`` (reverse percentile):
    ``(2 v - q_high, 2 v - q_low)``, clamped at 0; ``"percentile"``: ``(q_low, q_high)``.
    """
    values = _checked(replicates, method)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    low, high = sorted(float(end) for end in _noise_removed(value, values, [(1 - confidence) / 2, (1 + confidence) / 2], method))
    return low, high


def bootstrap_estimate(value: float, replicates: Sequence[float] | np.ndarray, method: str = "squared") -> float:
    """The distance between two sources, sampling noise removed as :func:`bootstrap_interval` removes it.

    The interval's construction at the median of the replicates ``d*``: ``"squared"``:
    ``sqrt(max(0, 2 v**2 - median(d*^2)))``; ``"basic"``: ``max(0, 2 v - median(d*))``;
    ``"percentile"``: ``median(d*)``. The median lies between any two quantiles around it, so the
    estimate lies in every interval of the same replicates.
    """
    return float(_noise_removed(value, _checked(replicates, method), [0.5], method)[0])


def unit_estimates(values: np.ndarray, replicates: np.ndarray, method: str = "squared") -> np.ndarray:
    """:func:`bootstrap_estimate` of many units at once: ``values`` ``(units,)``, ``replicates`` ``(units, resamples)``."""
    return _noise_removed(values, _checked(replicates, method, ndim=2), [0.5], method)[0]


__all__ = ["CONFIDENCE", "INTERVAL_METHODS", "bootstrap_estimate", "bootstrap_interval", "unit_estimates"]
