"""What the metrics on per-image embeddings share: the embeddings of a layer, and block-wise pairwise work.

The field's dataset metrics (KID, MMD, precision and recall, density and coverage, Vendi, FD-infinity,
sliced Wasserstein) compare two sets of per-image embeddings, here the ``(images, neurons)`` matrix
of one layer of an ``image-mean`` DNA (each image's activations averaged over positions). Each
metric's module registers one :class:`~vdna.distances.Distance`; this module gives them:

- :func:`embeddings` / :func:`embedding_pair`: the ``(images, neurons)`` matrix of a layer of an
  ``image-mean`` DNA (or a 2-D array given directly), checked once;
- :func:`squared_distance_blocks`: pairwise squared Euclidean distances ``||x||^2 + ||y||^2 - 2 x.y``
  one block at a time, in float64 (so 50,000 x 50,000 pairs never form one matrix); a squared distance
  within the formula's float64 rounding of zero is taken as exactly zero, so duplicate embeddings are
  at distance 0 wherever they meet;
- :func:`kernel_sums`: sums of a kernel over all pairs, block by block; :func:`knn_radii`: each
  embedding's distance to its k-th nearest other embedding; :func:`neighbourhoods`: one pass over the
  pairs of two sets giving what precision, recall, density and coverage count;
- :func:`embedding_distance`: the registry record of a metric from its per-layer function.

A registered metric compares the layers named by ``neurons`` (``{layer: None}``, whole layers only),
all of them by default, and averages (or weighs) their values, as ``fd`` does, so the statistics
(:func:`vdna.compare_sets`) and the report treat it as any layer-wise distance; the metric's own
function (``kid(a, b)``, ``precision(real=a, fake=b)``, ...) compares one layer, the last by default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..distributions import VDNAImageMeans
from ..dna import VDNA, check_comparable
from ._registry import Distance, register_distance
from ._selection import Neurons, NeuronWeights, require_types, select_neurons, weights_vector

BLOCK = 2048
"""Rows (and columns) of a block of pairs: 2048 x 2048 float64 values, 32 MiB, at a time."""
_ROUNDING = 4 * torch.finfo(torch.float64).eps
"""Squared distances below ``_ROUNDING * neurons * (||x||^2 + ||y||^2)`` are rounding of an exact zero."""

Embeddings = VDNAImageMeans | torch.Tensor | np.ndarray
"""Per-image embeddings: an ``image-mean`` DNA (one layer of it is used) or an ``(images, dimensions)`` array."""


# -- embeddings of a layer ---------------------------------------------------------------------------
def _matrix(values: Any, position: str) -> torch.Tensor:
    matrix = torch.as_tensor(values)
    if matrix.ndim != 2 or not (matrix.is_floating_point()):
        raise ValueError(f"the {position} embeddings must be a 2-D float array (images, dimensions), "
                         f"got {matrix.dtype} of shape {tuple(matrix.shape)}")
    if not bool(torch.isfinite(matrix).all()):
        raise ValueError(f"the {position} embeddings contain NaN or infinite values")
    return matrix


def embeddings(dna: Embeddings, layer: str | None = None, position: str = "first", metric: str = "this metric") -> torch.Tensor:
    """The ``(images, neurons)`` embeddings of ``layer`` (the last by default) of an ``image-mean`` DNA, or ``dna`` as a 2-D array."""
    if isinstance(dna, VDNA):
        if dna.type != VDNAImageMeans.type:
            raise ValueError(f"{metric} needs image-mean DNAs (make_vdna(..., distribution_name='image-mean')); "
                             f"the {position} one is {dna.type}")
        layer = dna.layers[-1] if layer is None else layer
        dna.check_layer(layer)
        return dna.data[layer]
    if layer is not None:
        raise ValueError(f"layer={layer!r} names a layer of a DNA; the {position} embeddings are an array")
    if not isinstance(dna, (torch.Tensor, np.ndarray)):
        raise TypeError(f"the {position} argument is a {type(dna).__name__}, not an image-mean VDNA or an array")
    return _matrix(dna, position)


def embedding_pair(
    a: Embeddings, b: Embeddings, layer: str | None = None, metric: str = "this metric", names: tuple[str, str] = ("first", "second"),
) -> tuple[torch.Tensor, torch.Tensor]:
    """The embeddings of ``layer`` (the last by default) of two comparable DNAs, or two arrays of equal dimension."""
    if isinstance(a, VDNA) and isinstance(b, VDNA):
        embeddings(a, layer, names[0], metric), embeddings(b, None, names[1], metric)  # type errors first
        check_comparable(a, b)
    elif isinstance(a, VDNA) or isinstance(b, VDNA):
        raise TypeError(f"give {metric} two image-mean DNAs or two arrays, not a {type(a).__name__} and a {type(b).__name__}")
    x, y = embeddings(a, layer, names[0], metric), embeddings(b, layer, names[1], metric)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"the {names[0]} embeddings have {x.shape[1]} dimensions and the {names[1]} {y.shape[1]}")
    return x, y


def check_images(x: torch.Tensor, least: int, position: str, why: str) -> None:
    """Refuse fewer than ``least`` embeddings, saying ``why`` they are needed."""
    if x.shape[0] < least:
        raise ValueError(f"the {position} set has {x.shape[0]} image(s); {why} needs at least {least}")


# -- blocks of pairs ---------------------------------------------------------------------------------
def _block_size(block: int) -> int:
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise ValueError(f"block must be a positive number of rows, got {block!r}")
    return block


def squared_norms(x: torch.Tensor, block: int = BLOCK) -> torch.Tensor:
    """``||x_i||^2`` of each row, float64."""
    return torch.cat([rows.to(torch.float64).square().sum(dim=1) for rows in x.split(block)]) if len(x) else x.new_zeros(0, dtype=torch.float64)


def product_blocks(
    x: torch.Tensor, y: torch.Tensor, block: int = BLOCK,
) -> Iterator[tuple[slice, slice, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``(rows, columns, x_rows . y_columns, ||x_rows||^2, ||y_columns||^2)`` in float64, row block after row block."""
    block = _block_size(block)
    x_norms, y_norms = squared_norms(x, block), squared_norms(y, block)
    for start in range(0, x.shape[0], block):
        rows = slice(start, min(start + block, x.shape[0]))
        left = x[rows].to(torch.float64)
        for column in range(0, y.shape[0], block):
            columns = slice(column, min(column + block, y.shape[0]))
            yield rows, columns, left @ y[columns].to(torch.float64).T, x_norms[rows], y_norms[columns]


