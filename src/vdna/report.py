"""One self-contained HTML page comparing two image sets (``vdna report A B -o report.html``).

The page shows the headline distances (dna-emd, dna-fd, fd), the per-layer profile of neuron-wise
EMDs, the most different neurons with their histograms overlaid, and the images of each set
closest to and furthest from the other set. Figures and thumbnails are embedded, so the file can be
mailed or archived alone.
"""

from __future__ import annotations

import base64
import html
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ._files import atomic_write_bytes
from ._version import __version__
from .apps.retrieval import RankedImage, rank_images
from .config import RunConfig
from .distances import EMD, FD, NFD
from .distributions import VDNAHist, VDNAImageHist, VDNAImageMeans
from .dna import VDNA, now_text
from .io import dna_paths, load_vdna_from_files
from .neurons import rank_neurons
from .processor import VDNAProcessor


@dataclass
class ReportSide:
    """One image set of a report: its per-image DNAs (when known) and its dataset DNAs."""

    label: str
    histogram: VDNAHist
    images: VDNAImageHist | None = None
    means: VDNAImageMeans | None = None


def _saved_dna(argument: Any) -> VDNA | None:
    if isinstance(argument, (str, os.PathLike)):
        json_path, _ = dna_paths(argument)
        if json_path.is_file() and not Path(argument).is_dir():
            return load_vdna_from_files(json_path)
    return None


def prepare_side(source: Any, label: str, processor: VDNAProcessor, config: RunConfig, gaussian: bool = True) -> ReportSide:
    """Load or make what a report needs of one set: a saved DNA (histogram or per-image), or images.

    Images go through the network once: their per-image histograms (``config``'s distribution,
    ``image-histogram-B``) and, with ``gaussian``, their per-image means are made in one pass;
    the set's histogram DNA is the exact sum of its images'.
    """
    saved = source if isinstance(source, VDNA) else _saved_dna(source)
    if saved is not None:
        if isinstance(saved, VDNAImageHist):
            return ReportSide(label, saved.subset(), images=saved)
        if isinstance(saved, VDNAHist):
            return ReportSide(label, saved)
        raise ValueError(f"{label}: a report needs histogram or image-histogram DNAs, got a {saved.type} DNA")
    distributions = [config.distribution_name, "image-mean"] if gaussian else [config.distribution_name]
    made = processor.run(source, config, distributions)
    return ReportSide(label, made[0].subset(), images=made[0], means=made[1] if gaussian else None)


def _figure_tag(figure: Any, alt: str) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img class="figure" alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def _thumbnail_tag(name: str, size: int = 180) -> str:
    from PIL import Image

    from .plots import thumbnail

    try:
        pixels = thumbnail(name, size)
    except (OSError, ValueError):
        return '<div class="missing">image not readable</div>'
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=85)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img class="thumb" alt="{html.escape(name)}" src="data:image/jpeg;base64,{encoded}">'


def _image_row(title: str, ranked: list[RankedImage], total: int, from_end: bool) -> str:
    cells = []
    for position, item in enumerate(ranked):
        rank = total - len(ranked) + position + 1 if from_end else position + 1
        cells.append(
            f'<figure>{_thumbnail_tag(item.name)}<figcaption>#{rank} &middot; {item.distance:.4g}<br>'
            f'<span class="name">{html.escape(Path(item.name).name)}</span></figcaption></figure>'
        )
    return f'<h3>{html.escape(title)}</h3><div class="row">{"".join(cells)}</div>'


