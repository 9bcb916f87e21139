"""Transfer prediction: eq. 8 on the paper's Tables 7 to 11."""

from __future__ import annotations

from itertools import groupby, permutations, product

import numpy as np
import pytest
from helpers import hist_dna

from vdna import EMD
from vdna.apps.transfer import distance_matrix, rank_sources, ranking_discrepancy, scored_distances

# Table 7a of the paper: mIoU of HRNet-W48 trained on a source, evaluated on a target.
MIOU = {
    "ADE20K": {"ADE20K": 45.3, "COCO": 19.6, "SUN-RGBD": 7.1, "Mapillary": 6.2, "BDD100K": 4.1, "Cityscapes": 3.1, "IDD": 3.1},
    "BDD100K": {"BDD100K": 63.2, "Mapillary": 60.2, "Cityscapes": 45.0, "COCO": 44.1, "IDD": 43.7, "ADE20K": 41.5, "SUN-RGBD": 2.2},
    "Cityscapes": {"Cityscapes": 77.6, "Mapillary": 69.7, "BDD100K": 60.9, "IDD": 50.2, "COCO": 46.2, "ADE20K": 44.3, "SUN-RGBD": 2.6},
    "COCO": {"COCO": 52.6, "ADE20K": 14.5, "Mapillary": 6.7, "BDD100K": 3.7, "SUN-RGBD": 3.3, "Cityscapes": 3.1, "IDD": 3.1},
    "IDD": {"IDD": 64.8, "Mapillary": 48.2, "BDD100K": 33.9, "Cityscapes": 31.3, "COCO": 31.0, "ADE20K": 27.0, "SUN-RGBD": 1.0},
    "Mapillary": {"Mapillary": 56.2, "COCO": 26.7, "ADE20K": 24.3, "IDD": 24.3, "BDD100K": 24.0, "Cityscapes": 22.4, "SUN-RGBD": 1.1},
    "SUN-RGBD": {"SUN-RGBD": 43.9, "ADE20K": 35.3, "COCO": 29.4, "IDD": 0.6, "BDD100K": 0.2, "Cityscapes": 0.2, "Mapillary": 0.2},
}
# Table 7b: dna-emd (Mugs ViT-B/16, last layer) between each source and each target.
DNA_EMD = {
    "ADE20K": {"ADE20K": 0.84, "COCO": 9.17, "SUN-RGBD": 12.66, "Mapillary": 21.18, "IDD": 21.57, "BDD100K": 22.58, "Cityscapes": 26.17},
    "BDD100K": {"BDD100K": 3.61, "Mapillary": 8.91, "IDD": 13.03, "Cityscapes": 17.18, "ADE20K": 22.56, "COCO": 23.88, "SUN-RGBD": 27.96},
    "Cityscapes": {"Cityscapes": 3.18, "Mapillary": 15.9, "BDD100K": 17.13, "IDD": 17.15, "ADE20K": 25.61, "COCO": 25.73, "SUN-RGBD": 30.47},
    "COCO": {"COCO": 0.64, "ADE20K": 9.2, "SUN-RGBD": 15.4, "Mapillary": 21.79, "IDD": 22.36, "BDD100K": 23.86, "Cityscapes": 26.41},
    "IDD": {"IDD": 4.48, "Mapillary": 12.88, "BDD100K": 13.54, "Cityscapes": 18.95, "ADE20K": 22.53, "COCO": 23.33, "SUN-RGBD": 27.51},
    "Mapillary": {"Mapillary": 0.85, "BDD100K": 9.72, "IDD": 11.52, "Cityscapes": 16.19, "ADE20K": 21.26, "COCO": 21.89, "SUN-RGBD": 26.95},
    "SUN-RGBD": {"SUN-RGBD": 2.22, "ADE20K": 12.71, "COCO": 15.57, "IDD": 26.92, "Mapillary": 27.01, "BDD100K": 27.96, "Cityscapes": 31.08},
}

