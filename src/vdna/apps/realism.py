"""Ranking generated images by realism (section 5.4 and appendix A.5 of the paper).

The neurons most sensitive to real-versus-generated are found from DNAs of *other* classes (real
and generated DNAs of several classes are summed into one real and one generated DNA), then the
generated images of a new class are ranked by their EMD to the real DNA of that class on those
neurons only (or on all neurons).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..distributions import VDNAHist, VDNAImageHist
from ..dna import merge_vdnas
from ..neurons import NeuronSelection, rank_neurons
from .retrieval import RankedImage, rank_images


def realism_neurons(real: VDNAHist | Sequence[VDNAHist], generated: VDNAHist | Sequence[VDNAHist], count: int) -> NeuronSelection:
    """The ``count`` neurons whose histograms differ most between real and generated images.

    ``real`` and ``generated`` are one DNA each, or lists (e.g. one per class) summed first.
    """
    real_dna = merge_vdnas(list(real)) if isinstance(real, Sequence) else real
    generated_dna = merge_vdnas(list(generated)) if isinstance(generated, Sequence) else generated
    return NeuronSelection.top(rank_neurons(real_dna, generated_dna), count)


def rank_by_realism(
    generated: VDNAImageHist, real_reference: VDNAHist, neurons: NeuronSelection | None = None
) -> list[RankedImage]:
    """Generated images, most realistic first: closest to ``real_reference`` on ``neurons`` (all by default)."""
    return rank_images(generated, real_reference, neurons=neurons, method="emd")


__all__ = [
    "rank_by_realism",
    "realism_neurons",
]
