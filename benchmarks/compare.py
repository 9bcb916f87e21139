"""Comparison speed: EMD between two histogram DNAs of 10,000 neurons x 1000 bins, and ranking
per-image DNAs against a dataset DNA.

The DNAs of the first measure are synthetic (10 layers of 1000 neurons, counts drawn around
shifted bell shapes); the time is the median of ``--repeats`` calls of ``vdna.EMD`` on the whole
DNA. With ``--images`` (saved per-image DNAs, ``vdna make SOURCE --distribution
image-histogram-1000``) and ``--reference`` (a saved histogram DNA), the second measure ranks every
image by its EMD over all neurons to the reference, median of ``--repeats`` rankings.

    python benchmarks/compare.py [--images IMAGES --reference REFERENCE]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from vdna import EMD, load_vdna_from_files
from vdna.apps.retrieval import rank_images
from vdna.distributions import VDNAHist


def synthetic_dna(rng: np.random.Generator, layers: int, neurons: int, bins: int) -> VDNAHist:
    centres = rng.uniform(0.3, 0.7, size=(layers, neurons, 1)) * bins
    widths = rng.uniform(0.02, 0.2, size=(layers, neurons, 1)) * bins
    shape = np.exp(-0.5 * ((np.arange(bins) - centres) / widths) ** 2) * 5000
    counts = rng.poisson(shape)
    data = {f"layer{i}": torch.from_numpy(counts[i].astype(np.int64)) for i in range(layers)}
    return VDNAHist.create({"bins": bins}, "synthetic", {name: neurons for name in data}, data, 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--neurons", type=int, default=1000, help="per layer")
    parser.add_argument("--bins", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--images", help="saved per-image DNAs to rank")
    parser.add_argument("--reference", help="saved histogram DNA to rank them against")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    first, second = (synthetic_dna(rng, args.layers, args.neurons, args.bins) for _ in range(2))
    value, times = timed(lambda: EMD(first, second), args.repeats)
    print(f"EMD of {first.num_neurons} neurons x {args.bins} bins: {describe(times, 1e3, 'ms')}; value {value.item():.4f}")
    if args.images and args.reference:
        images, reference = load_vdna_from_files(args.images), load_vdna_from_files(args.reference)
        stored = sum(part["counts"].numel() for part in images.data.values())
        ranking, times = timed(lambda: rank_images(images, reference), args.repeats)
        print(
            f"ranking {len(images)} per-image DNAs ({images.num_neurons} neurons x {images.hist_nb_bins} bins, "
            f"{stored / len(images):,.0f} non-empty bins per image) against a {reference.num_images}-image DNA: "
            f"{describe(times, 1.0, 's')}; closest {ranking[0].name} at {ranking[0].distance:.4f}"
        )


def timed(run, repeats: int) -> tuple:
    """The result of ``run()`` and the times of ``repeats`` calls after a warm-up call."""
    result = run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return result, times


def describe(times: list[float], scale: float, unit: str) -> str:
    return (f"{statistics.median(times) * scale:.3f} {unit} (median of {len(times)}; "
            f"min {min(times) * scale:.3f}, max {max(times) * scale:.3f})")


if __name__ == "__main__":
    main()
