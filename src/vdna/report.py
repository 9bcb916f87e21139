"""One self-contained HTML page comparing two image sets (``vdna report A B -o report.html``).

The page opens with how sure the difference is (one row: dna-emd's value, its estimate with
sampling noise removed, its 95% interval, noise floor and permutation p-value, from the per-image
DNAs), then shows the headline distances (dna-emd, dna-fd, fd), where the difference lives (each
layer's EMD and share of the total beside its noise floor, and the profile of neuron-wise EMDs), the
neurons furthest above their own noise floors by layer, each with its two cumulative distributions
(the area between them shaded: its EMD) and the parts of the images of each set where it fires most,
and the images of each set closest to and furthest from the other set. Figures and thumbnails are embedded, so the
file can be mailed or archived alone.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._files import atomic_write_bytes, writable_file
from ._version import __version__
from .apps.retrieval import RankedImage, rank_images
from .config import RunConfig, StatsConfig, option, run_settings, split_settings
from .distances import EMD, Distance, get_distance, list_distances
from .distributions import VDNAHist, VDNAImageHist, VDNAImageMeans
from .dna import VDNA, now_text
from .explain import NeuronExample, NeuronMaxima, can_read_twice, crop_examples
from .inputs import dnas_of, saved_dna
from .neurons import rank_neurons
from .processor import VDNAProcessor
from .sources import ImageCollection, open_source
from .stats import (
    ESTIMATES,
    Cell,
    LayerShare,
    SetComparison,
    UnitAboveNoise,
    check_memory,
    compare_sets,
    layer_columns,
    layer_shares,
    statistics,
)


@dataclass
class ReportSide:
    """One image set of a report: its per-image DNAs (when known) and its dataset DNAs.

    Made from images, it also keeps its ``source`` and, when tracked, each neuron's best images (``maxima``).
    """

    label: str
    histogram: VDNAHist
    images: VDNAImageHist | None = None
    means: VDNAImageMeans | None = None
    source: Any = None
    maxima: NeuronMaxima | None = None


def prepare_side(
    source: Any,
    label: str,
    processor: VDNAProcessor,
    config: RunConfig,
    gaussian: bool = True,
    per_set: int = 0,
    ranges: Any = None,
) -> ReportSide:
    """Load or make what a report needs of one set: a saved DNA (histogram or per-image), or images.

    Images go through the network once: their per-image histograms (``config``'s distribution,
    ``image-histogram-B``) and, with ``gaussian``, their per-image means are made in one pass;
    the set's histogram DNA is the exact sum of its images'. With ``per_set``, the same pass keeps
    every neuron's ``per_set`` best images (when the source can be read again to crop them).
    """
    saved = saved_dna(source)
    if saved is not None:
        if isinstance(saved, VDNAImageHist):
            return ReportSide(label, saved.subset(), images=saved)
        if isinstance(saved, VDNAHist):
            return ReportSide(label, saved)
        raise ValueError(f"{label}: a report needs histogram or image-histogram DNAs, got a {saved.type} DNA")
    distributions = [config.distribution_name, "image-mean"] if gaussian else [config.distribution_name]
    maxima = NeuronMaxima(per_set) if per_set and can_read_twice(source) else None
    made = dnas_of(source, distributions, config, processor, ranges=ranges, trackers=[maxima] if maxima is not None else [])
    return ReportSide(label, made[0].subset(), images=made[0], means=made[1] if gaussian else None, source=source, maxima=maxima)


def _figure_tag(figure: Any, alt: str) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img class="figure" alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def _pixels_tag(pixels: Any, alt: str, kind: str) -> str:
    """An ``<img>`` of RGB uint8 pixels, embedded: JPEG, or PNG for small crops (shown enlarged, pixel by pixel)."""
    from PIL import Image

    buffer = io.BytesIO()
    small = max(pixels.shape[:2]) < 48
    Image.fromarray(pixels).save(buffer, format="PNG" if small else "JPEG", quality=85)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    mime = "png" if small else "jpeg"
    return f'<img class="{kind}" alt="{html.escape(alt)}" src="data:image/{mime};base64,{encoded}">'


def _thumbnail_tag(name: str, size: int = 180) -> str:
    from .plots import thumbnail

    try:
        pixels = thumbnail(name, size)
    except (OSError, ValueError):
        return '<div class="missing">image not readable</div>'
    return _pixels_tag(pixels, name, "thumb")


def _image_row(title: str, ranked: list[RankedImage], total: int, from_end: bool) -> str:
    cells = []
    for position, item in enumerate(ranked):
        rank = total - len(ranked) + position + 1 if from_end else position + 1
        cells.append(
            f'<figure>{_thumbnail_tag(item.name)}<figcaption>#{rank} &middot; {item.distance:.4g}<br>'
            f'<span class="name">{html.escape(Path(item.name).name)}</span></figcaption></figure>'
        )
    return f'<h3>{html.escape(title)}</h3><div class="row">{"".join(cells)}</div>'


def _crop_tag(example: NeuronExample, size: int = 120) -> str:
    """The crop, at most ``size`` pixels a side; where it is much larger than the position's cell, the cell outlined."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(example.crop)
    if max(image.size) > size:
        image.thumbnail((size, size))
    if example.outline is not None:
        top, left, bottom, right = example.outline
        box_top, box_left, box_bottom, box_right = example.box
        scale = image.size[0] / (box_right - box_left), image.size[1] / (box_bottom - box_top)
        outline = [left * scale[0], top * scale[1], right * scale[0] - 1, bottom * scale[1] - 1]
        ImageDraw.Draw(image).rectangle(outline, outline=(255, 230, 0), width=2)
    return _pixels_tag(np.asarray(image), f"{example.name} {example.box}", "crop")


