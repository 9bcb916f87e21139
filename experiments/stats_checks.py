"""Are the statistics of ``vdna.stats.compare_sets`` honest on real images?

Three checks, on per-image DNAs of the default extractor (made once; kept in ``--cache``):

1. Halves of one set: ImageNet's 1000 images shuffled and halved ``--halvings`` times (500 vs
   500). Both halves come from one source, so the p-values should be spread over (0, 1] (about
   5% below 0.05) and each distance within the noise floor's spread (``z`` = (value - noise
   floor) / spread).
2. Two different sets: Urban100 vs BSD100 with 20, 50 and 100 images a side (random subsets).
3. Coverage of the 95% intervals: ``--draws`` random subsets of n images of each of two sets; how
   often each interval contains the distance of the full sets (Urban100 vs BSD100: 100 vs 100;
   the null case: two fixed ImageNet halves of 500, subsampled), for EMD, NFD and FD. The
   interval ``compare_sets`` gives is marked with a star.

    python experiments/stats_checks.py ../shared/data --cache /tmp/vdna-cache
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _common import cached, image_files

from vdna import VDNAProcessor
from vdna.stats import INTERVAL_METHODS, INTERVALS, bootstrap_interval, compare_sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="folder holding imagenet1k, urban100 and bsd100")
    parser.add_argument("--cache", type=Path, help="keep the per-image DNAs here, and reuse them")
    parser.add_argument("--halvings", type=int, default=20)
    parser.add_argument("--draws", type=int, default=100, help="subsamples per size for the coverage")
    parser.add_argument("--sizes", default="20,50", help="images a side for the coverage")
    parser.add_argument("--metrics", default="emd,nfd,fd", help="metrics whose coverage is measured")
    parser.add_argument("--resamples", type=int, default=200)
    parser.add_argument("--permutations", type=int, default=200)
    parser.add_argument("--only", choices=("halves", "pairs", "coverage"), help="run one check only")
    args = parser.parse_args()

    processor = VDNAProcessor()
    dnas = {
        (name, distribution): cached(
            args.cache, f"{name}_{distribution}",
            lambda name=name, distribution=distribution: processor.make_vdna(
                image_files(args.data / name), distribution_name=distribution, verbose=False
            ),
        )
        for name in ("imagenet1k", "urban100", "bsd100")
        for distribution in ("image-histogram-1000", "image-mean")
    }
    histograms = {name: dna for (name, distribution), dna in dnas.items() if distribution == "image-histogram-1000"}
    settings = {"resamples": args.resamples, "permutations": args.permutations}
    started = time.perf_counter()
    if args.only in (None, "halves"):
        halves(histograms["imagenet1k"], args.halvings, settings)
    if args.only in (None, "pairs"):
        pairs(histograms["urban100"], histograms["bsd100"], settings)
    if args.only in (None, "coverage"):
        sizes = [int(size) for size in args.sizes.split(",")]
        for metric in args.metrics.split(","):
            distribution = "image-histogram-1000" if metric == "emd" else "image-mean"
            sets = {name: dna for (name, kind), dna in dnas.items() if kind == distribution}
            coverage(sets, metric, sizes, args.draws, args.resamples)
    print(f"\n({time.perf_counter() - started:.0f} s)")


def halves(images, halvings: int, settings: dict) -> None:
    half = len(images) // 2
    print(f"1. {halvings} random halvings of ImageNet ({half} vs {half} images), EMD")
    print("seed      value  noise floor +- spread       z       p")
    p_values, scores = [], []
    for seed in range(halvings):
        order = np.random.default_rng(1000 + seed).permutation(len(images))
        result = compare_sets(images.select_images(order[:half]), images.select_images(order[half:]), seed=seed, **settings)
        score = (result.value - result.noise_floor) / result.noise_floor_spread
        p_values.append(result.p_value)
        scores.append(score)
        print(f"{seed:4d}  {result.value:9.4f}  {result.noise_floor:11.4f} +- {result.noise_floor_spread:6.4f}  "
              f"{score:6.2f}  {result.p_value:6.3f}")
    p_values = np.array(p_values)
    print(f"p < 0.05: {np.count_nonzero(p_values < 0.05)} of {halvings}; p < 0.01: {np.count_nonzero(p_values < 0.01)}; "
          f"median p {np.median(p_values):.2f}; largest |z| {np.max(np.abs(scores)):.2f}")


def pairs(first, second, settings: dict) -> None:
    print("\n2. Urban100 vs BSD100, random subsets of n images a side, EMD")
    print("   n      value  estimate  95% CI                noise floor +- spread         p")
    for size in (20, 50, 100):
        rng = np.random.default_rng(size)
        a = first.select_images(rng.choice(len(first), size, replace=False))
        b = second.select_images(rng.choice(len(second), size, replace=False))
        result = compare_sets(a, b, **settings)
        interval = f"{result.ci[0]:.3f} to {result.ci[1]:.3f}"
        print(f"{size:4d}  {result.value:9.4f}  {result.estimate:8.3f}  {interval:20s}  {result.noise_floor:11.4f} +- "
              f"{result.noise_floor_spread:6.4f}  {result.p_value:8.4f}")


def coverage(dnas: dict, metric: str, sizes: list[int], draws: int, resamples: int) -> None:
    imagenet = dnas["imagenet1k"]
    half = len(imagenet) // 2
    order = np.random.default_rng(0).permutation(len(imagenet))
    cases = {
        "Urban100 vs BSD100 (full: 100 vs 100)": (dnas["urban100"], dnas["bsd100"]),
        f"ImageNet halves (null; full: {half} vs {half})": (
            imagenet.select_images(order[:half]), imagenet.select_images(order[half:])
        ),
    }
    print(f"\n3. Coverage of 95% intervals of {metric} ({resamples} resamples): share of {draws} random subsets of "
          "n images a side whose interval contains the full sets' distance")
    header = "".join(f"  {method + ('*' if method == INTERVALS[metric] else ''):>10}" for method in INTERVAL_METHODS)
    print(f"{'case':46s}  {'n':>3}  {'full':>8}  {'mean value':>10}  {'mean boot':>10}{header}  {'width*':>10}")
    for label, (first, second) in cases.items():
        full = compare_sets(first, second, metric, resamples=1, permutations=1).value
        for size in sizes:
            rng = np.random.default_rng(size)
            hits = dict.fromkeys(INTERVAL_METHODS, 0)
            values, boots, widths = [], [], []
            for _ in range(draws):
                a = first.select_images(rng.choice(len(first), size, replace=False))
                b = second.select_images(rng.choice(len(second), size, replace=False))
                result = compare_sets(a, b, metric, resamples, permutations=1, seed=int(rng.integers(2**31)))
                values.append(result.value)
                boots.append(np.mean(result.bootstrap))
                widths.append(result.ci[1] - result.ci[0])
                for method in INTERVAL_METHODS:
                    low, high = bootstrap_interval(result.value, result.bootstrap, method=method)
                    hits[method] += low <= full <= high
            cells = "".join(f"  {100 * hits[method] / draws:9.0f}%" for method in INTERVAL_METHODS)
            print(f"{label:46s}  {size:3d}  {full:8.4g}  {np.mean(values):10.4g}  {np.mean(boots):10.4g}{cells}  "
                  f"{np.mean(widths):10.4g}")


if __name__ == "__main__":
    main()
