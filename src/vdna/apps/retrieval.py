"""Ranking images by their distance to a reference set, and scoring a ranking (section 5.1 of the paper).

Each method scores every candidate image against the reference set, lower is closer:

- ``"emd"`` (the paper's): EMD between the image's DNA-hist and the reference's, averaged over
  neurons (EMD_avg), or EMD_W with ``neuron_weights``. Needs the images' ``image-histogram-B`` DNAs and a
  ``histogram-B`` reference (or its per-image DNAs, summed).
- ``"embedding-cosine"``: 1 minus the cosine between the image's spatially averaged activations
  and the reference's mean of them, computed per layer and averaged over layers (each layer
  counts once, whatever its width). Needs ``image-mean`` images and an ``image-mean`` or
  ``gaussian`` reference.
- ``"embedding-distance"``: mean over neurons of the squared z-score of the image's averaged
  activation, standardised by the reference images' mean and standard deviation (neurons constant
  over the reference are left out). Needs ``image-mean`` images and an ``image-mean`` or
  ``gaussian`` reference.
- ``"emd-ratio"``: each neuron's EMD of the image to the reference divided by the mean EMD of the
  reference's own images to the reference, averaged over neurons: distances in units of the
  reference's own spread (neurons on which every reference image matches the set exactly, a mean
  EMD below :data:`NEGLIGIBLE_EMD`, are left out). Needs ``image-histogram-B`` DNAs of the images
  and of the reference's images.
- ``"hybrid"`` (the default): the mean of the ``"emd-ratio"`` term and of a normalised embedding
  term, the mean over neurons of the squared z-score of the image's averaged activations after
  each layer's vector is divided by its L2 norm (so an image's overall activation strength, which
  contrast, blur or noise change, does not count), standardised by the reference images'
  normalised vectors (neurons constant over them left out). Each term is about 1 for an image
  like the reference's own. Needs both
  ``image-histogram-B`` and ``image-mean`` DNAs of the images and of the reference's images.

``"emd"``, ``"embedding-cosine"`` and ``"embedding-distance"`` use every layer by default;
``"emd-ratio"`` and ``"hybrid"`` the last third of the layers (:func:`late_layers`), where
held-out retrieval tasks are won (``experiments/retrieval.py``). ``neurons={layer: indices or
None}`` chooses the neurons of any method. Given which images are relevant, the precision-recall
curve and its area score a ranking.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..distances import Neurons, NeuronWeights, emd_to_reference, select_neurons
from ..distances._selection import Selection, neuron_weights_given
from ..distributions import VDNAGauss, VDNAHist, VDNAImageHist, VDNAImageMeans, VDNALayerGauss
from ..distributions.gaussian import spread_from_m2
from ..distributions.state import sample_moments
from ..dna import VDNA, check_comparable

DNAs = VDNA | Sequence[VDNA]
NEGLIGIBLE_EMD = 1e-9
"""EMDs (in bins) below this are round-off of zero: far below the smallest mass an image can move, 1 / positions."""


@dataclass(frozen=True)
class RankedImage:
    """One image of a ranking: its name, its position in the per-image DNA set and its distance."""

    name: str
    index: int
    distance: float


def late_layers(vdna: VDNA) -> dict[str, None]:
    """The last third of a DNA's layers (all of them when it has fewer than three): ``{layer: None}``."""
    layers = vdna.layers
    return {layer: None for layer in layers[2 * (len(layers) // 3):]}


class _Inputs:
    """The DNAs given for the images or for the reference, by type, checked to describe the same images."""

    def __init__(self, dnas: DNAs, role: str):
        given = [dnas] if isinstance(dnas, VDNA) else list(dnas) if isinstance(dnas, Sequence) else [dnas]
        self.role = role
        self.by_type: dict[str, VDNA] = {}
        for dna in given:
            if not isinstance(dna, VDNA):
                raise TypeError(f"{role} must be a DNA or a sequence of DNAs, got {type(dna).__name__}")
            if dna.type in self.by_type:
                raise ValueError(f"{role}: two {dna.type} DNAs given; pass one DNA of each kind")
            self.by_type[dna.type] = dna
        if not self.by_type:
            raise ValueError(f"{role}: no DNA given")
        per_image = [dna for dna in self.by_type.values() if isinstance(dna, (VDNAImageHist, VDNAImageMeans))]
        if len(per_image) == 2 and per_image[0].names != per_image[1].names:
            raise ValueError(f"{role}: the image-histogram and image-mean DNAs describe different images")

    def get(self, kinds: tuple[type, ...], method: str, make: str) -> VDNA:
        for dna in self.by_type.values():
            if isinstance(dna, kinds):
                return dna
        names = " or ".join(kind.type for kind in kinds)
        given = ", ".join(self.by_type)
        raise ValueError(f"method {method!r} needs {names} DNAs of the {self.role} ({make}); got {given}")


_HIST = "make_vdna(..., distribution_name='image-histogram-1000')"
_MEAN = "make_vdna(..., distribution_name='image-mean')"


def _rows(means: VDNAImageMeans, layer: str, index: torch.Tensor | None) -> torch.Tensor:
    values = means.data[layer].cpu()
    return values if index is None else values[:, index]


def _unit_rows(values: torch.Tensor) -> torch.Tensor:
    """Each row divided by its L2 norm (rows of zeros stay zeros)."""
    norms = torch.linalg.vector_norm(values, dim=1, keepdim=True)
    return values / torch.where(norms > 0, norms, 1.0)


def _reference_gaussian(reference: _Inputs, method: str) -> VDNAGauss | VDNALayerGauss:
    """The reference's mean activations as a Gaussian DNA (fitted to its per-image means if it has them)."""
    ref = reference.get((VDNAImageMeans, VDNAGauss, VDNALayerGauss), method, _MEAN)
    return ref.gaussian() if isinstance(ref, VDNAImageMeans) else ref


def _reference_moments(
    reference: VDNAGauss | VDNALayerGauss, layer: str, index: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased variance of the reference images' averaged activations."""
    mean, var = (values.cpu() for values in reference.neuron_moments(layer))
    return (mean, var) if index is None else (mean[index], var[index])


def _squared_z(values: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """Squared z-scores ``(images, neurons kept)``, neurons of zero reference variance left out."""
    kept = var > 0
    return (values[:, kept] - mean[kept]) ** 2 / var[kept]


def _mean_over_neurons(parts: list[torch.Tensor], method: str) -> torch.Tensor:
    values = torch.cat(parts, dim=1)
    if values.shape[1] == 0:
        raise ValueError(f"method {method!r}: no selected neuron varies over the reference images")
    return values.mean(dim=1)


def _embedding_cosine(images: _Inputs, reference: _Inputs, selection: Selection, method: str) -> torch.Tensor:
    means = images.get((VDNAImageMeans,), method, _MEAN)
    ref = _reference_gaussian(reference, method)
    cosines = []
    for layer, index in selection:
        rows, centre = _unit_rows(_rows(means, layer, index)), _unit_rows(_reference_moments(ref, layer, index)[0][None])
        cosines.append(rows @ centre[0])
    return 1.0 - torch.stack(cosines, dim=1).mean(dim=1)


def _embedding_distance(images: _Inputs, reference: _Inputs, selection: Selection, method: str) -> torch.Tensor:
    means = images.get((VDNAImageMeans,), method, _MEAN)
    ref = _reference_gaussian(reference, method)
    parts = [_squared_z(_rows(means, layer, index), *_reference_moments(ref, layer, index)) for layer, index in selection]
    return _mean_over_neurons(parts, method)


def _normalised_embedding_distance(images: _Inputs, reference: _Inputs, selection: Selection, method: str) -> torch.Tensor:
    means = images.get((VDNAImageMeans,), method, _MEAN)
    ref = reference.get((VDNAImageMeans,), method, _MEAN)
    parts = []
    for layer, index in selection:
        ref_rows = _unit_rows(_rows(ref, layer, index))
        mean, m2 = sample_moments(ref_rows, full=False)
        parts.append(_squared_z(_unit_rows(_rows(means, layer, index)), mean, spread_from_m2(m2, ref_rows.shape[0])))
    return _mean_over_neurons(parts, method)


def _neurons(selection: Selection) -> dict[str, torch.Tensor | None]:
    return dict(selection)


def _emd(
    images: _Inputs, reference: _Inputs, selection: Selection, method: str, neuron_weights: NeuronWeights | None = None
) -> torch.Tensor:
    hists = images.get((VDNAImageHist,), method, _HIST)
    ref = reference.get((VDNAHist, VDNAImageHist), method, "make_vdna(..., distribution_name='histogram-1000')")
    pooled = ref.subset() if isinstance(ref, VDNAImageHist) else ref
    return emd_to_reference(hists, pooled, neurons=_neurons(selection), neuron_weights=neuron_weights)


def _emd_ratio(images: _Inputs, reference: _Inputs, selection: Selection, method: str) -> torch.Tensor:
    hists = images.get((VDNAImageHist,), method, _HIST)
    ref = reference.get((VDNAImageHist,), method, _HIST + " of the reference images")
    pooled = ref.subset()
    own = emd_to_reference(ref, pooled, neurons=_neurons(selection), return_neuron_wise=True)
    theirs = emd_to_reference(hists, pooled, neurons=_neurons(selection), return_neuron_wise=True)
    parts = []
    for layer in theirs:
        typical = own[layer].mean(dim=0)
        kept = typical > NEGLIGIBLE_EMD
        parts.append(theirs[layer][:, kept] / typical[kept])
    return _mean_over_neurons(parts, method)


def _hybrid(images: _Inputs, reference: _Inputs, selection: Selection, method: str) -> torch.Tensor:
    return 0.5 * (_emd_ratio(images, reference, selection, method)
                  + _normalised_embedding_distance(images, reference, selection, method))


_Scorer = Callable[[_Inputs, _Inputs, Selection, str], torch.Tensor]
METHODS: dict[str, tuple[_Scorer, bool, bool]] = {
    "emd": (_emd, False, False),
    "embedding-cosine": (_embedding_cosine, False, False),
    "embedding-distance": (_embedding_distance, False, True),
    "emd-ratio": (_emd_ratio, True, True),
    "hybrid": (_hybrid, True, True),
}
"""Ranking methods by name: their scorer, whether they use :func:`late_layers` by default, and whether they
measure distances in units of the reference images' own spread (which takes at least 2 reference images)."""
DEFAULT_METHOD = "hybrid"
PER_IMAGE_INPUTS: dict[str, tuple[str, ...]] = {
    "emd": ("image-histogram",),
    "embedding-cosine": ("image-mean",),
    "embedding-distance": ("image-mean",),
    "emd-ratio": ("image-histogram",),
    "hybrid": ("image-histogram", "image-mean"),
}
"""The per-image DNA kinds each method needs of the images (and of the reference's images, except ``"emd"``,
whose reference is one ``histogram-B`` DNA)."""


def _any_dna(inputs: _Inputs) -> VDNA:
    return next(iter(inputs.by_type.values()))


def _default_method(images: _Inputs, reference: _Inputs, neuron_weights: NeuronWeights | None) -> str:
    """The default method, or ``"emd"`` (with a warning) when the inputs are those of the paper's ranking only."""
    if neuron_weights is not None:
        return "emd"
    have = set(images.by_type) | {f"reference {kind}" for kind in reference.by_type}
    needed = {"image-histogram", "image-mean", "reference image-histogram", "reference image-mean"}
    if needed <= have:
        return DEFAULT_METHOD
    warnings.warn(
        f"ranking by 'emd', the paper's method, because the default {DEFAULT_METHOD!r} (better on held-out "
        "retrieval tasks) needs image-histogram and image-mean DNAs of both the images and the reference's "
        "images; pass them, or method='emd' to silence this warning",
        UserWarning, stacklevel=3,
    )
    return "emd"


def retrieval_distances(
    images: DNAs,
    reference: DNAs,
    method: str | None = None,
    neurons: Neurons | None = None,
    neuron_weights: NeuronWeights | None = None,
    *,
    weights: NeuronWeights | None = None,
) -> torch.Tensor:
    """Every image's distance to the reference set by ``method`` (see the module), float64, lower is closer.

    ``images``: the candidates' per-image DNA(s) (``image-histogram-B``, ``image-mean`` or both, of
    the same images); ``reference``: the reference set's DNA(s). ``method=None`` is
    :data:`DEFAULT_METHOD` when those inputs are given, else ``"emd"`` with a warning.
    ``neuron_weights`` (EMD_W; ``weights=`` is their former name) belong to ``"emd"`` only.
    """
    neuron_weights = neuron_weights_given(neuron_weights, weights)
    image_inputs, reference_inputs = _Inputs(images, "images"), _Inputs(reference, "reference")
    if method is None:
        method = _default_method(image_inputs, reference_inputs, neuron_weights)
    if method not in METHODS:
        raise ValueError(f"unknown retrieval method {method!r}; valid: {', '.join(METHODS)}")
    if neuron_weights is not None and method != "emd":
        raise ValueError(f"weights (EMD_W) apply to method 'emd' only, not {method!r}")
    first = _any_dna(reference_inputs)
    for dna in [*image_inputs.by_type.values(), *reference_inputs.by_type.values()]:
        check_comparable(first, dna, same_type=False)
    scorer, late_by_default, needs_spread = METHODS[method]
    if needs_spread and first.num_images < 2:
        raise ValueError(f"method {method!r} measures distances in units of the reference images' own spread, so it "
                         f"needs at least 2 reference images; the reference has {first.num_images}")
    if neurons is None and late_by_default:
        neurons = late_layers(first)
    selection = select_neurons(first, neurons=neurons)
    if method == "emd":
        return _emd(image_inputs, reference_inputs, selection, method, neuron_weights)
    return scorer(image_inputs, reference_inputs, selection, method)


def rank_images(
    images: DNAs,
    reference: DNAs,
    neurons: Neurons | None = None,
    neuron_weights: NeuronWeights | None = None,
    *,
    method: str | None = None,
    weights: NeuronWeights | None = None,
) -> list[RankedImage]:
    """Every image, closest to ``reference`` first, by ``method`` (see :func:`retrieval_distances`).

    ``rank_images(image_hists, reference_hist)`` keeps the paper's EMD ranking (with a warning
    pointing to the better default); ``rank_images([image_hists, image_means],
    [reference_hists, reference_means])`` ranks by :data:`DEFAULT_METHOD`. Ties keep the order of
    the images in the set.
    """
    distances = retrieval_distances(images, reference, method, neurons, neuron_weights_given(neuron_weights, weights))
    order = torch.sort(distances, stable=True).indices.tolist()
    names = _any_dna(_Inputs(images, "images")).names
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


__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "NEGLIGIBLE_EMD",
    "PER_IMAGE_INPUTS",
    "RankedImage",
    "average_precision",
    "late_layers",
    "precision_recall_curve",
    "rank_images",
    "retrieval_distances",
]