def _examples_row(label: str, examples: list[NeuronExample]) -> str:
    cells = "".join(
        f'<figure class="example">{_crop_tag(example)}<figcaption>{example.activation:.4g}<br>'
        f'<span class="name">{html.escape(Path(example.name).name)}</span></figcaption></figure>'
        for example in examples
    )
    return f'<div class="set"><h5>{html.escape(label)}: highest activations</h5><div class="crops">{cells}</div></div>'


def _neuron_section(
    first: ReportSide,
    second: ReportSide,
    ranked: list[UnitAboveNoise],
    examples: list[dict | None],
    labels: tuple[str, str],
    measured: bool,
) -> str:
    """The neurons furthest above their own noise floor (``measured``; else the largest EMDs) grouped by layer, early
    to late, each with its two cumulative distributions, the area between them (its EMD) shaded, and the crops of
    each set's images where it fires most."""
    from . import plots

    notes = [
        f"{html.escape(side.label)}: given as saved DNAs, so there are no images to show." if side.source is None
        else f"{html.escape(side.label)}: its images cannot be read again to crop them."
        for side, found in zip((first, second), examples) if found is None
    ]
    chosen = (
        "Neurons whose EMD, sampling noise removed (its estimate), stands furthest above their own noise floor (their "
        "mean EMD over the random splits of the pooled images), by layer from early to late: a neuron of an early layer "
        "varies much from image to image, so its raw EMD is large even between two halves of one set."
        if measured else
        "Neurons with the largest EMD between their histograms in the two sets (without per-image DNAs there is no "
        "noise floor to measure them against), by layer from early to late."
    )
    parts = [
        f"<h2>The {len(ranked)} most different neurons</h2>",
        (
            f'<p class="note">{chosen} Each picture shows the neuron\'s two cumulative distributions over its normalised '
            "activation; the shaded area between them is its EMD (the horizontal axis is measured in bins). Beside each, "
            "the images of each set where it fires most: the part of the image its strongest "
            "position sees (its receptive field), captioned with the activation there; where that part is much larger "
            "than the position's own cell, the cell is outlined in yellow. Images with equal maxima (a ReLU6 network "
            "saturates at 6) are ranked by the neuron's mean activation over the image.</p>"
        ),
        *(f'<p class="note">{note}</p>' for note in notes),
    ]
    order = {layer: position for position, layer in enumerate(first.histogram.layers)}
    for layer in sorted({neuron.layer for neuron in ranked}, key=order.__getitem__):
        parts.append(f'<h3 class="layer">{html.escape(layer)}</h3>')
        for neuron in (n for n in ranked if n.layer == layer):
            key = (neuron.layer, neuron.index)
            title = f"{layer} #{neuron.index}  EMD {neuron.value:.3g}" + (
                f", {neuron.above_noise:.3g} x its floor" if measured else "")
            figure = plots.plot_neuron_cdfs(first.histogram, second.histogram, [key], labels=labels, per_row=1, titles=[title])
            rows = "".join(_examples_row(side.label, found[key]) for side, found in zip((first, second), examples) if found)
            statistics_html = (
                f' &middot; estimate <span class="estimate">{neuron.estimate:.6g}</span> &middot; noise floor '
                f'<span class="floor">{neuron.noise_floor:.6g}</span> &middot; <span class="above">{neuron.above_noise:.3g}'
                "</span> times its floor" if measured else ""
            )
            parts.append(
                f'<section class="neuron" data-layer="{html.escape(layer)}" data-index="{neuron.index}">'
                f'<h4>{html.escape(layer)} #{neuron.index} &middot; EMD <span class="emd">{neuron.value:.6g}</span>'
                f"{statistics_html}</h4>"
                f'<div class="neuron-body">{_figure_tag(figure, f"cumulative distributions of {layer} #{neuron.index}")}'
                f'<div class="examples">{rows}</div></div></section>'
            )
    return "".join(parts)


