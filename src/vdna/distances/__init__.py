"""Comparing DNAs: a registry of distances, one module each.

Each distance registers one :class:`Distance` record (:mod:`vdna.distances._registry`): ``emd``
(:mod:`~vdna.distances.emd_distance`, dna-emd, eq. 3-5), ``nfd`` (:mod:`~vdna.distances.nfd_distance`,
dna-fd) and ``fd`` (:mod:`~vdna.distances.fd_distance`, FID's formula per layer).
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
    "NeuronSelection": "_selection",
    "NeuronWeights": "_selection",
    "Neurons": "_selection",
    "select_neurons": "_selection",
}

if TYPE_CHECKING:
    from ._selection import Neurons, NeuronSelection, NeuronWeights, select_neurons
    from .emd_distance import EMD, emd, emd_to_reference
    from .fd_distance import FD, frechet_distance, trace_sqrt_product
    from .nfd_distance import NFD, frechet_1d


__getattr__, __dir__ = lazy_names(__name__, globals(), _WHERE)


__all__ = [
    "BUILTIN_DISTANCES",
    "EMD",
    "FD",
    "NFD",
    "Distance",
    "NeuronSelection",
    "NeuronWeights",
    "Neurons",
    "emd",
    "emd_to_reference",
    "frechet_1d",
    "frechet_distance",
    "get_distance",
    "list_distances",
    "register_distance",
    "select_neurons",
    "trace_sqrt_product",
    "unregister_distance",
]
