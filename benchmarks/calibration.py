"""Calibration of ``vdna.stats.compare_sets`` by simulation on real images: false positives, coverage, bias.

Every registered distance with per-image DNAs takes part (``--metrics`` to choose some; a distance
registered later joins with no change here). Per-image DNAs of a folder's images (the default
extractor; each distance's own per-image distribution, e.g. ``image-histogram-1000`` for emd and
``image-mean`` for nfd and fd) are made in one pass and kept in ``--cache``. Then, per distance:

- **null**: two disjoint random subsets of ``n`` images a side of the whole folder
  (``--null-sizes``, ``--draws`` draws each): the share of draws with p < 0.05, the test's false
  positive rate (5% expected; above 7% the test is too eager);
- **coverage**: the images sorted by name, split into two fixed pools, the first half and the
  second (ImageNet's classes in wnid order: animals, mostly, against artefacts, food and scenes);
  the population value is the distance between the full pools. Draws of ``n`` images from each
  pool (``--coverage-sizes``): the share whose 95% interval covers the population value (90% at
  least is the target), the mean estimate against the population value and, for contrast, the
  mean of two floor-based corrections: the linear excess ``value - noise floor`` and the
  quadrature one ``sqrt(max(0, value^2 - floor^2))``.

Each draw reads only what it is for, so the null draws resample little (``--null-resamples``) and
the coverage draws permute little (``--coverage-permutations``). Draw ``d`` of size ``n`` picks its
images with ``numpy.random.default_rng([seed, n, d])`` and resamples with seed ``d``. Prints one table (markdown) and writes every draw to ``--output`` (JSON).

    nice -n 10 python benchmarks/calibration.py ../shared/data/imagenet1k --cache /tmp/vdna-calibration \\
        --metrics emd nfd --draws 100
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from vdna import VDNA, VDNAProcessor, load_vdna_from_files
from vdna.distances import get_distance, list_distances
from vdna.stats import compare_sets

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp"}


def resampled_metrics() -> list[str]:
    """The registered distances that compare_sets supports: those computed from per-image DNAs."""
    return [name for name in list_distances() if get_distance(name).image_type is not None]


def per_image_dnas(folder: Path, distributions: list[str], cache: Path, extractor: str) -> dict[str, VDNA]:
    """``{distribution: per-image DNA}`` of the folder's images, sorted by name; those not in ``cache`` made in one pass."""
    files = sorted(path for path in folder.iterdir() if path.suffix.lower() in EXTENSIONS)
    paths = {name: cache / f"{folder.name}_{extractor}_{name}" for name in distributions}
    made = {name: load_vdna_from_files(path) for name, path in paths.items() if path.with_suffix(".json").is_file()}
    missing = [name for name in distributions if name not in made]
    if missing:
        started = time.perf_counter()
        fresh = VDNAProcessor().make_vdnas(files, missing, feat_extractor_name=extractor, verbose=False)
        cache.mkdir(parents=True, exist_ok=True)
        for name, vdna in fresh.items():
            vdna.save(paths[name])
        made.update(fresh)
        print(f"made {', '.join(missing)} of {len(files)} images in {time.perf_counter() - started:.0f} s")
    return made


def floor_corrected(value: float, floor: float, interval: str) -> float:
    """The value less the noise floor, in the metric's noise model: in quadrature (squared) or linearly (basic)."""
    if interval == "squared":
        return math.sqrt(max(0.0, value**2 - floor**2))
    return value - floor


