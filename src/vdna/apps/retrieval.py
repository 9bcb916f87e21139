"""Ranking images by their distance to a reference DNA, and scoring a ranking (section 5.1 of the paper).

Each image of a set has its own DNA (``distribution_name="image-histogram-B"``, made in one pass);
the images are ranked by EMD to a reference dataset DNA, on all neurons or on a selection
(section 5.3 "Finding similar images", appendix B.1). Given which images are relevant, the
precision-recall curve and its area score the ranking.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..distances import Weights, emd_to_reference
from ..distributions import VDNAHist, VDNAImageHist


@dataclass(frozen=True)
class RankedImage:
    """One image of a ranking: its name, its position in the per-image DNA set and its distance."""

    name: str
    index: int
    distance: float


def rank_images(
    images: VDNAImageHist,
    reference: VDNAHist,
    neurons: Mapping[str, Sequence[int] | None] | None = None,
    weights: Weights | None = None,
) -> list[RankedImage]:
    """Every image, closest to ``reference`` first (EMD_avg over the selected neurons, or EMD_W with ``weights``).

    Ties keep the order of the images in the set.
    """
    distances = emd_to_reference(images, reference, neurons=neurons, weights=weights)
    order = torch.sort(distances, stable=True).indices.tolist()
    names = images.names
    return [RankedImage(names[i], i, float(distances[i])) for i in order]


def _scores_and_labels(distances: Sequence[float] | np.ndarray | torch.Tensor, relevant) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(distances, dtype=np.float64).reshape(-1)
    labels = np.asarray(relevant, dtype=bool).reshape(-1)
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.size} distances but {labels.size} relevance labels")
    if not np.all(np.isfinite(scores)):
        raise ValueError("distances contain NaN or infinite values")
    if not labels.any():
        raise ValueError("no image is marked relevant: precision and recall are undefined")
    return scores, labels


def precision_recall_curve(
    distances: Sequence[float] | np.ndarray | torch.Tensor, relevant: Sequence[bool] | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(precision, recall, thresholds)`` of retrieving the images whose distance is at most each threshold.

    Lower distances are retrieved first; images at equal distance are retrieved together. The
    curve starts at recall 0 with precision 1.
    """
    scores, labels = _scores_and_labels(distances, relevant)
    order = np.argsort(scores, kind="stable")
    scores, labels = scores[order], labels[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    true_positives = np.cumsum(labels)[last_of_tie]
    retrieved = last_of_tie + 1
    precision = np.r_[1.0, true_positives / retrieved]
    recall = np.r_[0.0, true_positives / labels.sum()]
    return precision, recall, scores[last_of_tie]


def average_precision(distances: Sequence[float] | np.ndarray | torch.Tensor, relevant: Sequence[bool] | np.ndarray) -> float:
    """Area under the precision-recall curve, as the sum of precision times recall steps (no interpolation)."""
    precision, recall, _ = precision_recall_curve(distances, relevant)
    return float(np.sum(np.diff(recall) * precision[1:]))