def squared_distance_blocks(x: torch.Tensor, y: torch.Tensor, block: int = BLOCK) -> Iterator[tuple[slice, slice, torch.Tensor]]:
    """``(rows, columns, squared distances)`` of every pair, block after block, float64 (see the module's note on zeros)."""
    dimensions = x.shape[1]
    for rows, columns, products, x_norms, y_norms in product_blocks(x, y, block):
        total = x_norms[:, None] + y_norms[None, :]
        squared = total - 2 * products
        squared = torch.where(squared <= _ROUNDING * max(1, dimensions) * total, torch.zeros_like(squared), squared)
        yield rows, columns, squared


def kernel_sums(
    x: torch.Tensor, y: torch.Tensor, kernel: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    block: int = BLOCK,
) -> torch.Tensor:
    """``sum_ij k(x_i, y_j)`` (float64) of ``kernel(products, ||x_i||^2, ||y_j||^2)``, block by block."""
    total = torch.zeros((), dtype=torch.float64)
    for _, _, products, x_norms, y_norms in product_blocks(x, y, block):
        total += kernel(products, x_norms[:, None], y_norms[None, :]).sum()
    return total


def kernel_diagonal(x: torch.Tensor, kernel: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor], block: int = BLOCK) -> torch.Tensor:
    """``sum_i k(x_i, x_i)`` (float64), from the rows' squared norms."""
    norms = squared_norms(x, block)
    return kernel(norms, norms, norms).sum()


def mmd2(
    x: torch.Tensor, y: torch.Tensor, kernel: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    estimator: str = "unbiased", block: int = BLOCK,
) -> torch.Tensor:
    """Squared MMD of two sets of embeddings under ``kernel``: ``"biased"`` (V-statistic, every pair) or
    ``"unbiased"`` (each set's pairs of an embedding with itself left out, the cross pairs all kept: the
    estimator of Binkowski et al. that KID uses)."""
    if estimator not in ("biased", "unbiased"):
        raise ValueError(f"estimator must be 'biased' or 'unbiased', got {estimator!r}")
    m, n = x.shape[0], y.shape[0]
    xx, yy, xy = kernel_sums(x, x, kernel, block), kernel_sums(y, y, kernel, block), kernel_sums(x, y, kernel, block)
    if estimator == "biased":
        return xx / (m * m) + yy / (n * n) - 2 * xy / (m * n)
    xx, yy = xx - kernel_diagonal(x, kernel, block), yy - kernel_diagonal(y, kernel, block)
    return xx / (m * (m - 1)) + yy / (n * (n - 1)) - 2 * xy / (m * n)