def _side_dnas(side: ReportSide) -> list[VDNA]:
    return [dna for dna in (side.histogram, side.images, side.means) if dna is not None]


def _set_dnas(distance: Distance, first: ReportSide, second: ReportSide) -> tuple[VDNA, VDNA] | None:
    """The set DNAs ``distance`` compares, from what each side holds; None if a side holds none."""
    found = []
    for side in (first, second):
        usable = [dna for dna in _side_dnas(side) if distance.compares(dna) or distance.resamples(dna)]
        if not usable:
            return None
        found.append(distance.set_dna(usable[0]))
    return found[0], found[1]


def _distances_table(first: ReportSide, second: ReportSide) -> tuple[str, dict[str, float]]:
    """Every registered distance the two sides' DNAs allow: over all units, and for layer-wise ones the last layer too."""
    values = {}
    for name in list_distances():
        distance = get_distance(name)
        pair = _set_dnas(distance, first, second)
        if pair is None:
            continue
        over = "all neurons" if distance.unit == "neuron" else "layers"
        values[f"{distance.label} (mean over {over})"] = float(distance.compare(*pair))
        if distance.unit == "layer":
            last = pair[0].layers[-1]
            values[f"{distance.label} (last layer, {last})"] = float(distance.compare(*pair, neurons={last: None}))
    rows = "".join(f'<tr><th>{html.escape(k)}</th><td class="value">{v:.6g}</td></tr>' for k, v in values.items())
    return f'<table class="distances">{rows}</table>', values


def _cell_html(cell: Cell) -> str:
    """A figure of :mod:`vdna.stats` as HTML: each part in a span named after it, ``+-`` drawn as ``±``."""
    joiner = {"+-": " &plusmn; ", "to": " to "}.get(cell.joiner, " ")
    return joiner.join(f'<span class="{name}">{html.escape(value)}</span>' for name, value in cell.parts)


