"""Visual DNA: represent images and datasets by the distributions of neuron activations, and compare them.

    from vdna import VDNAProcessor, EMD

    vdna_proc = VDNAProcessor()
    vdna1 = vdna_proc.make_vdna(source="/path/to/dataset1")
    vdna2 = vdna_proc.make_vdna(source="/path/to/dataset2")
    emd = EMD(vdna1, vdna2)
"""

from ._version import __version__
from .distances import EMD, FD, NFD, check_comparable
from .distributions import VDNAActivationRanges, VDNAGauss, VDNAHist, VDNAImageHist, VDNAImageMeans, VDNALayerGauss
from .dna import VDNA, merge_vdnas
from .extractors import DEFAULT_EXTRACTOR, create_extractor, list_extractors, register_extractor
from .io import load_vdna_from_files, save_vdna
from .preprocess import ImageError
from .processor import VDNAProcessor
from .ranges import ActivationRanges, load_activation_ranges

__all__ = [
    "DEFAULT_EXTRACTOR",
    "EMD",
    "FD",
    "NFD",
    "ActivationRanges",
    "ImageError",
    "VDNA",
    "VDNAActivationRanges",
    "VDNAGauss",
    "VDNAHist",
    "VDNAImageHist",
    "VDNAImageMeans",
    "VDNALayerGauss",
    "VDNAProcessor",
    "__version__",
    "check_comparable",
    "create_extractor",
    "list_extractors",
    "load_activation_ranges",
    "load_vdna_from_files",
    "merge_vdnas",
    "register_extractor",
    "save_vdna",
]
