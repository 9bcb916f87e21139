"""Speed of ``vdna.stats.compare_sets``: bootstrap interval, noise floor and permutation test of two image sets.

Per-image DNAs of the images of a folder (the default extractor, ``image-histogram-1000``, or
``image-mean`` for ``--metric nfd|fd``) are made once (kept in ``--cache`` when given), shuffled
with ``--seed`` and split into two sets of ``--size`` images; ``compare_sets`` of the two runs
``--repeats`` times. Prints the median and range of the times and the peak resident memory of the
process (``resource.getrusage``, which includes the DNAs themselves). The CPU time of all the
process's threads is printed too: on a machine shared with other jobs it tells how much of the
time went waiting for a core.

    python benchmarks/stats.py /work/shared/data/imagenet1k --cache /tmp/vdna-cache
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
from _common import cached, image_files

from vdna import VDNAProcessor
from vdna.stats import compare_sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a folder of at least 2 x --size images")
    parser.add_argument("--size", type=int, default=500, help="images per set")
    parser.add_argument("--metric", choices=("emd", "nfd", "fd"), default="emd")
    parser.add_argument("--resamples", type=int, default=200)
    parser.add_argument("--permutations", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="of the split into two sets")
    parser.add_argument("--cache", type=Path, help="keep the per-image DNAs here, and reuse them")
    args = parser.parse_args()

    distribution = "image-histogram-1000" if args.metric == "emd" else "image-mean"
    files = image_files(args.folder)
    started = time.perf_counter()
    images = cached(
        args.cache, f"{args.folder.name}_{distribution}",
        lambda: VDNAProcessor().make_vdna(files, distribution_name=distribution, verbose=False),
    )
    print(f"per-image DNAs of {len(images)} images ({images.num_neurons} neurons) ready in {time.perf_counter() - started:.0f} s")
    if len(images) < 2 * args.size:
        raise SystemExit(f"{args.folder} has {len(images)} images; two sets of {args.size} need {2 * args.size}")
    order = np.random.default_rng(args.seed).permutation(len(images))
    first, second = (images.select_images(order[i * args.size : (i + 1) * args.size]) for i in range(2))

    times, cpu_times = [], []
    for _ in range(args.repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        result = compare_sets(first, second, args.metric, args.resamples, args.permutations)
        times.append(time.perf_counter() - started)
        cpu_times.append(time.process_time() - cpu_started)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(result.summary())
    print(
        f"compare_sets, {args.size} vs {args.size} images, {args.resamples} resamples + {args.permutations} "
        f"permutations: median {statistics.median(times):.1f} s over {args.repeats} runs "
        f"(min {min(times):.1f}, max {max(times):.1f}; CPU time of all threads, median "
        f"{statistics.median(cpu_times):.1f} s); peak RSS {peak_mib:,.0f} MiB"
    )


if __name__ == "__main__":
    main()