def _statistics_section(first: ReportSide, second: ReportSide, result: SetComparison | None) -> str:
    """How sure the difference is: one row of dna-emd's value, estimate, interval, noise floor and p-value, and a
    sentence reading them."""
    parts = ["<h2>How sure is the difference?</h2>"]
    if result is None:
        missing = ", ".join(html.escape(side.label) for side in (first, second) if side.images is None)
        return parts[0] + (
            f'<p class="note">{missing}: given as DNAs of a whole set, which cannot be resampled: the estimate, interval, '
            "noise floor and p-value need per-image DNAs (give the images, or DNAs made with "
            f"<code>vdna make SOURCE --distribution image-histogram-{first.histogram.hist_nb_bins}</code>).</p>"
        )
    label = get_distance(result.metric).label
    rows = statistics(result)
    head = "<th>metric</th><th>value</th>" + "".join(
        f'<th title="{html.escape(row.note)}">{html.escape(row.name)}</th>' for row in rows)
    cells = f'<td>{html.escape(label)}</td><td class="value">{result.value:.6g}</td>' + "".join(
        f'<td class="value">{_cell_html(row.cell)}</td>' for row in rows)
    return "".join([
        *parts,
        f'<table class="statistics"><tr>{head}</tr><tr>{cells}</tr></table>',
        f'<p class="reading">{html.escape(result.reading())}</p>',
        (
            f'<p class="note">{result.size_a} vs {result.size_b} images. Value: {label} of the two sets. Estimate: the '
            "distance between the sources once sampling noise is removed, the centre of the interval (median of the "
            f"bootstrap resamples, {ESTIMATES[result.interval]}). Interval: {result.resamples} bootstrap resamples "
            "(each set's images drawn with replacement), for the distance between the sources. Noise floor: mean "
            f"&plusmn; standard deviation of {label} over {result.permutations} random splits of the pooled images into "
            f"sets of the same sizes, what {label} reads when both sets come from one source. p-value: the share of those "
            f"splits at least as far apart (permutation test). Seed {result.seed}.</p>"
        ),
    ])


def _layer_table(per_layer: dict[str, torch.Tensor], shares: dict[str, LayerShare]) -> str:
    """The layers' table of :func:`vdna.stats.layer_columns`, with each layer's largest EMD beside its mean."""
    header, rows = layer_columns(shares)
    names = {"value": "mean EMD", "share": "share of the total", "p": "p-value"}
    cells = [f"<th>{html.escape(names.get(name, name))}</th>" for name in header]
    head = "<th>layer</th>" + cells[0] + cells[1] + "<th>max EMD</th>" + "".join(cells[2:])
    body = []
    for layer, row in rows:
        shown = [f"<td>{_cell_html(cell)}</td>" for cell in row]
        largest = f"<td>{float(per_layer[layer].max()):.4g}</td>"
        body.append(f"<tr><td>{html.escape(layer)}</td>{shown[0]}{shown[1]}{largest}{''.join(shown[2:])}</tr>")
    return f'<table class="layers"><tr>{head}</tr>{"".join(body)}</table>'


