"""The HTML report, rendered in headless Chromium: what the page shows is what the DNAs say."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import image_files, missing

from vdna.apps.retrieval import rank_images
from vdna.distances import EMD, FD, NFD
from vdna.neurons import rank_neurons
from vdna.report import make_report
from vdna.stats import compare_sets

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def sets(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("sets")
    for name, folder in (("urban", "urban100"), ("bsd", "bsd100")):
        (root / name).mkdir()
        for path in image_files(data_dir / folder, 6):
            (root / name / path.name).symlink_to(path)
    return root / "urban", root / "bsd"


@pytest.fixture(scope="module")
def report(sets, processor, tmp_path_factory):
    output = tmp_path_factory.mktemp("report") / "report.html"
    make_report(sets[0], sets[1], output, processor=processor, top_neurons=4, images_shown=3, verbose=False)
    return output


@pytest.fixture(scope="module")
def page(report):
    if CHROMIUM is None:
        missing("Chromium is not installed (.ci/run installs Debian's chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed (it is among the test dependencies)")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )
        tab = browser.new_page(viewport={"width": 1200, "height": 900})
        tab.goto(report.as_uri())
        yield tab
        browser.close()


def test_headline_distances_are_those_of_the_dnas(page, sets, dna_of):
    urban, bsd = dna_of(sets[0]), dna_of(sets[1])
    rows = dict(
        row.split("\t") for row in page.locator("table.distances").inner_text().strip().splitlines()
    )
    assert float(rows["dna-emd (mean over all neurons)"]) == pytest.approx(float(EMD(urban, bsd)), rel=1e-5)
    gauss = [dna_of(s, distribution_name="gaussian") for s in sets]
    layer = [dna_of(s, distribution_name="layer-gaussian") for s in sets]
    assert float(rows["dna-fd (mean over all neurons)"]) == pytest.approx(float(NFD(*gauss)), rel=1e-5)
    assert float(rows["fd (mean over layers)"]) == pytest.approx(float(FD(*layer)), rel=1e-5)
    assert float(rows["fd (last layer, head)"]) == pytest.approx(float(FD(*layer, use_neurons_from_layer="head")), rel=1e-5)
    assert page.title() == "Visual DNA: urban vs bsd"
    assert "urban: 6 images" in page.locator("ul.sets").inner_text()


def test_every_figure_and_thumbnail_is_rendered(page):
    images = page.evaluate("Array.from(document.images).map(i => [i.className, i.alt, i.complete, i.naturalWidth])")
    kinds = {kind: [image for image in images if image[0] == kind] for kind in ("figure", "thumb", "crop")}
    assert len(kinds["figure"]) == 2 + 4 and len(kinds["thumb"]) == 4 * 3 and len(kinds["crop"]) == 4 * 2 * 3
    assert len(images) == sum(len(found) for found in kinds.values())
    assert all(complete and width > 100 for kind, _, complete, width in images if kind != "crop")
    assert all(complete and width >= 3 for _, _, complete, width in kinds["crop"])  # a stem neuron sees 3 x 3 pixels


@pytest.fixture(scope="module")
def statistics(sets, dna_of):
    """What the report's statistics should be: compare_sets of both sets' per-image DNAs, as the report runs it."""
    return compare_sets(*(dna_of(s, distribution_name="image-histogram-1000") for s in sets), resamples=200, permutations=200,
                        units=True)


def test_the_page_opens_with_the_statistics_of_compare_sets(page, statistics):
    assert page.locator("h2").first.inner_text() == "How sure is the difference?"
    assert page.locator("p.reading").inner_text() == statistics.reading()
    header, values = (row.split("\t") for row in page.locator("table.statistics").inner_text().strip().splitlines())
    assert header == ["metric", "value", "estimate", "95% CI", "noise floor", "p-value"]  # one row, read at a glance
    rows = dict(zip(header, values))
    assert rows["metric"] == "dna-emd" and float(rows["value"]) == pytest.approx(statistics.value, rel=1e-5)
    assert float(rows["estimate"]) == pytest.approx(statistics.estimate, rel=1e-5)
    assert statistics.ci[0] <= statistics.estimate <= statistics.ci[1]
    table = page.locator("table.statistics")
    shown = [float(table.locator(f".{name}").inner_text()) for name in ("low", "high", "floor", "spread")]
    expected = [*statistics.ci, statistics.noise_floor, statistics.noise_floor_spread]
    assert shown == pytest.approx(expected, rel=1e-3) and statistics.ci[0] < statistics.ci[1]
    assert float(rows["p-value"]) == pytest.approx(statistics.p_value, rel=1e-3)
    assert "excess" not in page.locator("body").inner_text()
    assert "6 vs 6 images" in page.locator("p.reading + p.note").inner_text()


def test_where_the_difference_lives_gives_each_layers_share_and_noise_floor(page, statistics):
    table = page.locator("table.layers").inner_text().strip().splitlines()
    assert table[0].split("\t") == ["layer", "neurons", "mean EMD", "max EMD", "share of the total", "estimate", "95% CI",
                                    "noise floor", "p-value"]
    assert [row.split("\t")[0] for row in table[1:]] == list(statistics.layers)  # early to late
    for row in table[1:]:
        layer, _, _, _, share, estimate, interval, floor, p_value = row.split("\t")
        part = statistics.layers[layer]
        assert share == f"{100 * part.share:.1f}%" and interval == f"{part.ci[0]:.4g} to {part.ci[1]:.4g}"
        assert floor == f"{part.noise_floor:.4g} ± {part.noise_floor_spread:.3g}"
        assert estimate == f"{part.estimate:.4g}" and p_value == f"{part.p_value:.3g}"
    alt = "each layer's EMD beside its noise floor, and its share of the total"
    assert page.locator(f'img.figure[alt="{alt}"]').count() == 1


def test_image_rows_show_the_ranking_of_each_set_against_the_other(page, sets, dna_of):
    urban_images = dna_of(sets[0], distribution_name="image-histogram-1000")
    bsd = dna_of(sets[1])
    ranking = rank_images(urban_images, bsd)
    headings = page.locator("h3:not(.layer)").all_inner_texts()
    assert headings == ["closest to bsd", "furthest from bsd", "closest to urban", "furthest from urban"]
    closest = page.locator(".row").nth(0).locator("figcaption").all_inner_texts()
    assert [caption.splitlines()[1] for caption in closest] == [Path(item.name).name for item in ranking[:3]]
    assert closest[0].startswith(f"#1 · {ranking[0].distance:.4g}")
    furthest = page.locator(".row").nth(1).locator("figcaption").all_inner_texts()
    assert furthest[-1].startswith(f"#6 · {ranking[-1].distance:.4g}")


def test_most_different_neurons_and_layer_table(page, sets, dna_of):
    urban, bsd = dna_of(sets[0]), dna_of(sets[1])
    assert "The 4 most different neurons" in page.locator("h2").all_inner_texts()
    table = page.locator("table.layers").inner_text().strip().splitlines()
    assert len(table) == 1 + len(urban.layers)
    per_layer = EMD(urban, bsd, return_neuron_wise=True)
    head = table[-1].split("\t")
    assert head[:2] == ["head", "1280"] and float(head[2]) == pytest.approx(float(per_layer["head"].mean()), rel=1e-3)
    assert rank_neurons(urban, bsd)[0].distance == pytest.approx(max(float(v.max()) for v in per_layer.values()))


def test_neuron_section_lists_the_top_neurons_by_layer_with_the_crops_of_both_sets(page, sets, dna_of, statistics):
    urban = dna_of(sets[0])
    bsd = dna_of(sets[1])
    per_neuron = EMD(urban, bsd, return_neuron_wise=True)
    top = statistics.ranked_units()[:4]  # furthest above their own noise floor
    assert rank_neurons(urban, bsd)[0].index not in [n.index for n in top if n.layer == rank_neurons(urban, bsd)[0].layer]
    layers = list(urban.layers)
    expected = sorted(top, key=lambda neuron: layers.index(neuron.layer))  # by layer; most different first within one
    sections = page.locator("section.neuron")
    shown = [(s.get_attribute("data-layer"), int(s.get_attribute("data-index"))) for s in sections.all()]
    assert shown == [(n.layer, n.index) for n in expected]
    assert page.locator("h3.layer").all_inner_texts() == list(dict.fromkeys(n.layer for n in expected))
    for section, neuron in zip(sections.all(), expected):
        layer, index = neuron.layer, neuron.index
        assert float(section.locator(".emd").inner_text()) == pytest.approx(float(per_neuron[layer][index]), rel=1e-5)
        assert float(section.locator(".estimate").inner_text()) == pytest.approx(neuron.estimate, rel=1e-5)
        assert float(section.locator(".floor").inner_text()) == pytest.approx(neuron.noise_floor, rel=1e-5)
        assert float(section.locator(".above").inner_text()) == pytest.approx(neuron.above_noise, rel=1e-2)
        assert section.locator("img.figure").get_attribute("alt") == f"cumulative distributions of {layer} #{index}"
        sets_shown = section.locator(".set")
        assert sets_shown.locator("h5").all_inner_texts() == ["urban: highest activations", "bsd: highest activations"]
        for number in range(2):
            captions = sets_shown.nth(number).locator("figcaption").all_inner_texts()
            assert sets_shown.nth(number).locator("img.crop").count() == len(captions) == 3
            activations = [float(caption.splitlines()[0]) for caption in captions]
            assert activations == sorted(activations, reverse=True)


def test_report_from_saved_histogram_dnas_has_no_image_rows(processor, dna_of, sets, tmp_path):
    for name, source in zip("ab", sets):
        dna_of(source).save(tmp_path / name)
    output = make_report(tmp_path / "a", tmp_path / "b", tmp_path / "r.html", processor=processor, top_neurons=2)
    text = output.read_text()
    assert "dna-emd (mean over all neurons)" in text and "dna-fd" not in text and "<h3>" not in text
    assert text.count('<section class="neuron"') == 2 and 'class="crop"' not in text
    assert "a: given as saved DNAs, so there are no images to show." in text
    assert "b: given as saved DNAs, so there are no images to show." in text
    assert "a, b: given as DNAs of a whole set, which cannot be resampled" in text and 'class="statistics"' not in text
    assert "<th>share of the total</th></tr>" in text and "noise floor</th>" not in text


def test_report_errors(processor, dna_of, sets, tmp_path):
    with pytest.raises(ValueError, match="top_neurons and images_shown must be positive"):
        make_report(sets[0], sets[1], tmp_path / "r.html", processor=processor, top_neurons=0)
    dna_of(sets[0], distribution_name="gaussian").save(tmp_path / "g")
    with pytest.raises(ValueError, match="needs histogram or image-histogram DNAs, got a gaussian DNA"):
        make_report(tmp_path / "g", sets[1], tmp_path / "r.html", processor=processor)
    for name, source in zip("ab", sets):
        dna_of(source, distribution_name="image-histogram-1000").save(tmp_path / name)
    with pytest.raises(ValueError, match="permutations must be a positive integer, got 0"):
        make_report(tmp_path / "a", tmp_path / "b", tmp_path / "r.html", processor=processor, permutations=0)