# -- nearest neighbours ------------------------------------------------------------------------------
def check_k(k: int, sizes: dict[str, int]) -> int:
    """``k`` checked: a positive integer smaller than each set's size (the k-th nearest *other* embedding)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer (the k-th nearest neighbour), got {k!r}")
    for name, size in sizes.items():
        if k >= size:
            raise ValueError(f"k={k} needs more than {k} images in each set (an image's k-th nearest other image); "
                             f"the {name} set has {size}")
    return int(k)


def knn_radii(x: torch.Tensor, k: int, block: int = BLOCK) -> torch.Tensor:
    """Squared distance of each embedding to its k-th nearest other one (the (k+1)-th smallest, itself at 0 being
    the first), float64, block by block: a duplicate counts as a neighbour at distance 0."""
    radii = torch.empty(x.shape[0], dtype=torch.float64)
    best = None
    for rows, columns, squared in squared_distance_blocks(x, x, block):
        if columns.start == 0:
            best = squared.new_full((squared.shape[0], 0), float("inf"))
        best = torch.cat([best, squared], dim=1).topk(min(k + 1, best.shape[1] + squared.shape[1]), dim=1, largest=False).values
        if columns.stop == x.shape[0]:
            radii[rows] = best[:, k]
    return radii


@dataclass(frozen=True)
class Neighbourhoods:
    """What one pass over the pairs of a reference (real) and a compared (fake) set counts (None: not asked).

    ``fake_in_real``: for each fake embedding, how many real k-NN balls hold it (closed balls, ``d <= r``);
    ``fake_density``: for each fake embedding, how many real balls hold it strictly inside, or at their centre
    (``d < r`` or ``d == 0``); ``real_nearest``: each real embedding's squared distance to its nearest fake
    one; ``real_in_fake``: for each real embedding, whether a fake ball holds it (closed).
    """

    fake_in_real: torch.Tensor | None
    fake_density: torch.Tensor | None
    real_nearest: torch.Tensor | None
    real_in_fake: torch.Tensor | None


def neighbourhoods(
    real: torch.Tensor, fake: torch.Tensor, real_radii: torch.Tensor | None, fake_radii: torch.Tensor | None,
    block: int = BLOCK,
) -> Neighbourhoods:
    """One block-wise pass over the real x fake pairs (``real_radii``, ``fake_radii``: squared k-NN radii, or None)."""
    counts = real_radii is not None
    fake_in_real = torch.zeros(fake.shape[0], dtype=torch.int64) if counts else None
    fake_density = torch.zeros(fake.shape[0], dtype=torch.int64) if counts else None
    real_nearest = torch.full((real.shape[0],), float("inf"), dtype=torch.float64) if counts else None
    real_in_fake = None if fake_radii is None else torch.zeros(real.shape[0], dtype=torch.bool)
    for rows, columns, squared in squared_distance_blocks(real, fake, block):
        if counts:
            radii = real_radii[rows, None]
            fake_in_real[columns] += (squared <= radii).sum(dim=0)
            fake_density[columns] += ((squared < radii) | (squared == 0)).sum(dim=0)
            real_nearest[rows] = torch.minimum(real_nearest[rows], squared.min(dim=1).values)
        if real_in_fake is not None:
            real_in_fake[rows] |= (squared <= fake_radii[None, columns]).any(dim=1)
    return Neighbourhoods(fake_in_real, fake_density, real_nearest, real_in_fake)


def realism(real: torch.Tensor, fake: torch.Tensor, real_radii: torch.Tensor, block: int = BLOCK) -> torch.Tensor:
    """``max_i r_i / ||fake_j - real_i||`` for each fake embedding (``real_radii`` squared; inf on a real embedding)."""
    scores = torch.zeros(fake.shape[0], dtype=torch.float64)
    for rows, columns, squared in squared_distance_blocks(real, fake, block):
        ratio = torch.where(squared == 0, torch.full_like(squared, float("inf")), real_radii[rows, None].sqrt() / squared.sqrt())
        scores[columns] = torch.maximum(scores[columns], ratio.max(dim=0).values)
    return scores


# -- moments in blocks -------------------------------------------------------------------------------
def mean_and_covariance(x: torch.Tensor, block: int = BLOCK) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased covariance (``np.cov``'s) of the rows, float64, accumulated block by block."""
    mean = sum((rows.to(torch.float64).sum(dim=0) for rows in x.split(block)), torch.zeros(x.shape[1], dtype=torch.float64)) / x.shape[0]
    scatter = torch.zeros((x.shape[1], x.shape[1]), dtype=torch.float64)
    for rows in x.split(block):
        centred = rows.to(torch.float64) - mean
        scatter += centred.T @ centred
    return mean, scatter / (x.shape[0] - 1)


