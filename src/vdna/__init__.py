"""Visual DNA: represent images and datasets by the distributions of neuron activations, and compare them.

    from vdna import VDNAProcessor, EMD

    vdna_proc = VDNAProcessor()
    vdna1 = vdna_proc.make_vdna(source="/path/to/dataset1")
    vdna2 = vdna_proc.make_vdna(source="/path/to/dataset2")
    emd = EMD(vdna1, vdna2)

The task-level API lives here: making DNAs (:class:`VDNAProcessor`, :func:`make_vdna_ray` on Ray,
:class:`DNAMetric` in training loops), saving and loading them, comparing them (:func:`EMD`,
:func:`NFD`, :func:`FD`, any registered distance by name, :func:`compare` for two image sets given
as images or saved DNAs, :func:`compare_sets` with interval, noise floor and p-value; the field's metrics on per-image embeddings,
:func:`kid`, :func:`prdc`, ...), the HTML
report (:func:`make_report`), and the registries and settings that say what each can be. The
paper's applications are in :mod:`vdna.apps`, neuron rankings in :mod:`vdna.neurons`, statistics in
:mod:`vdna.stats`, pictures in :mod:`vdna.plots`.

Names are loaded on first use, so ``import vdna`` (and the ``vdna`` command's help) does not load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_names
from ._version import __version__
from .config import DEFAULT_EXTRACTOR, RayConfig, RunConfig, StatsConfig

_WHERE = {
    # making DNAs
    "VDNAProcessor": "processor",
    "make_vdna_ray": "distributed",
    "DNAMetric": "metrics",
    "DNADistance": "metrics",
    "ImageError": "preprocess",
    # DNAs, their files and their distributions
    "VDNA": "dna",
    "check_comparable": "dna",
    "merge_vdnas": "dna",
    "load_vdna_from_files": "io",
    "save_vdna": "io",
    "VDNAActivationRanges": "distributions",
    "VDNAGauss": "distributions",
    "VDNAHist": "distributions",
    "VDNAImageHist": "distributions",
    "VDNAImageMeans": "distributions",
    "VDNALayerGauss": "distributions",
    "list_distributions": "distributions",
    "register_distribution": "distributions",
    "ActivationRanges": "ranges",
    "load_activation_ranges": "ranges",
    # comparing
    "EMD": "distances",
    "FD": "distances",
    "NFD": "distances",
    "NeuronSelection": "distances",
    "coverage": "distances",
    "density": "distances",
    "fd_infinity": "distances",
    "kid": "distances",
    "mmd_rbf": "distances",
    "prdc": "distances",
    "precision": "distances",
    "realism_scores": "distances",
    "recall": "distances",
    "sliced_wasserstein": "distances",
    "vendi_score": "distances",
    "get_distance": "distances",
    "list_distances": "distances",
    "register_distance": "distances",
    "compare": "comparison",
    "compare_metrics": "comparison",
    "compare_sets": "stats",
    "make_report": "report",
    # extractors
    "create_extractor": "extractors",
    "list_extractors": "extractors",
    "register_extractor": "extractors",
}

if TYPE_CHECKING:
    from .comparison import compare, compare_metrics
    from .distances import (
        EMD,
        FD,
        NFD,
        NeuronSelection,
        coverage,
        density,
        fd_infinity,
        get_distance,
        kid,
        list_distances,
        mmd_rbf,
        prdc,
        precision,
        realism_scores,
        recall,
        register_distance,
        sliced_wasserstein,
        vendi_score,
    )
    from .distributed import make_vdna_ray
    from .distributions import (
        VDNAActivationRanges,
        VDNAGauss,
        VDNAHist,
        VDNAImageHist,
        VDNAImageMeans,
        VDNALayerGauss,
        list_distributions,
        register_distribution,
    )
    from .dna import VDNA, check_comparable, merge_vdnas
    from .extractors import create_extractor, list_extractors, register_extractor
    from .io import load_vdna_from_files, save_vdna
    from .metrics import DNADistance, DNAMetric
    from .preprocess import ImageError
    from .processor import VDNAProcessor
    from .ranges import ActivationRanges, load_activation_ranges
    from .report import make_report
    from .stats import compare_sets


__getattr__, __dir__ = lazy_names(__name__, globals(), _WHERE)


__all__ = [
    "DEFAULT_EXTRACTOR",
    "EMD",
    "FD",
    "NFD",
    "VDNA",
    "ActivationRanges",
    "DNADistance",
    "DNAMetric",
    "ImageError",
    "NeuronSelection",
    "RayConfig",
    "RunConfig",
    "StatsConfig",
    "VDNAActivationRanges",
    "VDNAGauss",
    "VDNAHist",
    "VDNAImageHist",
    "VDNAImageMeans",
    "VDNALayerGauss",
    "VDNAProcessor",
    "__version__",
    "check_comparable",
    "compare",
    "compare_metrics",
    "compare_sets",
    "coverage",
    "create_extractor",
    "density",
    "fd_infinity",
    "get_distance",
    "kid",
    "list_distances",
    "list_distributions",
    "list_extractors",
    "load_activation_ranges",
    "load_vdna_from_files",
    "make_report",
    "make_vdna_ray",
    "merge_vdnas",
    "mmd_rbf",
    "prdc",
    "precision",
    "realism_scores",
    "recall",
    "register_distance",
    "register_distribution",
    "register_extractor",
    "save_vdna",
    "sliced_wasserstein",
    "vendi_score",
]