def _description(side: ReportSide) -> str:
    """The set's images, and every image skipped (when its images were read with skipping) with the reason."""
    made = side.images if side.images is not None else side.histogram
    skipped = made.provenance.skipped
    text = f"{html.escape(side.label)}: {made.num_images} images"
    if skipped:
        listed = "".join(f"<li>{html.escape(entry['name'])}: {html.escape(entry['reason'])}</li>" for entry in skipped)
        text += f', {len(skipped)} skipped:<ul class="skipped">{listed}</ul>'
    return f"<li>{text}</li>"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: 0.2em; } .meta { color: #666; }
table { border-collapse: collapse; margin: 1em 0; } th, td { padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: left; }
td.value { font-variant-numeric: tabular-nums; font-weight: 600; }
img.figure { max-width: 100%; border: 1px solid #eee; }
.row { display: flex; gap: 8px; flex-wrap: wrap; } figure { margin: 0; width: 180px; }
figcaption { font-size: 12px; } .name { color: #666; word-break: break-all; }
.note { color: #444; } section.neuron { margin: 0.5em 0 1.5em; }
.neuron-body { display: flex; gap: 16px; align-items: flex-start; } .neuron-body img.figure { width: 320px; }
.crops { display: flex; gap: 6px; flex-wrap: wrap; } figure.example { width: 100px; }
img.crop { width: 100px; height: 100px; object-fit: contain; image-rendering: pixelated; background: #f4f4f4; }
h5 { margin: 0.3em 0; }
"""


def make_report(
    a: Any,
    b: Any,
    output: str | os.PathLike,
    labels: tuple[str, str] | None = None,
    processor: VDNAProcessor | None = None,
    bins: int = 1000,
    top_neurons: int = 8,
    images_shown: int = 6,
    *,
    stats: bool = True,
    config: RunConfig | None = None,
    stats_config: StatsConfig | None = None,
    on_made: Callable[[VDNA], None] | None = None,
    **options: Any,
) -> Path:
    """Write the HTML report comparing image sets ``a`` and ``b`` (sources, saved DNAs or DNAs); returns its path.

    Sources are turned into per-image histogram DNAs of ``bins`` bins and per-image means, in one
    pass through the network per set, with the run settings ``config`` and ``options``
    (:class:`~vdna.RunConfig`'s fields, which replace its). The same pass keeps each neuron's
    ``images_shown`` best images, from which the ``top_neurons`` most different neurons show
    crops (the images are read again for them, without the network). Saved histogram DNAs give a
    report without the Gaussian distances and images. When both sets have per-image DNAs, the
    page opens with :func:`vdna.stats.compare_sets` of dna-emd (``stats_config``'s resamples and
    permutations, also given as ``resamples=`` and ``permutations=``; seeded by the run's seed) and
    gives each layer's noise floor beside its share of the EMD, and the most different neurons are
    those whose estimate stands furthest above their own noise floor (the same resamples, neuron by
    neuron; without statistics, the largest EMDs); ``stats=False`` leaves them out
    (sets of one image cannot have them, which is said before any image goes through the network).
    ``on_made`` is called with each DNA made from images (e.g. to list the images skipped). The
    output file is checked writable before any work.
    """
    if top_neurons < 1 or images_shown < 1:
        raise ValueError(f"top_neurons and images_shown must be positive, got {top_neurons} and {images_shown}")
    from . import plots

    output = writable_file(output)
    (stats_options,), run_options = split_settings(options, StatsConfig)
    stats_config = replace(stats_config or StatsConfig(), **stats_options)
    config, ranges = run_settings(config, "make_report", **run_options, distribution_name=f"image-histogram-{bins}")
    labels = labels or (_label(a, "A"), _label(b, "B"))
    if stats:
        check_memory(0, 1, stats_config.resamples, stats_config.permutations)
        for source, label in zip((a, b), labels):
            _check_statistics_size(source, label, config)
    processor = processor or VDNAProcessor()
    first = prepare_side(a, labels[0], processor, config, per_set=images_shown, ranges=ranges)
    second = prepare_side(b, labels[1], processor, config, per_set=images_shown, ranges=ranges)
    for side in (first, second):
        if on_made is not None and side.source is not None:
            on_made(side.images)
    result = None
    if stats and first.images is not None and second.images is not None:
        result = compare_sets(first.images, second.images, resamples=stats_config.resamples,
                              permutations=stats_config.permutations, seed=config.seed, units=True)
    shares = result.layers if result is not None else layer_shares(first.histogram, second.histogram)
    distances_html, _ = _distances_table(first, second)
    per_layer = EMD(first.histogram, second.histogram, return_neuron_wise=True)
    if result is not None:
        ranked_neurons = result.ranked_units()[:top_neurons]
    else:
        ranked_neurons = [UnitAboveNoise(n.layer, n.index, n.distance, math.nan, math.nan, math.nan)
                          for n in rank_neurons(first.histogram, second.histogram)[:top_neurons]]
    examples = _neuron_examples(first, second, ranked_neurons, processor, config)
    sections = [
        _statistics_section(first, second, result) if stats else "",
        f"<h2>Distances</h2>{distances_html}",
        "<h2>Where the difference lives: EMD by layer, early to late</h2>",
        (
            '<p class="note">Each layer\'s mean EMD over its neurons and its share of the total dna-emd (its neurons\' part '
            "of the mean over all neurons)" + (", beside its noise floor (the same random splits of the pooled images, "
            "layer by layer) and p-value. A layer whose EMD stands far above its floor carries the difference; early layers "
            "see colours and textures, late layers objects and scenes." if result is not None else ".") + "</p>"
        ),
        _figure_tag(plots.plot_layer_shares(shares), "each layer's EMD beside its noise floor, and its share of the total"),
        _figure_tag(plots.plot_layer_profile(per_layer), "per-layer profile of neuron-wise EMD"),
        _layer_table(per_layer, shares),
        _neuron_section(first, second, ranked_neurons, examples, labels, result is not None),
    ]
    for side, other in ((first, second), (second, first)):
        if side.images is None:
            continue
        ranking = rank_images(side.images, other.histogram, method="emd")
        shown = min(images_shown, max(1, len(ranking) // 2))  # closest and furthest rows do not overlap
        sections.append(f"<h2>Images of {html.escape(side.label)} by EMD to {html.escape(other.label)}</h2>")
        sections.append(_image_row(f"closest to {other.label}", ranking[:shown], len(ranking), from_end=False))
        sections.append(_image_row(f"furthest from {other.label}", ranking[-shown:], len(ranking), from_end=True))
    dna = first.histogram
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Visual DNA: {html.escape(labels[0])} vs {html.escape(labels[1])}</title>
<style>{_STYLE}</style></head>
<body>
<h1>{html.escape(labels[0])} vs {html.escape(labels[1])}</h1>
<p class="meta">Visual DNA report &middot; vdna {__version__} &middot; {html.escape(now_text())} &middot;
extractor {html.escape(dna.feature_extractor_name)} &middot; {dna.hist_nb_bins} bins &middot;
{dna.num_neurons} neurons in {len(dna.layers)} layers</p>
<ul class="sets">{_description(first)}{_description(second)}</ul>
{"".join(sections)}
</body></html>
"""
    atomic_write_bytes(output, page.encode("utf-8"))
    return output


def _check_statistics_size(source: Any, label: str, config: RunConfig) -> None:
    """Refuse, before any image goes through the network, a set too small for the statistics."""
    saved = saved_dna(source)
    if saved is not None:
        count = saved.num_images if isinstance(saved, VDNAImageHist) else None
    else:
        collection = open_source(source, config.num_images, config.shuffle_files, config.seed)
        count = len(collection) if isinstance(collection, ImageCollection) else None
    if count is not None and count < 2:
        raise ValueError(f"{label} holds {count} image(s): the statistics compare resamples of each set and need at "
                         f"least 2 images a side; {option('stats')} makes the page without them")


def _neuron_examples(
    first: ReportSide, second: ReportSide, neurons: list[UnitAboveNoise], processor: VDNAProcessor, config: RunConfig
) -> list[dict | None]:
    """Each side's examples of ``neurons`` (crops of its best images, read again), or None where it has no images."""
    keys = [(neuron.layer, neuron.index) for neuron in neurons]
    found: list[dict | None] = []
    for side in (first, second):
        if side.maxima is None:
            found.append(None)
            continue
        extractor = processor.get_extractor(config.feat_extractor_name, config.device, config.extractor_weights)
        found.append(crop_examples(side.maxima, keys, side.source, config, extractor))
    return found


def _label(source: Any, default: str) -> str:
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name or str(source)
    return default


__all__ = ["ReportSide", "make_report", "prepare_side"]
