"""Figures: each one draws what it says, from real DNAs, and is written as a readable image file."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import image_files
from PIL import Image

from vdna import plots
from vdna.apps.retrieval import precision_recall_curve, rank_images
from vdna.apps.sample_size import SampleSizeCurve
from vdna.distances import EMD
from vdna.stats import LayerShare


@pytest.fixture(scope="module")
def dnas(processor, data_dir):
    urban = processor.make_vdna(image_files(data_dir / "urban100", 4), verbose=False)
    bsd = processor.make_vdna(image_files(data_dir / "bsd100", 4), verbose=False)
    return urban, bsd


def _png_size(path) -> tuple[int, int]:
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        return image.size


def test_histogram_overlays_show_each_neurons_normalised_histograms_and_emd(dnas, tmp_path):
    urban, bsd = dnas
    neurons = [("stem", 3), ("head", 100), ("blocks.3.0", 7)]
    figure = plots.plot_neuron_histograms(urban, bsd, neurons, tmp_path / "h.png", labels=("urban", "bsd"))
    axes = figure.axes[:3]
    for axis, (layer, index) in zip(axes, neurons):
        emd = float(EMD(urban, bsd, use_neurons_from_layer=layer, use_neuron_index=index))
        assert axis.get_title() == f"{layer} #{index}  EMD {emd:.3g}"
        for line in axis.get_lines():
            assert line.get_ydata().sum() == pytest.approx(1.0)
        assert [line.get_label() for line in axis.get_lines()] == ["urban", "bsd"]
    assert _png_size(tmp_path / "h.png")[0] > 300


def test_the_area_between_each_neurons_plotted_cumulative_distributions_is_its_emd(dnas, tmp_path):
    urban, bsd = dnas
    neurons = [("stem", 3), ("head", 100), ("blocks.3.0", 7)]
    figure = plots.plot_neuron_cdfs(urban, bsd, neurons, tmp_path / "c.png", labels=("urban", "bsd"))
    for axis, (layer, index) in zip(figure.axes[:3], neurons):
        emd = float(EMD(urban, bsd, use_neurons_from_layer=layer, use_neuron_index=index))
        assert axis.get_title() == f"{layer} #{index}  EMD {emd:.3g} (shaded)"
        first, second = axis.get_lines()
        assert [first.get_label(), second.get_label()] == ["urban", "bsd"] and first.get_drawstyle() == "steps-post"
        x, y1, y2 = first.get_xdata(), first.get_ydata(), second.get_ydata()
        assert np.array_equal(x, second.get_xdata()) and y1[-1] == pytest.approx(1.0) and y2[-1] == pytest.approx(1.0)
        area = float(np.sum(np.abs(y1[:-1] - y2[:-1]) * np.diff(x)))  # each step holds from one edge to the next
        assert area == pytest.approx(emd, rel=1e-9)
        (shaded,) = axis.collections  # the fill between the two curves
        assert shaded.get_paths() and axis.get_xlim() == (0.0, urban.hist_nb_bins)
        assert [label.get_text() for label in axis.get_xticklabels()] == ["-1", "-0.5", "0", "0.5", "1"]
    assert _png_size(tmp_path / "c.png")[0] > 300
    titled = plots.plot_neuron_cdfs(urban, bsd, neurons[:1], titles=["stem #3, 4.2 x its floor"])
    assert titled.axes[0].get_title() == "stem #3, 4.2 x its floor"
    with pytest.raises(ValueError, match="no neurons to plot"):
        plots.plot_neuron_cdfs(urban, bsd, [])


def test_layer_profile_has_one_point_per_neuron_and_a_mean_per_layer(dnas, tmp_path):
    urban, bsd = dnas
    per_layer = EMD(urban, bsd, return_neuron_wise=True)
    figure = plots.plot_layer_profile(per_layer, tmp_path / "p.svg", weights={k: v * 0 + 1 for k, v in per_layer.items()})
    from matplotlib.collections import LineCollection, PathCollection

    collections = figure.axes[0].collections
    assert sum(len(c.get_offsets()) for c in collections if isinstance(c, PathCollection)) == urban.num_neurons
    assert sum(isinstance(c, LineCollection) for c in collections) == len(urban.layers)  # one mean line per layer
    assert [label.get_text() for label in figure.axes[0].get_xticklabels()] == urban.layers
    assert len(figure.axes) == 2
    assert (tmp_path / "p.svg").read_text().startswith("<?xml")


def test_ranked_grid_distance_matrix_sample_size_and_pr_curves(processor, data_dir, dnas, tmp_path):
    urban, _ = dnas
    files = image_files(data_dir / "bsd100", 3) + image_files(data_dir / "urban100", 12)[9:]
    ranking = rank_images(processor.make_vdna(files, distribution_name="image-histogram-1000", verbose=False), urban)
    figure = plots.plot_ranked_images(ranking, tmp_path / "grid.png", per_row=3)
    titles = [axis.get_title() for axis in figure.axes if axis.get_title()]
    assert titles[0] == f"#1  {ranking[0].distance:.3g}"
    assert titles[-1] == f"#6  {ranking[-1].distance:.3g}"
    matrix = {"a": {"a": 0.0, "b": 2.5}, "b": {"a": 2.5, "b": 0.0}}
    heat = plots.plot_distance_matrix(matrix, tmp_path / "m.png")
    assert sorted(text.get_text() for text in heat.axes[0].texts) == ["0", "0", "2.5", "2.5"]
    curve = SampleSizeCurve("emd", [10, 100], np.array([[2.0, 1.0], [4.0, 1.0]]))
    sizes = plots.plot_sample_size_curves({"dna-emd": curve}, tmp_path / "s.png")
    assert list(sizes.axes[0].lines[0].get_ydata()) == [3.0, 1.0]  # means relative to the last
    precision, recall, _ = precision_recall_curve([0.1, 0.2, 0.3], [True, False, True])
    pr = plots.plot_precision_recall({"dna-emd": (precision, recall)}, tmp_path / "pr.png")
    assert pr.axes[0].get_legend().get_texts()[0].get_text() == "dna-emd (AUC 0.833)"
    for name in ("grid.png", "m.png", "s.png", "pr.png"):
        width, height = _png_size(tmp_path / name)
        assert width > 200 and height > 200


def test_plot_errors(dnas):
    urban, bsd = dnas
    with pytest.raises(ValueError, match="no neurons to plot"):
        plots.plot_neuron_histograms(urban, bsd, [])
    with pytest.raises(ValueError, match="the ranking is empty"):
        plots.plot_ranked_images([])
    with pytest.raises(ValueError, match="rows must be among"):
        plots.plot_ranked_images([object()], rows=("top",))
    with pytest.raises(ValueError, match="no layers to plot"):
        plots.plot_layer_shares({})


def test_layer_shares_beside_their_noise_floors_and_sample_size_floors(tmp_path):
    layers = {"stem": LayerShare(32, 4.0, 0.25, (3.0, 5.0), 1.5, 0.5, 0.01), "head": LayerShare(1280, 2.0, 0.75, (1.0, 3.0), 1.0, 0.2, 0.02)}
    figure = plots.plot_layer_shares(layers, tmp_path / "shares.png")
    values, shares = figure.axes
    assert [bar.get_height() for bar in values.patches] == [4.0, 2.0]
    assert [bar.get_height() for bar in shares.patches] == [25.0, 75.0]
    floors = values.containers[-1]  # the noise floors' error bars
    assert list(floors.lines[0].get_ydata()) == [1.5, 1.0]
    assert [label.get_text() for label in shares.get_xticklabels()] == ["stem", "head"]
    unmeasured = plots.plot_layer_shares({name: LayerShare(part.neurons, part.value, part.share) for name, part in layers.items()})
    assert len(unmeasured.axes[0].containers) == 1  # the bars only: no noise floor was measured
    curve = SampleSizeCurve("emd", [10, 100], np.array([[2.0, 1.0], [4.0, 1.0]]))
    floor = SampleSizeCurve("emd", [10, 100], np.array([[1.0, 0.5], [1.0, 0.5]]))
    drawn = plots.plot_sample_size_curves({"dna-emd": curve}, tmp_path / "s.png", floors={"dna-emd": floor})
    dashed = [line for line in drawn.axes[0].lines if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and list(dashed[0].get_ydata()) == [1.0, 0.5]  # on the curve's scale: its last mean is 1
    assert [text.get_text() for text in drawn.axes[0].get_legend().get_texts()] == ["dna-emd noise floor", "dna-emd"]
    assert _png_size(tmp_path / "shares.png")[0] > 300