# Table 8b: dna-emd (HRNet-W48 trained on all domains, last layer). Rounded values tie, e.g. for BDD100K
# and IDD; each row lists its sources in the published ranked order, ties included.
HRNET_ALL_EMD = {
    "ADE20K": {"ADE20K": 0.02, "SUN-RGBD": 0.3, "BDD100K": 0.32, "IDD": 0.51, "COCO": 0.6, "Mapillary": 0.68, "Cityscapes": 0.81},
    "BDD100K": {"BDD100K": 0.08, "IDD": 0.31, "SUN-RGBD": 0.34, "ADE20K": 0.34, "Mapillary": 0.51, "COCO": 0.52, "Cityscapes": 0.66},
    "Cityscapes": {"Cityscapes": 0.04, "Mapillary": 0.35, "COCO": 0.37, "IDD": 0.46, "BDD100K": 0.7, "SUN-RGBD": 0.75, "ADE20K": 0.82},
    "COCO": {"COCO": 0.01, "Mapillary": 0.27, "IDD": 0.31, "Cityscapes": 0.37, "SUN-RGBD": 0.54, "BDD100K": 0.56, "ADE20K": 0.61},
    "IDD": {"IDD": 0.07, "Mapillary": 0.32, "COCO": 0.32, "BDD100K": 0.35, "Cityscapes": 0.45, "SUN-RGBD": 0.47, "ADE20K": 0.52},
    "Mapillary": {"Mapillary": 0.02, "COCO": 0.26, "IDD": 0.33, "Cityscapes": 0.34, "BDD100K": 0.56, "SUN-RGBD": 0.63, "ADE20K": 0.7},
    "SUN-RGBD": {"SUN-RGBD": 0.03, "ADE20K": 0.3, "BDD100K": 0.31, "IDD": 0.47, "COCO": 0.54, "Mapillary": 0.63, "Cityscapes": 0.75},
}
# Table 9b: dna-emd (HRNet-W48 trained on the validation domains, last layer), published order.
HRNET_VAL_EMD = {
    "ADE20K": {"ADE20K": 0.01, "COCO": 0.1, "SUN-RGBD": 0.14, "BDD100K": 0.21, "IDD": 0.23, "Mapillary": 0.24, "Cityscapes": 0.37},
    "BDD100K": {"BDD100K": 0.04, "IDD": 0.11, "Mapillary": 0.11, "Cityscapes": 0.15, "ADE20K": 0.18, "COCO": 0.24, "SUN-RGBD": 0.28},
    "Cityscapes": {"Cityscapes": 0.02, "IDD": 0.15, "BDD100K": 0.19, "Mapillary": 0.24, "SUN-RGBD": 0.31, "ADE20K": 0.34, "COCO": 0.37},
    "COCO": {"COCO": 0.0, "ADE20K": 0.1, "SUN-RGBD": 0.12, "BDD100K": 0.13, "Mapillary": 0.16, "IDD": 0.18, "Cityscapes": 0.21},
    "IDD": {"IDD": 0.02, "BDD100K": 0.08, "Cityscapes": 0.1, "Mapillary": 0.1, "ADE20K": 0.11, "COCO": 0.11, "SUN-RGBD": 0.12},
    "Mapillary": {"Mapillary": 0.0, "BDD100K": 0.04, "IDD": 0.05, "ADE20K": 0.06, "COCO": 0.07, "SUN-RGBD": 0.09, "Cityscapes": 0.12},
    "SUN-RGBD": {"SUN-RGBD": 0.03, "COCO": 0.17, "IDD": 0.17, "ADE20K": 0.19, "Mapillary": 0.21, "BDD100K": 0.22, "Cityscapes": 0.27},
}
# Table 10b: dna-fd (Mugs ViT-B/16, last layer), published order (ADE20K's 0.32 ties three sources).
DNA_FD = {
    "ADE20K": {"ADE20K": 0.0, "COCO": 0.11, "SUN-RGBD": 0.15, "IDD": 0.32, "BDD100K": 0.32, "Mapillary": 0.32, "Cityscapes": 0.48},
    "BDD100K": {"BDD100K": 0.01, "Mapillary": 0.06, "IDD": 0.08, "Cityscapes": 0.17, "ADE20K": 0.32, "COCO": 0.39, "SUN-RGBD": 0.52},
    "Cityscapes": {"Cityscapes": 0.01, "Mapillary": 0.13, "IDD": 0.16, "BDD100K": 0.17, "COCO": 0.43, "ADE20K": 0.47, "SUN-RGBD": 0.6},
    "COCO": {"COCO": 0.0, "ADE20K": 0.12, "SUN-RGBD": 0.23, "Mapillary": 0.31, "IDD": 0.34, "BDD100K": 0.39, "Cityscapes": 0.44},
    "IDD": {"IDD": 0.01, "BDD100K": 0.09, "Mapillary": 0.09, "Cityscapes": 0.2, "ADE20K": 0.34, "COCO": 0.37, "SUN-RGBD": 0.51},
    "Mapillary": {"Mapillary": 0.0, "BDD100K": 0.07, "IDD": 0.07, "Cityscapes": 0.14, "COCO": 0.31, "ADE20K": 0.33, "SUN-RGBD": 0.5},
    "SUN-RGBD": {"SUN-RGBD": 0.0, "ADE20K": 0.16, "COCO": 0.24, "IDD": 0.49, "Mapillary": 0.51, "BDD100K": 0.52, "Cityscapes": 0.62},
}
# Table 11b: fd (Mugs ViT-B/16, last layer), published order.
FD = {
    "ADE20K": {"ADE20K": 19.37, "COCO": 233.41, "SUN-RGBD": 279.51, "Mapillary": 398.31, "BDD100K": 401.76, "IDD": 416.94, "Cityscapes": 522.29},
    "BDD100K": {"BDD100K": 31.16, "Mapillary": 101.67, "IDD": 141.84, "Cityscapes": 215.55, "ADE20K": 423.12, "COCO": 508.35, "SUN-RGBD": 645.3},
    "Cityscapes": {"Cityscapes": 40.74, "Mapillary": 196.74, "IDD": 225.68, "BDD100K": 232.53, "COCO": 543.35, "ADE20K": 550.05, "SUN-RGBD": 701.34},
    "COCO": {"COCO": 9.68, "ADE20K": 227.36, "SUN-RGBD": 389.04, "Mapillary": 417.86, "IDD": 457.03, "BDD100K": 476.86, "Cityscapes": 509.45},
    "IDD": {"IDD": 54.03, "BDD100K": 160.51, "Mapillary": 161.9, "Cityscapes": 255.92, "ADE20K": 470.54, "COCO": 519.04, "SUN-RGBD": 656.16},
    "Mapillary": {"Mapillary": 9.78, "BDD100K": 96.19, "IDD": 123.14, "Cityscapes": 171.68, "ADE20K": 401.26, "COCO": 428.07, "SUN-RGBD": 630.26},
    "SUN-RGBD": {"SUN-RGBD": 71.23, "ADE20K": 332.54, "COCO": 460.08, "IDD": 638.82, "BDD100K": 652.68, "Mapillary": 660.09, "Cityscapes": 704.86},
}


