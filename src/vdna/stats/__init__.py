"""How sure is a distance between two image sets? Bootstrap intervals, noise floor, permutation test, layer shares.

A distance between finite image sets mixes the difference between their sources with sampling
noise: two halves of one dataset are not at distance 0. From per-image DNAs (``image-histogram-B``
for EMD, ``image-mean`` for NFD and FD) the DNA of any resample of the images follows exactly,
without running the network again, so :func:`compare_sets` reports, besides the distance, its
estimate (the distance between the sources with sampling noise removed, by the same model as its
interval), a 95% interval for it, the noise floor, a permutation p-value and each layer's part. The package is split by job:

- :mod:`~vdna.stats._intervals`: bootstrap intervals and estimates (:func:`bootstrap_interval`, :func:`bootstrap_estimate`);
- :mod:`~vdna.stats._results`: what a comparison gives (:class:`SetComparison`, :class:`LayerShare`)
  and how it reads, for the command line and the report alike (:func:`statistics`, :func:`layer_columns`);
- :mod:`~vdna.stats._comparison`: :func:`compare_sets`, :func:`layer_shares`,
  :func:`resampled_distances`, :func:`set_dna`;
- :mod:`~vdna.stats._noise_floor`: the noise floor beside a sample-size curve (:func:`noise_floor_curve`).

How each distance is resampled, and which interval removes its noise, is part of its record
(:mod:`vdna.distances`): the statistics work for every registered distance that has per-image DNAs.
"""

from ._comparison import check_memory, compare_sets, layer_shares, resampled_distances, set_dna
from ._intervals import CONFIDENCE, INTERVAL_METHODS, bootstrap_estimate, bootstrap_interval, unit_estimates
from ._noise_floor import noise_floor_curve, noise_floor_limits
from ._results import (
    ESTIMATES,
    Cell,
    LayerShare,
    SetComparison,
    Statistic,
    UnitAboveNoise,
    UnitStatistics,
    layer_columns,
    layer_table,
    statistics,
)

__all__ = [
    "CONFIDENCE",
    "ESTIMATES",
    "INTERVAL_METHODS",
    "Cell",
    "LayerShare",
    "SetComparison",
    "Statistic",
    "UnitAboveNoise",
    "UnitStatistics",
    "bootstrap_estimate",
    "bootstrap_interval",
    "check_memory",
    "compare_sets",
    "layer_columns",
    "layer_shares",
    "layer_table",
    "noise_floor_curve",
    "noise_floor_limits",
    "resampled_distances",
    "set_dna",
    "statistics",
    "unit_estimates",
]