def run_metric(metric: str, images: VDNA, args: argparse.Namespace, results: list[dict]) -> None:
    """Append the metric's draws to ``results``, saved (``--output``) after each size as they grow."""
    distance = get_distance(metric)
    count = images.num_images
    half = count // 2
    pools = np.arange(half), np.arange(half, 2 * half)
    population = float(distance.compare(distance.set_of(images, pools[0]), distance.set_of(images, pools[1])))
    out = {"metric": metric, "interval": distance.interval, "lower_is_closer": distance.lower_is_closer,
           "population": population, "null": {}, "coverage": {}, "settings": {
               key: getattr(args, key) for key in ("draws", "coverage_draws", "permutations", "null_resamples", "resamples",
                                                   "coverage_permutations", "seed")}}
    results.append(out)
    started = time.process_time()

    def save(kind: str, size: int) -> None:
        out["cpu_seconds"] = time.process_time() - started
        print(f"{metric} {kind} {size}: {len(out[kind][size])} draws, {out['cpu_seconds']:.0f} s of CPU so far", flush=True)
        if args.output is not None:
            args.output.write_text(json.dumps(results, indent=1))

    for size in args.null_sizes:
        rows = []
        for draw in range(args.draws):
            order = np.random.default_rng([args.seed, size, draw]).permutation(count)
            result = compare_sets(images.select_images(order[:size]), images.select_images(order[size : 2 * size]), metric,
                                  args.null_resamples, args.permutations, seed=draw)
            rows.append({"value": result.value, "estimate": result.estimate, "ci": list(result.ci),
                         "noise_floor": result.noise_floor, "p_value": result.p_value})
        out["null"][size] = rows
        save("null", size)
    for size in args.coverage_sizes:
        rows = []
        for draw in range(args.coverage_draws or args.draws):
            rng = np.random.default_rng([args.seed, size, draw])
            chosen = [rng.choice(pool, size, replace=False) for pool in pools]
            result = compare_sets(images.select_images(chosen[0]), images.select_images(chosen[1]), metric, args.resamples,
                                  args.coverage_permutations, seed=draw)
            rows.append({"value": result.value, "estimate": result.estimate, "ci": list(result.ci),
                         "noise_floor": result.noise_floor, "p_value": result.p_value,
                         "covers": result.ci[0] <= population <= result.ci[1],
                         "linear_excess": result.value - result.noise_floor,
                         "floor_corrected": floor_corrected(result.value, result.noise_floor, distance.interval)})
        out["coverage"][size] = rows
        save("coverage", size)


def table(results: list[dict]) -> str:
    header = ("| metric (interval) | n a side | null: p < 0.05 | coverage of 95% CI | population | mean value | mean estimate "
              "| mean floor-corrected | mean linear excess | CPU s |")
    lines = [header, "|---|---|---|---|---|---|---|---|---|---|"]
    for out in results:
        sizes = sorted({*out["null"], *out["coverage"]})
        for size in sizes:
            null, cover = out["null"].get(size), out["coverage"].get(size)
            false = f"{100 * np.mean([row['p_value'] < 0.05 for row in null]):.0f}% of {len(null)}" if null else ""
            cells = [""] * 6
            if cover:
                cells = [f"{100 * np.mean([row['covers'] for row in cover]):.0f}% of {len(cover)}", f"{out['population']:.4g}",
                         *(f"{np.mean([row[key] for row in cover]):.4g}" for key in ("value", "estimate", "floor_corrected",
                                                                                     "linear_excess"))]
            lines.append(f"| {out['metric']} ({out['interval']}) | {size} | {false} | " + " | ".join(cells)
                         + f" | {out['cpu_seconds']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a folder of images; its first and second halves by name are the pools")
    parser.add_argument("--metrics", nargs="+", default=None, help=f"default: all of {', '.join(resampled_metrics())}")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/vdna-calibration"), help="per-image DNAs kept here")
    parser.add_argument("--extractor", default="efficientnet_lite0")
    parser.add_argument("--null-sizes", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--coverage-sizes", type=int, nargs="+", default=[25, 100])
    parser.add_argument("--draws", type=int, default=100, help="draws per size")
    parser.add_argument("--coverage-draws", type=int, help="draws per size for the coverage (default: --draws)")
    parser.add_argument("--permutations", type=int, default=200, help="of the null draws, for their p-values")
    parser.add_argument("--null-resamples", type=int, default=2, help="of the null draws (only their p-values are read)")
    parser.add_argument("--resamples", type=int, default=200, help="of the coverage draws, for their intervals and estimates")
    parser.add_argument("--coverage-permutations", type=int, default=50,
                        help="of the coverage draws (only their noise floors are read, for the floor-based corrections)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, help="every draw's numbers, as JSON")
    args = parser.parse_args()

    metrics = args.metrics or resampled_metrics()
    unknown = [name for name in metrics if name not in resampled_metrics()]
    if unknown:
        parser.error(f"--metrics: {', '.join(unknown)} not among the resampled distances {', '.join(resampled_metrics())}")
    distributions = {name: get_distance(name).per_image_distribution() for name in metrics}
    dnas = per_image_dnas(args.folder, sorted(set(distributions.values())), args.cache, args.extractor)
    results = []
    for name in metrics:
        run_metric(name, dnas[distributions[name]], args, results)
    print(f"{args.folder.name}: null draws with {args.permutations} permutations, coverage draws with {args.resamples} "
          f"resamples and {args.coverage_permutations} permutations")
    print(table(results))


if __name__ == "__main__":
    main()