def test_table_7_gives_the_papers_discrepancy():
    assert ranking_discrepancy(MIOU, DNA_EMD) == pytest.approx(37.2 / 49)  # the sum of Table 7d over 49 entries
    assert round(ranking_discrepancy(MIOU, DNA_EMD), 2) == 0.76


def in_performance_order(performance, distances):
    """``distances`` with each target's row rewritten in the order of its ``performance`` row."""
    return {target: {source: distances[target][source] for source in row}
            for target, row in performance.items()}


def tie_orders(row):
    """The orders of ``row``'s keys ranked by value: every permutation of each group of equal values."""
    groups = [list(group) for _, group in groupby(sorted(row, key=row.__getitem__), key=row.__getitem__)]
    for order in product(*(permutations(group) for group in groups)):
        yield {source: row[source] for group in order for source in group}


def over_tie_orders(performance, distances):
    """The discrepancy (ties in the given order) for every combination of the targets' tie orders."""
    targets = list(distances)
    rows = product(*(list(tie_orders(distances[target])) for target in targets))
    return [ranking_discrepancy(performance, dict(zip(targets, order))) for order in rows]


# distances, Table 3's value, sum of the published (d) cells, and rounded discrepancies
# with ties ordered by performance and with ties="expected"
PAPER_TABLES = [
    pytest.param(DNA_EMD, 0.76, 37.2, 0.76, 0.76, id="table-7-mugs-dna-emd"),
    pytest.param(HRNET_ALL_EMD, 9.40, 460.4, 9.40, 9.69, id="table-8-hrnet-all-domains-dna-emd"),
    pytest.param(HRNET_VAL_EMD, 6.85, 335.8, 5.96, 6.41, id="table-9-hrnet-validation-domains-dna-emd"),
    pytest.param(DNA_FD, 1.79, 87.6, 1.08, 1.45, id="table-10-mugs-dna-fd"),
    pytest.param(FD, 1.66, 81.4, 1.66, 1.66, id="table-11-mugs-fd"),
]


