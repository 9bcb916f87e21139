"""Time and peak memory of the metrics on per-image embeddings, at several numbers of images.

The embeddings are random: two sets of Gaussian float32 embeddings (the second shifted by 0.1 in every
dimension), ``--dimensions`` wide (2048 by default, Inception's pool3). Each metric at each size runs in a
fresh subprocess, so its peak resident memory (``ru_maxrss``) is its own: the table gives the seconds the
metric took, the process's peak memory, and the memory the two embedding sets alone take.

    python benchmarks/embedding_metrics.py --sizes 1000 10000 [--metrics kid prdc ...] [--dimensions 2048]

``prdc`` computes precision, recall, density and coverage together, in one pass over each set's pairs
and one over the cross pairs (the four alone each need two of those three passes, recall excepted:
its own set's and the cross pass).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

METRICS = ("kid", "mmd-rbf", "precision", "recall", "density", "coverage", "prdc", "realism", "vendi", "fd-infinity",
           "sliced-wasserstein")


def embeddings(images: int, dimensions: int, seed: int):
    import torch

    generator = torch.Generator().manual_seed(seed)
    real = torch.randn((images, dimensions), generator=generator)
    fake = torch.randn((images, dimensions), generator=generator) + 0.1
    return real, fake


def run(metric: str, images: int, dimensions: int) -> dict[str, float]:
    """One metric at one size, in this process: seconds, peak memory and the embeddings' own memory (MiB)."""

    from vdna import distances

    calls = {
        "kid": lambda x, y: distances.kid(x, y),
        "mmd-rbf": lambda x, y: distances.mmd_rbf(x, y),
        "precision": lambda x, y: distances.precision(real=x, fake=y),
        "recall": lambda x, y: distances.recall(real=x, fake=y),
        "density": lambda x, y: distances.density(real=x, fake=y),
        "coverage": lambda x, y: distances.coverage(real=x, fake=y),
        "prdc": lambda x, y: distances.prdc(real=x, fake=y),
        "realism": lambda x, y: distances.realism_scores(real=x, fake=y),
        "vendi": lambda x, y: distances.vendi_score(x),
        "fd-infinity": lambda x, y: distances.fd_infinity(x, y),
        "sliced-wasserstein": lambda x, y: distances.sliced_wasserstein(x, y),
    }
    real, fake = embeddings(images, dimensions, 0)
    held = 2 * real.numel() * real.element_size() / 2**20
    start = time.perf_counter()
    calls[metric](real, fake)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "peak_mib": peak, "embeddings_mib": held}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000], help="images in each set")
    parser.add_argument("--metrics", nargs="+", default=list(METRICS), choices=METRICS)
    parser.add_argument("--dimensions", type=int, default=2048)
    parser.add_argument("--one", nargs=2, metavar=("METRIC", "IMAGES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run(args.one[0], int(args.one[1]), args.dimensions)))
        return
    print(f"{'metric':<20} {'images':>7} {'seconds':>9} {'peak MiB':>9} {'embeddings MiB':>15}", flush=True)
    for images in args.sizes:
        for metric in args.metrics:
            done = subprocess.run([sys.executable, __file__, "--one", metric, str(images), "--dimensions", str(args.dimensions)],
                                  capture_output=True, text=True, check=False)
            if done.returncode:
                print(f"{metric:<20} {images:>7} failed: {done.stderr.strip().splitlines()[-1:]}", flush=True)
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{metric:<20} {images:>7} {result['seconds']:>9.2f} {result['peak_mib']:>9.0f} {result['embeddings_mib']:>15.0f}",
                  flush=True)


if __name__ == "__main__":
    main()
