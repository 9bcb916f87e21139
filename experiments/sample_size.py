"""Section 5.2 in small: how many images dna-emd and fd need (Fig. 5).

Random subsets of growing size of ImageNet images (ten seeds) are compared with a reference of
other images (Urban100 + BSD100 + Sun-Hays 80); prints mean and standard deviation per size and
the size from which each distance stays within 5% of its value with all images.

    python experiments/sample_size.py ../shared/data --plot sample_size.png
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _common import cached, image_files

from vdna import VDNAProcessor
from vdna.apps.sample_size import sample_size_curve
from vdna.plots import plot_sample_size_curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="folder holding imagenet1k, urban100, bsd100, sunhays80")
    parser.add_argument("--sizes", default="5,10,20,50,100,200,300,500,700,1000")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--tolerance", type=float, default=0.05)
    parser.add_argument("--cache", type=Path, help="keep the DNAs made here, and reuse them")
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()
    processor = VDNAProcessor()
    images = image_files(args.data / "imagenet1k")
    reference_images = [p for name in ("urban100", "bsd100", "sunhays80") for p in image_files(args.data / name)]
    started = time.perf_counter()
    per_image = cached(args.cache, "imagenet1k_images", lambda: processor.make_vdna(images, distribution_name="image-histogram-1000"))
    means = cached(args.cache, "imagenet1k_means", lambda: processor.make_vdna(images, distribution_name="image-mean"))
    reference = cached(args.cache, "reference_hist", lambda: processor.make_vdna(reference_images))
    reference_means = cached(args.cache, "reference_means", lambda: processor.make_vdna(reference_images, distribution_name="image-mean"))
    print(f"DNAs of {len(per_image)} + {reference.num_images} images ready in {time.perf_counter() - started:.0f} s")
    sizes = [int(size) for size in args.sizes.split(",")]
    last = reference.layers[-1]
    curves = {
        "dna-emd": sample_size_curve(per_image, reference, sizes, args.seeds),
        "dna-fd": sample_size_curve(means, reference_means.gaussian(), sizes, args.seeds, metric="nfd"),
        f"fd ({last})": sample_size_curve(means, reference_means.layer_gaussian(), sizes, args.seeds, layers=[last]),
        "fd (all layers)": sample_size_curve(means, reference_means.layer_gaussian(), sizes, args.seeds),
    }
    header = "size  " + "  ".join(f"{label:>24}" for label in curves)
    print(header)
    for column, size in enumerate(sizes):
        cells = [f"{c.mean[column]:11.4f} +- {c.std[column]:9.4f}" for c in curves.values()]
        print(f"{size:4d}  " + "  ".join(f"{cell:>24}" for cell in cells))
    for label, curve in curves.items():
        relative = curve.mean / curve.mean[-1]
        print(f"{label}: within {100 * args.tolerance:.0f}% of its value with all {sizes[-1]} images from "
              f"{curve.settled_size(args.tolerance)} images on (mean/final at the smallest size: {relative[0]:.2f})")
    if args.plot:
        plot_sample_size_curves(curves, args.plot)
        print(f"plot -> {args.plot}")


if __name__ == "__main__":
    main()