@pytest.mark.parametrize("distances, published, d_sum, by_performance, expected", PAPER_TABLES)
def test_tables_7_to_11_give_the_papers_discrepancies(distances, published, d_sum, by_performance, expected):
    assert all(list(row.values()) == sorted(row.values()) for row in distances.values())  # ranked rows
    assert round(ranking_discrepancy(MIOU, distances), 2) == published
    assert ranking_discrepancy(MIOU, distances) == pytest.approx(d_sum / 49)  # the (d) table's mean
    # ties broken by the performance being predicted: what the published tables do not do
    assert round(ranking_discrepancy(MIOU, in_performance_order(MIOU, distances)), 2) == by_performance
    assert round(ranking_discrepancy(MIOU, distances, ties="expected"), 2) == expected


@pytest.mark.parametrize("distances, published, d_sum, by_performance, expected", PAPER_TABLES)
def test_the_order_of_the_performance_rows_does_not_matter(
    distances, published, d_sum, by_performance, expected
):
    shuffled = {target: dict(reversed(row.items())) for target, row in reversed(MIOU.items())}
    for ties in ("given", "expected"):
        assert ranking_discrepancy(shuffled, distances, ties=ties) == pytest.approx(
            ranking_discrepancy(MIOU, distances, ties=ties)
        )


@pytest.mark.parametrize("distances, published, d_sum, by_performance, expected", PAPER_TABLES)
def test_expected_ties_are_the_mean_over_every_tie_order_of_the_papers_tables(
    distances, published, d_sum, by_performance, expected
):
    values = over_tie_orders(MIOU, distances)
    assert ranking_discrepancy(MIOU, distances, ties="expected") == pytest.approx(np.mean(values))
    if len(values) == 1:  # no ties (Tables 7 and 11): both modes agree
        assert ranking_discrepancy(MIOU, distances, ties="expected") == ranking_discrepancy(MIOU, distances)


# Hand-made tables: the keys of each distance row are in the order that breaks its ties.
TIED_PERFORMANCE = {"t": {"a": 50.0, "b": 40.0, "c": 10.0}, "u": {"a": 9.0, "b": 6.0, "c": 3.0, "d": 0.0}}
TIED_DISTANCES = {"t": {"b": 1.0, "c": 2.0, "a": 2.0}, "u": {"d": 0.5, "c": 0.5, "a": 0.5, "b": 0.7}}


def test_tied_distances_keep_their_own_order():
    # reference performances: t 50, 40, 10; u 9, 6, 3, 0
    # t ranked b, c, a: 40, 10, 50 -> 10 + 30 + 40 = 80; u ranked d, c, a, b: 0, 3, 9, 6 -> 9 + 3 + 6 + 6 = 24
    assert ranking_discrepancy(TIED_PERFORMANCE, TIED_DISTANCES) == pytest.approx((80 + 24) / 7)
    assert ranking_discrepancy(TIED_PERFORMANCE, TIED_DISTANCES, ties="given") == pytest.approx((80 + 24) / 7)
    # ordering ties by performance (t: b, a, c; u: a, c, d, b) would read better:
    # (10 + 10 + 0) + (0 + 3 + 3 + 6)
    biased = in_performance_order(TIED_PERFORMANCE, TIED_DISTANCES)
    assert ranking_discrepancy(TIED_PERFORMANCE, biased) == pytest.approx((20 + 12) / 7)
    # the rows scored keep the distances' order, without the sources performance does not score
    scored = scored_distances(TIED_PERFORMANCE, {**TIED_DISTANCES, "t": {"x": 0.0, **TIED_DISTANCES["t"]}})
    assert list(scored["t"]) == ["b", "c", "a"] and list(scored["u"]) == ["d", "c", "a", "b"]