def _distances_table(first: ReportSide, second: ReportSide) -> tuple[str, dict[str, float]]:
    values = {"dna-emd (mean over all neurons)": float(EMD(first.histogram, second.histogram))}
    if first.means is not None and second.means is not None:
        gauss_a, gauss_b = first.means.gaussian(), second.means.gaussian()
        layer_a, layer_b = first.means.layer_gaussian(), second.means.layer_gaussian()
        last = first.histogram.layers[-1]
        values["dna-fd (mean over all neurons)"] = float(NFD(gauss_a, gauss_b))
        values["fd (mean over layers)"] = float(FD(layer_a, layer_b))
        values[f"fd (last layer, {last})"] = float(FD(layer_a, layer_b, use_neurons_from_layer=last))
    rows = "".join(f'<tr><th>{html.escape(k)}</th><td class="value">{v:.6g}</td></tr>' for k, v in values.items())
    return f'<table class="distances">{rows}</table>', values


def _layer_table(per_layer: dict[str, torch.Tensor]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(layer)}</td><td>{len(values)}</td><td>{float(values.mean()):.4g}</td>"
        f"<td>{float(values.max()):.4g}</td></tr>"
        for layer, values in per_layer.items()
    )
    return f'<table class="layers"><tr><th>layer</th><th>neurons</th><th>mean EMD</th><th>max EMD</th></tr>{rows}</table>'


def _description(side: ReportSide) -> str:
    dna = side.histogram
    skipped = dna.provenance.skipped
    text = f"{html.escape(side.label)}: {dna.num_images} images"
    if skipped:
        text += f", {len(skipped)} skipped (" + "; ".join(html.escape(f"{s['name']}: {s['reason']}") for s in skipped[:5]) + ")"
    return f"<li>{text}</li>"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: 0.2em; } .meta { color: #666; }
table { border-collapse: collapse; margin: 1em 0; } th, td { padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: left; }
td.value { font-variant-numeric: tabular-nums; font-weight: 600; }
img.figure { max-width: 100%; border: 1px solid #eee; }
.row { display: flex; gap: 8px; flex-wrap: wrap; } figure { margin: 0; width: 180px; }
figcaption { font-size: 12px; } .name { color: #666; word-break: break-all; }
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
    config: RunConfig | None = None,
    **make_options: Any,
) -> Path:
    """Write the HTML report comparing image sets ``a`` and ``b`` (sources, saved DNAs or DNAs); returns its path.

    Sources are turned into per-image histogram DNAs of ``bins`` bins and per-image means, in one
    pass through the network per set, with the run settings ``config`` or ``make_options``
    (:meth:`~vdna.VDNAProcessor.make_vdna`'s keyword arguments). Saved histogram DNAs give a
    report without the Gaussian distances and images.
    """
    if top_neurons < 1 or images_shown < 1:
        raise ValueError(f"top_neurons and images_shown must be positive, got {top_neurons} and {images_shown}")
    if config is not None and make_options:
        raise TypeError("pass the run's settings as config= or as keyword options, not both")
    from . import plots

    config = config or RunConfig.from_options(**make_options, distribution_name=f"image-histogram-{bins}")
    processor = processor or VDNAProcessor()
    labels = labels or (_label(a, "A"), _label(b, "B"))
    first = prepare_side(a, labels[0], processor, config)
    second = prepare_side(b, labels[1], processor, config)
    distances_html, _ = _distances_table(first, second)
    per_layer = EMD(first.histogram, second.histogram, return_neuron_wise=True)
    ranked_neurons = rank_neurons(first.histogram, second.histogram)[:top_neurons]
    sections = [
        f"<h2>Distances</h2>{distances_html}",
        "<h2>Where the sets differ: neuron-wise EMD by layer</h2>",
        _figure_tag(plots.plot_layer_profile(per_layer), "per-layer profile of neuron-wise EMD"),
        _layer_table(per_layer),
        f"<h2>The {len(ranked_neurons)} most different neurons</h2>",
        _figure_tag(
            plots.plot_neuron_histograms(
                first.histogram, second.histogram, [(n.layer, n.index) for n in ranked_neurons], labels=labels
            ),
            "histograms of the most different neurons",
        ),
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
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(output, page.encode("utf-8"))
    return output


def _label(source: Any, default: str) -> str:
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name or str(source)
    return default


__all__ = ["ReportSide", "make_report", "prepare_side"]
