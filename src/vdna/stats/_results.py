"""What a comparison of two image sets gives, and how it reads: one formatter for the command line and the report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ._intervals import CONFIDENCE


@dataclass(frozen=True)
class LayerShare:
    """One layer's part of a distance: its value and its share of the total, with its statistics when measured.

    ``value``: the layer's distance (mean over its selected neurons; for fd the layer's FD).
    ``share``: the layer's weighted part of the total over the total (the shares add up to 1).
    ``ci``, ``noise_floor``, ``noise_floor_spread``, ``p_value``: as in :class:`SetComparison`,
    from :func:`compare_sets`; None from :func:`layer_shares` (full sets only, nothing resampled).
    """

    neurons: int
    value: float
    share: float
    ci: tuple[float, float] | None = None
    noise_floor: float | None = None
    noise_floor_spread: float | None = None
    p_value: float | None = None

    @property
    def excess(self) -> float | None:
        """The value above the noise floor (None when the noise floor was not measured)."""
        return None if self.noise_floor is None else self.value - self.noise_floor

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return {**asdict(self), "ci": None if self.ci is None else list(self.ci), "excess": self.excess}


@dataclass(frozen=True)
class SetComparison:
    """A distance between two image sets with its interval, noise floor and permutation p-value.

    ``value``: the distance of the full sets. ``ci``: the 95% bootstrap interval of the distance
    between the sources (``bootstrap_interval``'s method ``interval``: ``INTERVALS[metric]``).
    ``noise_floor``/``noise_floor_spread``: mean and standard deviation of the distance between
    random splits of the pooled images into sets of sizes ``size_a`` and ``size_b``.
    ``p_value``: the share of those splits at least as far apart as the sets (plus one, over
    ``permutations`` plus one): at least ``1 / (permutations + 1)``. ``layers``: per layer.
    ``bootstrap`` and ``null``: the distances of every resample and every split.
    """

    metric: str
    value: float
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

    @property
    def excess(self) -> float:
        """The value above the noise floor: how much of the distance is not sampling noise."""
        return self.value - self.noise_floor

    def to_dict(self, samples: bool = False) -> dict[str, Any]:
        """Plain JSON-ready values (with every resample's and split's distance when ``samples``)."""
        out = asdict(self)
        out["ci"] = list(self.ci)
        out["excess"] = self.excess
        out["layers"] = {layer: share.to_dict() for layer, share in self.layers.items()}
        if samples:
            out["bootstrap"], out["null"] = list(self.bootstrap), list(self.null)
        else:
            del out["bootstrap"], out["null"]
        return out

    def summary(self) -> str:
        """One line: value, interval, noise floor, excess, p-value and sizes."""
        return (
            f"{self.metric} {self.value:.4g} ({100 * self.confidence:g}% CI {self.ci[0]:.4g} to {self.ci[1]:.4g}), "
            f"noise floor {self.noise_floor:.4g} +- {self.noise_floor_spread:.2g}, excess {self.excess:.4g}, "
            f"p = {self.p_value:.3g} ({self.permutations} permutations, {self.resamples} resamples; "
            f"{self.size_a} vs {self.size_b} images)"
        )

    def reading(self) -> str:
        """One sentence: the value against its noise floor, and what the p-value says."""
        ratio = f"{self.value / self.noise_floor:.3g} times" if self.noise_floor > 0 else "above"
        extreme = " (no random split of the pooled images was as far apart)" if self.p_value * (self.permutations + 1) <= 1 else ""
        verdict = "the sets differ beyond sampling noise" if self.p_value < 0.05 else "no difference beyond sampling noise shows"
        return f"The distance is {ratio} the noise floor; p = {self.p_value:.2g}{extreme}: {verdict}."

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
        Statistic(f"{100 * result.confidence:g}% CI", Cell((("low", f"{result.ci[0]:.6g}"), ("high", f"{result.ci[1]:.6g}")), "to"),
                  f"bootstrap, {result.resamples} resamples of each set's images, sampling noise removed"),
        Statistic("noise floor", Cell((("floor", f"{result.noise_floor:.6g}"), ("spread", f"{result.noise_floor_spread:.3g}")), "+-"),
                  f"mean and spread over {result.permutations} random splits of the pooled images"),
        Statistic("excess", Cell((("excess", f"{result.excess:.6g}"),)), "value - noise floor"),
        Statistic("p-value", Cell((("p", f"{result.p_value:.4g}"),)),
                  f"permutation test, {result.permutations} permutations, seed {result.seed}"),
    ]


def layer_columns(layers: Mapping[str, LayerShare]) -> tuple[list[str], list[tuple[str, list[Cell]]]]:
    """The layers as a table: its header, and per layer its cells (neurons, value, share, and when measured
    the interval, noise floor, excess and p-value), in the layers' order."""
    measured = all(part.noise_floor is not None for part in layers.values())
    header = ["neurons", "value", "share"] + (["95% CI", "noise floor", "excess", "p"] if measured else [])
    rows = []
    for layer, part in layers.items():
        cells = [Cell((("neurons", f"{part.neurons}"),)), Cell((("value", f"{part.value:.4g}"),)),
                 Cell((("share", f"{100 * part.share:.1f}%"),))]
        if measured:
            cells += [
                Cell((("low", f"{part.ci[0]:.4g}"), ("high", f"{part.ci[1]:.4g}")), "to"),
                Cell((("floor", f"{part.noise_floor:.4g}"), ("spread", f"{part.noise_floor_spread:.3g}")), "+-"),
                Cell((("excess", f"{part.excess:.4g}"),)),
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


__all__ = ["Cell", "LayerShare", "SetComparison", "Statistic", "layer_columns", "layer_table", "statistics"]
