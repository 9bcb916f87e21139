"""What a comparison of two image sets gives, and how it reads: one formatter for the command line and the report."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from ._intervals import CONFIDENCE

ESTIMATES = {
    "squared": "sqrt(2 value^2 - median of the resamples' squares)",
    "basic": "2 value - median of the resamples",
    "percentile": "median of the resamples",
}
"""How each interval method removes sampling noise from the value, in words (:func:`bootstrap_estimate`)."""


@dataclass(frozen=True)
class LayerShare:
    """One layer's part of a distance: its value and its share of the total, with its statistics when measured.

    ``value``: the layer's distance (mean over its selected neurons; for fd the layer's FD).
    ``share``: the layer's weighted part of the total over the total (the shares add up to 1).
    ``ci``, ``noise_floor``, ``noise_floor_spread``, ``p_value``, ``estimate``: as in
    :class:`SetComparison`, from :func:`compare_sets`; None from :func:`layer_shares` (full sets
    only, nothing resampled).
    """

    neurons: int
    value: float
    share: float
    ci: tuple[float, float] | None = None
    noise_floor: float | None = None
    noise_floor_spread: float | None = None
    p_value: float | None = None
    estimate: float | None = None

    @property
    def excess(self) -> float | None:
        """Deprecated: the :attr:`estimate` (formerly the value less the noise floor)."""
        _deprecated_excess()
        return self.estimate

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        out = {**asdict(self), "ci": None if self.ci is None else list(self.ci)}
        return {key: out[key] for key in ("neurons", "value", "estimate", "share", "ci", "noise_floor", "noise_floor_spread",
                                          "p_value")}


def _deprecated_excess() -> None:
    warnings.warn("excess is deprecated: use estimate, the distance with sampling noise removed as its interval removes "
                  "it (excess was the value less the noise floor)", DeprecationWarning, stacklevel=3)


@dataclass(frozen=True, eq=False)
class UnitStatistics:
    """One layer's compared units (neurons, or the layer itself) against their own noise: arrays, one value per unit.

    ``value``: each unit's distance between the full sets; ``estimate``: sampling noise removed by
    the distance's interval method (:func:`bootstrap_estimate` of the unit's own resamples);
    ``noise_floor``: the unit's mean distance over the random splits of the pooled images.
    ``indices``: the units' neuron indices in the layer.
    """

    indices: np.ndarray
    value: np.ndarray
    estimate: np.ndarray
    noise_floor: np.ndarray

    def above_noise(self) -> np.ndarray:
        """Each unit's estimate over its noise floor (0 where both are 0, inf where only the floor is)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = self.estimate / self.noise_floor
        return np.where(self.noise_floor > 0, ratio, np.where(self.estimate > 0, np.inf, 0.0))


@dataclass(frozen=True)
class UnitAboveNoise:
    """One compared unit of a comparison: its value, estimate and own noise floor, and the estimate over the floor."""

    layer: str
    index: int
    value: float
    estimate: float
    noise_floor: float
    above_noise: float


@dataclass(frozen=True)
class SetComparison:
    """A distance between two image sets with its estimate, interval, noise floor and permutation p-value.

    ``value``: the distance of the full sets. ``estimate``: the distance between the sources,
    sampling noise removed as the interval removes it (``bootstrap_estimate`` with method
    ``interval``, the metric's own: ``get_distance(metric).interval``); it lies in ``ci``.
    ``ci``: the 95% bootstrap interval of the distance between the sources.
    ``noise_floor``/``noise_floor_spread``: mean and standard deviation of the distance between
    random splits of the pooled images into sets of sizes ``size_a`` and ``size_b``.
    ``p_value``: the share of those splits at least as far apart as the sets (plus one, over
    ``permutations`` plus one): at least ``1 / (permutations + 1)``. ``layers``: per layer.
    ``bootstrap`` and ``null``: the distances of every resample and every split. ``units``: per
    layer, each unit's value, estimate and noise floor (:class:`UnitStatistics`), when
    :func:`compare_sets` was asked for them (``units=True``).
    """

    metric: str
    value: float
    estimate: float
    ci: tuple[float, float]
    noise_floor: float
    noise_floor_spread: float
    p_value: float
    size_a: int
    size_b: int
    resamples: int
    permutations: int
    seed: int
    layers: Mapping[str, LayerShare]
    interval: str = "squared"  # the method of bootstrap_interval that gave ci
    confidence: float = CONFIDENCE
    bootstrap: tuple[float, ...] = field(default=(), repr=False)
    null: tuple[float, ...] = field(default=(), repr=False)
    units: Mapping[str, UnitStatistics] | None = field(default=None, repr=False, compare=False)

    @property
    def excess(self) -> float:
        """Deprecated: the :attr:`estimate` (formerly the value less the noise floor)."""
        _deprecated_excess()
        return self.estimate

    def ranked_units(self) -> list[UnitAboveNoise]:
        """Every unit, furthest above its own noise first: by estimate over noise floor (ties by layer order, index).

        ``ValueError`` unless :func:`compare_sets` was asked for ``units``.
        """
        if self.units is None:
            raise ValueError("this comparison has no per-unit statistics: compare_sets(..., units=True) gives them")
        found = [
            UnitAboveNoise(layer, int(index), float(value), float(estimate), float(floor), float(ratio))
            for layer, units in self.units.items()
            for index, value, estimate, floor, ratio in zip(units.indices, units.value, units.estimate, units.noise_floor,
                                                            units.above_noise())
        ]
        return sorted(found, key=lambda unit: -unit.above_noise)

    def to_dict(self, samples: bool = False) -> dict[str, Any]:
        """Plain JSON-ready values (with every resample's and split's distance when ``samples``)."""
        out = {field.name: getattr(self, field.name) for field in fields(self) if field.name not in ("bootstrap", "null", "units")}
        out["ci"] = list(self.ci)
        out["layers"] = {layer: share.to_dict() for layer, share in self.layers.items()}
        if samples:
            out["bootstrap"], out["null"] = list(self.bootstrap), list(self.null)
        return out

    def summary(self) -> str:
        """One line: value, estimate, interval, noise floor, p-value and sizes."""
        return (
            f"{self.metric} {self.value:.4g}, estimate {self.estimate:.4g} ({100 * self.confidence:g}% CI {self.ci[0]:.4g} to "
            f"{self.ci[1]:.4g}), noise floor {self.noise_floor:.4g} +- {self.noise_floor_spread:.2g}, "
            f"p = {self.p_value:.3g} ({self.permutations} permutations, {self.resamples} resamples; "
            f"{self.size_a} vs {self.size_b} images)"
        )

    def reading(self) -> str:
        """One sentence: the estimate with its interval against the value and noise floor, and what the p-value says."""
        extreme = " (no random split of the pooled images was as far apart)" if self.p_value * (self.permutations + 1) <= 1 else ""
        verdict = "the sets differ beyond sampling noise" if self.p_value < 0.05 else "no difference beyond sampling noise shows"
        return (f"Sampling noise removed, the distance between the sources is {self.estimate:.4g} "
                f"({100 * self.confidence:g}% CI {self.ci[0]:.4g} to {self.ci[1]:.4g}); measured {self.value:.4g} against "
                f"a noise floor of {self.noise_floor:.4g}; p = {self.p_value:.2g}{extreme}: {verdict}.")

    def __str__(self) -> str:
        return f"{self.summary()}\n{layer_table(self.layers)}"