def test_expected_ties():
    # t: rank 1 is b: |50 - 40| = 10; ranks 2-3 hold c or a (10, 50), each with probability 1/2:
    #    (|40 - 10| + |40 - 50|) / 2 + (|10 - 10| + |10 - 50|) / 2 = 20 + 20 = 40
    # u: ranks 1-3 hold d, c or a (0, 3, 9), each with probability 1/3:
    #    (9 + 6 + 0) / 3 + (6 + 3 + 3) / 3 + (3 + 0 + 6) / 3 = 5 + 4 + 3 = 12; rank 4 is b: |0 - 6| = 6
    expected = (10 + 40 + 12 + 6) / 7
    assert ranking_discrepancy(TIED_PERFORMANCE, TIED_DISTANCES, ties="expected") == pytest.approx(expected)
    values = over_tie_orders(TIED_PERFORMANCE, TIED_DISTANCES)
    assert len(values) == 2 * 6 and np.mean(values) == pytest.approx(expected)
    # the result does not depend on the order of the distance rows' keys
    biased = in_performance_order(TIED_PERFORMANCE, TIED_DISTANCES)
    assert ranking_discrepancy(TIED_PERFORMANCE, biased, ties="expected") == pytest.approx(expected)


def test_bad_ties():
    for ties in ("random", "Given", None):
        with pytest.raises(ValueError, match=r"ties must be one of \['given', 'expected'\], not "):
            ranking_discrepancy(MIOU, DNA_EMD, ties=ties)

def test_perfect_and_reversed_rankings():
    perfect = {target: {source: -value for source, value in row.items()} for target, row in MIOU.items()}
    assert ranking_discrepancy(MIOU, perfect) == 0.0
    reversed_distances = {target: dict(row) for target, row in MIOU.items()}
    worst = ranking_discrepancy(MIOU, reversed_distances)
    expected = np.mean([abs(a - b) for row in MIOU.values() for a, b in zip(sorted(row.values(), reverse=True), sorted(row.values()))])
    assert worst == pytest.approx(expected) and worst > 10


def test_ranking_and_errors():
    assert rank_sources({"a": 3.0, "b": 1.0, "c": 2.0}, higher_is_better=False) == ["b", "c", "a"]
    with pytest.raises(ValueError, match=r"distances have no row for the targets \['BDD100K', 'COCO', "):
        ranking_discrepancy(MIOU, {"ADE20K": DNA_EMD["ADE20K"]})
    broken = {target: dict(row) for target, row in DNA_EMD.items()}
    del broken["COCO"]["IDD"]
    with pytest.raises(ValueError, match=r"target 'COCO': distances have no value for the sources \['IDD'\], which performance"):
        ranking_discrepancy(MIOU, broken)


def test_distance_matrix_of_dnas():
    dnas = {"a": hist_dna({"l": [[4, 0, 0]]}), "b": hist_dna({"l": [[0, 4, 0]]}), "c": hist_dna({"l": [[0, 0, 4]]})}
    matrix = distance_matrix(dnas, EMD)
    assert matrix["a"] == {"a": 0.0, "b": 1.0, "c": 2.0}
    assert rank_sources(matrix["c"], higher_is_better=False) == ["c", "b", "a"]


def test_the_discrepancy_takes_the_distance_matrix_as_returned():
    dnas = {"a": hist_dna({"l": [[4, 0, 0]]}), "b": hist_dna({"l": [[0, 4, 0]]}), "c": hist_dna({"l": [[0, 0, 4]]})}
    matrix = distance_matrix(dnas, EMD)
    performance = {"a": {"b": 60.0, "c": 40.0}, "b": {"a": 10.0, "c": 30.0}, "c": {"a": 5.0, "b": 20.0}}
    # a: b closer and better (0); b: a and c tie at 1, a first, c better (|30 - 10| twice); c: b closer and better (0)
    assert ranking_discrepancy(performance, matrix) == pytest.approx((0 + 0 + 20 + 20 + 0 + 0) / 6)
    without_diagonal = {target: {s: d for s, d in row.items() if s != target} for target, row in matrix.items()}
    assert ranking_discrepancy(performance, matrix) == ranking_discrepancy(performance, without_diagonal)
    with_self = {target: {**row, target: 100.0} for target, row in performance.items()}  # self-transfer scored: kept
    assert ranking_discrepancy(with_self, matrix) == pytest.approx(40 / 9)
    assert ranking_discrepancy({"a": performance["a"]}, matrix) == 0.0  # targets and sources performance does not score
