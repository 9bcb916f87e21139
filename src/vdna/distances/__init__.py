"""Comparing DNAs: a registry of distances, one module each.

Each distance registers one :class:`Distance` record (:mod:`vdna.distances._registry`): ``emd``
(:mod:`~vdna.distances.emd_distance`, dna-emd, eq. 3-5), ``nfd`` (:mod:`~vdna.distances.nfd_distance`,
dna-fd) and ``fd`` (:mod:`~vdna.distances.fd_distance`, FID's formula per layer); and the field's
metrics on per-image embeddings (one layer of ``image-mean`` DNAs, :mod:`vdna.distances._embeddings`):
``kid``, ``mmd-rbf`` (CMMD's formula), ``precision``, ``recall``, ``density``, ``coverage``, ``vendi``,
``fd-infinity`` and ``sliced-wasserstein``, with their functions (:func:`kid`, :func:`mmd_rbf`,
:func:`prdc`, :func:`precision`, ..., :func:`realism_scores`, :func:`vendi_score`, :func:`fd_infinity`,
:func:`sliced_wasserstein`).
:func:`get_distance` gives a record by name, :func:`list_distances` the names, and
:func:`register_distance` adds one. Each module also offers its pure functions over arrays
(:func:`emd`, :func:`frechet_1d`, :func:`frechet_distance`) and vdna 0.1.1's wrappers (:func:`EMD`,
:func:`NFD`, :func:`FD`), which check that two DNAs are comparable and select neurons in one place
(:mod:`vdna.distances._selection`).

Names are loaded on first use, so listing the distances does not load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names
from ._registry import (
    BUILTIN_DISTANCES,
    Distance,
    get_distance,
    list_distances,
    register_distance,
    unregister_distance,
)

_WHERE = {
    "EMD": "emd_distance",
    "emd": "emd_distance",
    "emd_to_reference": "emd_distance",
    "NFD": "nfd_distance",
    "frechet_1d": "nfd_distance",
    "FD": "fd_distance",
    "frechet_distance": "fd_distance",
    "trace_sqrt_product": "fd_distance",
    "KID": "kid_distance",
    "kid": "kid_distance",
    "mmd_rbf": "mmd_rbf_distance",
    "PRDC": "precision_distance",
    "prdc": "precision_distance",
    "precision": "precision_distance",
    "realism_scores": "precision_distance",
    "recall": "recall_distance",
    "density": "density_distance",
    "coverage": "coverage_distance",
    "vendi_score": "vendi_distance",
    "vendi_gap": "vendi_distance",
    "fd_infinity": "fd_infinity_distance",
    "sliced_wasserstein": "sliced_wasserstein_distance",
    "random_directions": "sliced_wasserstein_distance",
    "NeuronSelection": "_selection",
    "NeuronWeights": "_selection",
    "Neurons": "_selection",
    "select_neurons": "_selection",
}

if TYPE_CHECKING:
    from ._selection import Neurons, NeuronSelection, NeuronWeights, select_neurons
    from .coverage_distance import coverage
    from .density_distance import density
    from .emd_distance import EMD, emd, emd_to_reference
    from .fd_distance import FD, frechet_distance, trace_sqrt_product
    from .fd_infinity_distance import fd_infinity
    from .kid_distance import KID, kid
    from .mmd_rbf_distance import mmd_rbf
    from .nfd_distance import NFD, frechet_1d
    from .precision_distance import PRDC, prdc, precision, realism_scores
    from .recall_distance import recall
    from .sliced_wasserstein_distance import random_directions, sliced_wasserstein
    from .vendi_distance import vendi_gap, vendi_score


__getattr__, __dir__ = lazy_names(__name__, globals(), _WHERE)


__all__ = [
    "BUILTIN_DISTANCES",
    "EMD",
    "FD",
    "KID",
    "NFD",
    "PRDC",
    "Distance",
    "NeuronSelection",
    "NeuronWeights",
    "Neurons",
    "coverage",
    "density",
    "emd",
    "emd_to_reference",
    "fd_infinity",
    "frechet_1d",
    "frechet_distance",
    "get_distance",
    "kid",
    "list_distances",
    "mmd_rbf",
    "prdc",
    "precision",
    "random_directions",
    "realism_scores",
    "recall",
    "register_distance",
    "select_neurons",
    "sliced_wasserstein",
    "trace_sqrt_product",
    "unregister_distance",
    "vendi_gap",
    "vendi_score",
]