@dataclass(frozen=True)
class Cell:
    """One figure of a result as every medium shows it: named parts (numbers formatted once) and what joins them.

    ``parts``: ``(name, formatted value)`` pairs, e.g. ``(("low", "18.35"), ("high", "20.83"))``;
    ``joiner``: ``"to"`` or ``"+-"`` between them (a page may draw ``+-`` as ``±``).
    """

    parts: tuple[tuple[str, str], ...]
    joiner: str = ""

    def text(self, plus_minus: str = "+-") -> str:
        """The figure as text."""
        joiner = plus_minus if self.joiner == "+-" else self.joiner
        return f" {joiner} ".join(value for _, value in self.parts)


@dataclass(frozen=True)
class Statistic:
    """One line of a comparison's statistics: its name, its figure and what it means."""

    name: str
    cell: Cell
    note: str


def statistics(result: SetComparison) -> list[Statistic]:
    """The statistics of ``result`` beside its value, as the command line prints them and the report shows them."""
    return [
        Statistic("estimate", Cell((("estimate", f"{result.estimate:.6g}"),)),
                  f"sampling noise removed as the interval removes it: {ESTIMATES[result.interval]}"),
        Statistic(f"{100 * result.confidence:g}% CI", Cell((("low", f"{result.ci[0]:.6g}"), ("high", f"{result.ci[1]:.6g}")), "to"),
                  f"bootstrap, {result.resamples} resamples of each set's images, sampling noise removed"),
        Statistic("noise floor", Cell((("floor", f"{result.noise_floor:.6g}"), ("spread", f"{result.noise_floor_spread:.3g}")), "+-"),
                  f"mean and spread over {result.permutations} random splits of the pooled images"),
        Statistic("p-value", Cell((("p", f"{result.p_value:.4g}"),)),
                  f"permutation test, {result.permutations} permutations, seed {result.seed}"),
    ]


def layer_columns(layers: Mapping[str, LayerShare]) -> tuple[list[str], list[tuple[str, list[Cell]]]]:
    """The layers as a table: its header, and per layer its cells (neurons, value, share, and when measured
    the estimate, interval, noise floor and p-value), in the layers' order."""
    measured = all(part.noise_floor is not None for part in layers.values())
    header = ["neurons", "value", "share"] + (["estimate", "95% CI", "noise floor", "p"] if measured else [])
    rows = []
    for layer, part in layers.items():
        cells = [Cell((("neurons", f"{part.neurons}"),)), Cell((("value", f"{part.value:.4g}"),)),
                 Cell((("share", f"{100 * part.share:.1f}%"),))]
        if measured:
            cells += [
                Cell((("estimate", f"{part.estimate:.4g}"),)),
                Cell((("low", f"{part.ci[0]:.4g}"), ("high", f"{part.ci[1]:.4g}")), "to"),
                Cell((("floor", f"{part.noise_floor:.4g}"), ("spread", f"{part.noise_floor_spread:.3g}")), "+-"),
                Cell((("p", f"{part.p_value:.3g}"),)),
            ]
        rows.append((layer, cells))
    return header, rows


def layer_table(layers: Mapping[str, LayerShare]) -> str:
    """Layers as a text table, in their order (:func:`layer_columns`)."""
    header, rows = layer_columns(layers)
    names = ["layer", *header]
    texts = [[layer, *(cell.text() for cell in cells)] for layer, cells in rows]
    widths = [max(len(row[column]) for row in [names, *texts]) for column in range(len(names))]
    lines = []
    for row in [names, *texts]:
        first = row[0].ljust(widths[0])
        lines.append("  ".join([first, *(cell.rjust(width) for cell, width in zip(row[1:], widths[1:]))]).rstrip())
    return "\n".join(lines)


__all__ = ["ESTIMATES", "Cell", "LayerShare", "SetComparison", "Statistic", "UnitAboveNoise", "UnitStatistics", "layer_columns",
           "layer_table", "statistics"]
