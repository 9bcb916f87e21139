"""Figures of the paper for one's own DNAs: ranked image grids, histogram overlays, each neuron's two
cumulative distributions with its EMD shaded between them, per-layer profiles,
distance matrices, sample-size curves (with their noise floors), precision-recall curves, and the
layers' shares of a distance beside their noise floors.

Every function draws one matplotlib figure, saves it where ``path`` says (PNG, SVG or PDF, by
suffix) and returns it. matplotlib is imported on first use, with a non-interactive backend when
no display is set up.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .distributions import VDNAHist

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .apps.retrieval import RankedImage
    from .apps.sample_size import SampleSizeCurve
    from .explain import NeuronExamples
    from .stats import LayerShare


def _pyplot():
    import matplotlib

    if not os.environ.get("DISPLAY") and matplotlib.get_backend().lower() not in {"agg", "pdf", "svg"}:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(figure: Figure, path: str | os.PathLike | None) -> Figure:
    figure.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110)
    return figure


def thumbnail(path: str | os.PathLike, size: int = 160) -> np.ndarray:
    """An RGB thumbnail (longest side ``size``) of an image file, for grids."""
    from PIL import Image

    from .preprocess import pil_to_rgb

    with Image.open(path) as image:
        rgb = Image.fromarray(np.clip(np.rint(pil_to_rgb(image, str(path))), 0, 255).astype(np.uint8))
    rgb.thumbnail((size, size))
    return np.asarray(rgb)


def plot_ranked_images(
    ranking: Sequence[RankedImage],
    path: str | os.PathLike | None = None,
    per_row: int = 6,
    rows: Sequence[str] = ("best", "middle", "worst"),
    title: str | None = None,
) -> Figure:
    """Fig. 4, 6, 7: the best, middle and worst ranked images, with their rank and distance.

    Image names must be readable file paths (as in DNAs made from folders or file lists).
    """
    if not ranking:
        raise ValueError("the ranking is empty")
    starts = {"best": 0, "middle": max(0, len(ranking) // 2 - per_row // 2), "worst": max(0, len(ranking) - per_row)}
    unknown = [row for row in rows if row not in starts]
    if unknown:
        raise ValueError(f"rows must be among {tuple(starts)}, got {unknown}")
    plt = _pyplot()
    figure, axes = plt.subplots(len(rows), per_row, figsize=(2.1 * per_row, 2.4 * len(rows)), squeeze=False)
    for row_axes, row in zip(axes, rows):
        start = starts[row]
        for column, axis in enumerate(row_axes):
            axis.axis("off")
            position = start + column
            if position >= len(ranking):
                continue
            item = ranking[position]
            axis.imshow(thumbnail(item.name))
            axis.set_title(f"#{position + 1}  {item.distance:.3g}", fontsize=8)
        row_axes[0].text(-0.08, 0.5, row, transform=row_axes[0].transAxes, rotation=90, va="center", ha="right")
    if title:
        figure.suptitle(title)
    return _finish(figure, path)


def _neuron_grid(neurons: Sequence[tuple[str, int]], per_row: int) -> tuple[Figure, np.ndarray]:
    """A figure with one panel per neuron, ``per_row`` a row."""
    if not neurons:
        raise ValueError("no neurons to plot")
    plt = _pyplot()
    rows = math.ceil(len(neurons) / per_row)
    columns = min(per_row, len(neurons))
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.4 * rows), squeeze=False)
    return figure, axes


def _finish_grid(figure: Figure, axes: np.ndarray, used: int, path: str | os.PathLike | None, legend: str = "best") -> Figure:
    """The unused panels hidden, the legend in the first one, and the figure finished."""
    for axis in list(axes.flat)[used:]:
        axis.axis("off")
    axes.flat[0].legend(fontsize=7, loc=legend)
    return _finish(figure, path)


def plot_neuron_histograms(
    vdna1: VDNAHist,
    vdna2: VDNAHist,
    neurons: Sequence[tuple[str, int]],
    path: str | os.PathLike | None = None,
    labels: tuple[str, str] = ("A", "B"),
    per_row: int = 4,
) -> Figure:
    """Fig. 8-9: normalised histograms of the same neurons in two DNAs, overlaid, with their EMD."""
    from .distances import EMD

    figure, axes = _neuron_grid(neurons, per_row)
    centres = np.linspace(-1, 1, vdna1.hist_nb_bins, endpoint=False) + 1 / vdna1.hist_nb_bins
    for axis, (layer, index) in zip(axes.flat, neurons):
        for dna, label in zip((vdna1, vdna2), labels):
            counts = dna.get_neuron_dist(layer, index)[0].to(torch.float64)
            axis.plot(centres, (counts / counts.sum()).numpy(), label=label, linewidth=1)
        distance = float(EMD(vdna1, vdna2, use_neurons_from_layer=layer, use_neuron_index=index))
        axis.set_title(f"{layer} #{index}  EMD {distance:.3g}", fontsize=8)
        axis.set_xlim(-1, 1)
        axis.tick_params(labelsize=7)
    return _finish_grid(figure, axes, len(neurons), path)


def plot_neuron_cdfs(
    vdna1: VDNAHist, vdna2: VDNAHist, neurons: Sequence[tuple[str, int]], path: str | os.PathLike | None = None,
    labels: tuple[str, str] = ("A", "B"), per_row: int = 4, titles: Sequence[str] | None = None,
) -> Figure:
    """The cumulative distributions of the same neurons in two DNAs, with the area between them shaded: their EMD.

    The horizontal axis is the normalised activation, -1 to 1, measured in bins (the EMD's unit;
    ticks read the normalised values), so the shaded area between the two step curves is exactly
    the neuron's EMD. ``titles``: one per neuron (default: its layer, index and EMD).
    """
    from .distances import EMD

    figure, axes = _neuron_grid(neurons, per_row)
    bins = vdna1.hist_nb_bins
    edges = np.arange(bins + 1, dtype=np.float64)
    for number, (axis, (layer, index)) in enumerate(zip(axes.flat, neurons)):
        curves = []
        for dna, label in zip((vdna1, vdna2), labels):
            counts = dna.get_neuron_dist(layer, index)[0].to(torch.float64).numpy()
            cumulative = np.cumsum(counts) / counts.sum()
            curves.append(np.append(cumulative, cumulative[-1]))  # the value on bin k holds from edge k to edge k + 1
            axis.step(edges, curves[-1], where="post", label=label, linewidth=1)
        axis.fill_between(edges, curves[0], curves[1], step="post", color="0.5", alpha=0.35, linewidth=0)
        distance = float(EMD(vdna1, vdna2, use_neurons_from_layer=layer, use_neuron_index=index))
        title = titles[number] if titles is not None else f"{layer} #{index}  EMD {distance:.3g} (shaded)"
        axis.set_title(title, fontsize=8)
        axis.set_xlim(0, bins)
        axis.set_ylim(0, 1.02)
        ticks = np.linspace(-1, 1, 5)
        axis.set_xticks((ticks + 1) / 2 * bins, [f"{tick:g}" for tick in ticks])
        axis.set_xlabel("normalised activation", fontsize=7)
        axis.tick_params(labelsize=7)
    return _finish_grid(figure, axes, len(neurons), path, legend="lower right")


def plot_neuron_examples(
    examples: Mapping[tuple[str, int], NeuronExamples] | Sequence[NeuronExamples],
    path: str | os.PathLike | None = None,
    labels: tuple[str, str] = ("A", "B"),
    size: float = 1.3,
) -> Figure:
    """The images behind each neuron (:func:`vdna.explain.neuron_examples`): one row per neuron, set A's crops then
    set B's, each captioned with its activation; where a crop is much larger than the position's cell, the cell is outlined."""
    from matplotlib.patches import Rectangle

    rows = list(examples.values()) if isinstance(examples, Mapping) else list(examples)
    if not rows:
        raise ValueError("no neurons to plot")
    shown = max(len(row.a) for row in rows), max(len(row.b) for row in rows)
    columns = max(1, shown[0] + shown[1])
    plt = _pyplot()
    figure, axes = plt.subplots(len(rows), columns, figsize=(size * columns + 1, (size + 0.3) * len(rows)), squeeze=False)
    for row_axes, row in zip(axes, rows):
        for axis in row_axes:
            axis.axis("off")
        cells = list(zip(row_axes[: len(row.a)], row.a)) + list(zip(row_axes[shown[0] : shown[0] + len(row.b)], row.b))
        for axis, example in cells:
            axis.imshow(example.crop, interpolation="nearest")
            axis.set_title(f"{example.activation:.3g}", fontsize=7)
            if example.outline is not None:
                top, left, bottom, right = example.outline
                axis.add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top,
                                         fill=False, edgecolor="yellow", linewidth=1))
        row_axes[0].text(-0.1, 0.5, f"{row.layer} #{row.index}", transform=row_axes[0].transAxes, rotation=90,
                         va="center", ha="right", fontsize=7)
    for start, count, label in ((0, shown[0], labels[0]), (shown[0], shown[1], labels[1])):
        if count:
            axes[0, start].annotate(label, (0, 1.35), xycoords="axes fraction", fontsize=9, fontweight="bold")
    return _finish(figure, path)


def plot_layer_profile(
    per_layer: Mapping[str, torch.Tensor],
    path: str | os.PathLike | None = None,
    weights: Mapping[str, torch.Tensor] | None = None,
    ylabel: str = "neuron-wise distance",
) -> Figure:
    """Fig. 11: every neuron's distance, layer after layer, with each layer's mean; learned weights below."""
    plt = _pyplot()
    panels = 2 if weights is not None else 1
    figure, axes = plt.subplots(panels, 1, figsize=(10, 3 * panels), squeeze=False)
    for axis, values, label in zip(axes[:, 0], (per_layer, weights), (ylabel, "weight")):
        if values is None:
            continue
        start = 0
        for number, layer_values in enumerate(values.values()):
            data = torch.as_tensor(layer_values, dtype=torch.float64).cpu().numpy()
            positions = np.arange(start, start + data.size)
            axis.scatter(positions, data, s=2, color=f"C{number % 10}")
            axis.hlines(data.mean(), positions[0], positions[-1], color="black", linewidth=1)
            start += data.size
        boundaries = np.cumsum([len(v) for v in values.values()])
        axis.set_xticks(boundaries - np.array([len(v) for v in values.values()]) / 2)
        axis.set_xticklabels(list(values), rotation=60, fontsize=7, ha="right")
        axis.set_ylabel(label)
        axis.set_xlim(0, start)
    return _finish(figure, path)


def plot_distance_matrix(
    matrix: Mapping[str, Mapping[str, float]], path: str | os.PathLike | None = None, title: str = "distance"
) -> Figure:
    """A heatmap of ``{row: {column: distance}}`` (e.g. :func:`vdna.apps.transfer.distance_matrix`), values printed."""
    rows = list(matrix)
    columns = list(next(iter(matrix.values())))
    values = np.array([[matrix[row][column] for column in columns] for row in rows], dtype=np.float64)
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(1 + 0.9 * len(columns), 1 + 0.6 * len(rows)))
    image = axis.imshow(values, cmap="viridis")
    axis.set_xticks(range(len(columns)), columns, rotation=45, ha="right", fontsize=8)
    axis.set_yticks(range(len(rows)), rows, fontsize=8)
    for (i, j), value in np.ndenumerate(values):
        axis.text(j, i, f"{value:.3g}", ha="center", va="center", fontsize=7, color="white" if value < values.mean() else "black")
    figure.colorbar(image, ax=axis, label=title)
    return _finish(figure, path)


def plot_sample_size_curves(
    curves: Mapping[str, SampleSizeCurve],
    path: str | os.PathLike | None = None,
    relative: bool = True,
    floors: Mapping[str, SampleSizeCurve] | None = None,
) -> Figure:
    """Fig. 5: mean distance (relative to its value at the largest size, with ``relative``) against subset size, with std bars.

    ``floors``: per curve label, its noise floor (e.g. from :func:`vdna.stats.noise_floor_curve`),
    drawn dashed in the curve's colour with a band of one standard deviation, on the curve's scale.
    """
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    for label, curve in curves.items():
        scale = curve.mean[-1] if relative and curve.mean[-1] != 0 else 1.0
        bars = axis.errorbar(curve.sizes, curve.mean / scale, yerr=curve.std / abs(scale), label=label, capsize=3, marker="o",
                             markersize=3)
        floor = (floors or {}).get(label)
        if floor is not None:
            colour = bars.lines[0].get_color()
            axis.plot(floor.sizes, floor.mean / scale, linestyle="--", color=colour, label=f"{label} noise floor")
            axis.fill_between(floor.sizes, (floor.mean - floor.std) / scale, (floor.mean + floor.std) / scale, color=colour,
                              alpha=0.15, linewidth=0)
    axis.set_xscale("log")
    axis.set_xlabel("images in the subset")
    axis.set_ylabel("distance / distance with all images" if relative else "distance")
    axis.legend()
    return _finish(figure, path)


def plot_layer_shares(layers: Mapping[str, LayerShare], path: str | os.PathLike | None = None, metric: str = "EMD") -> Figure:
    """Where a difference lives: each layer's distance beside its noise floor (+- spread), and its share of the total.

    ``layers``: :class:`vdna.stats.LayerShare` per layer, early to late (``SetComparison.layers``
    or :func:`vdna.stats.layer_shares`; noise floors are drawn where measured).
    """
    if not layers:
        raise ValueError("no layers to plot")
    plt = _pyplot()
    names = list(layers)
    positions = np.arange(len(names))
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(max(6.0, 0.45 * len(names) + 2), 5.5), sharex=True)
    top.bar(positions, [part.value for part in layers.values()], color="C0", label=f"{metric} of the layer")
    if all(part.noise_floor is not None for part in layers.values()):
        top.errorbar(positions, [part.noise_floor for part in layers.values()],
                     yerr=[part.noise_floor_spread for part in layers.values()], fmt="_", color="black", markersize=14,
                     capsize=3, label="noise floor +- spread")
    top.set_ylabel(metric)
    top.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0, 1), ncol=2, frameon=False)
    bottom.bar(positions, [100 * part.share for part in layers.values()], color="C1")
    bottom.set_ylabel("share of the total (%)")
    bottom.set_xticks(positions, names, rotation=60, fontsize=7, ha="right")
    bottom.set_xlabel("layer (early to late)")
    return _finish(figure, path)


def plot_precision_recall(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | os.PathLike | None = None
) -> Figure:
    """Fig. 3: precision against recall, one line per method, with its area in the legend."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5, 4))
    for label, (precision, recall) in curves.items():
        area = float(np.sum(np.diff(recall) * precision[1:]))
        axis.step(recall, precision, where="post", label=f"{label} (AUC {area:.3f})")
    axis.set_xlabel("recall")
    axis.set_ylabel("precision")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.02)
    axis.legend(fontsize=8)
    return _finish(figure, path)


__all__ = [
    "plot_distance_matrix",
    "plot_layer_profile",
    "plot_layer_shares",
    "plot_neuron_cdfs",
    "plot_neuron_examples",
    "plot_neuron_histograms",
    "plot_precision_recall",
    "plot_ranked_images",
    "plot_sample_size_curves",
    "thumbnail",
]
