"""Transfer prediction: eq. 8 on the paper's Table 7."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import hist_dna

from vdna import EMD
from vdna.apps.transfer import distance_matrix, rank_sources, ranking_discrepancy

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


def test_table_7_gives_the_papers_discrepancy():
    assert ranking_discrepancy(MIOU, DNA_EMD) == pytest.approx(37.2 / 49)  # the sum of Table 7d over 49 entries
    assert round(ranking_discrepancy(MIOU, DNA_EMD), 2) == 0.76


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