# -- the registry record -----------------------------------------------------------------------------
def whole_layers(a: VDNA, b: VDNA, neurons: Neurons | None, metric: str) -> list[str]:
    """The layers a registered metric compares: those ``neurons`` names (whole layers only), all by default."""
    require_types(a, b, (VDNAImageMeans.type,), metric)
    check_comparable(a, b)
    selection = select_neurons(a, neurons=neurons)
    if any(index is not None for _, index in selection):
        raise ValueError(f"{metric} compares whole layers of per-image embeddings: neurons= may only name layers, "
                         "each with None (all its neurons)")
    return [layer for layer, _ in selection]


@dataclass(frozen=True)
class EmbeddingDistance(Distance):
    """A metric on per-image embeddings: it takes ``image-mean`` DNAs of at least ``least_images`` images (what
    the report lists, and the statistics resample, are DNAs it can compare)."""

    least_images: int = 1

    def compares(self, dna: Any) -> bool:
        return super().compares(dna) and dna.num_images >= self.least_images

    def resamples(self, dna: Any) -> bool:
        return super().resamples(dna) and dna.num_images >= self.least_images

    def accepted(self) -> str:
        return f"image-mean DNAs of at least {self.least_images} images"


def embedding_distance(
    name: str,
    label: str,
    description: str,
    layer_value: Callable[[torch.Tensor, torch.Tensor], torch.Tensor | float],
    lower_is_closer: bool = True,
    interval: str = "basic",
    least_images: int = 1,
) -> Distance:
    """Register the record of a metric on one layer's embeddings: ``layer_value(a_embeddings, b_embeddings)``.

    Its ``compare(a, b, neurons=None, neuron_weights=None)`` averages (or weighs, one weight per layer) the
    values of the layers ``neurons`` names, all by default; ``unit_values`` gives ``{layer: tensor([value])}``;
    a subset of images is the per-image DNA of those images (:meth:`VDNAImageMeans.select_images`), so the
    statistics make each resample's DNAs and compare them.
    """

    def unit_values(a: VDNA, b: VDNA, neurons: Neurons | None = None) -> dict[str, torch.Tensor]:
        return {
            layer: torch.as_tensor(layer_value(a.data[layer], b.data[layer].to(a.data[layer].device)), dtype=torch.float64).reshape(1)
            for layer in whole_layers(a, b, neurons, name)
        }

    def compare(a: VDNA, b: VDNA, neurons: Neurons | None = None, neuron_weights: NeuronWeights | None = None) -> torch.Tensor:
        values = torch.cat(list(unit_values(a, b, neurons).values()))
        if neuron_weights is None:
            return values.mean()
        vector = weights_vector(neuron_weights, [(layer, 1) for layer in whole_layers(a, b, neurons, name)], "layer")
        return (vector.to(values.device) * values).sum()

    compare.__qualname__ = unit_values.__qualname__ = f"{name}.compare"
    return register_distance(EmbeddingDistance(
        name=name,
        label=label,
        description=description,
        set_types=(VDNAImageMeans.type,),
        set_distribution=VDNAImageMeans.type,
        compare=compare,
        unit_values=unit_values,
        image_type=VDNAImageMeans.type,
        image_distribution=VDNAImageMeans.type,
        of_images=_images,
        unit="layer",
        interval=interval,
        lower_is_closer=lower_is_closer,
        least_images=least_images,
    ))


def _images(images: VDNAImageMeans, indices: Any = None) -> VDNAImageMeans:
    """The per-image DNA of the images ``indices`` (all by default; repeated indices repeat the image)."""
    return images if indices is None else images.select_images(indices)


__all__ = [
    "BLOCK",
    "EmbeddingDistance",
    "Embeddings",
    "Neighbourhoods",
    "check_images",
    "check_k",
    "embedding_distance",
    "embedding_pair",
    "embeddings",
    "kernel_diagonal",
    "kernel_sums",
    "knn_radii",
    "mean_and_covariance",
    "mmd2",
    "neighbourhoods",
    "product_blocks",
    "realism",
    "squared_distance_blocks",
    "squared_norms",
    "whole_layers",
]
