"""EMD between the two halves of several image sets, and across sets.

Each folder's sorted images are split into a first and a second half; the DNA of each half is made
with the chosen extractor, and the EMD between every pair of halves is printed as a matrix. A set
whose halves are closer to each other than to any half of another set is marked "ok".

    python benchmarks/halves_matrix.py ../shared/data/urban100 ../shared/data/bsd100 \
        ../shared/data/sunhays80 ../shared/data/imagenet1k
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vdna import EMD, VDNAProcessor
from vdna.sources import list_image_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--extractor", default="efficientnet_lite0")
    parser.add_argument("--distribution", default="histogram-1000")
    args = parser.parse_args()

    processor = VDNAProcessor()
    names, dnas = [], []
    started, images = time.perf_counter(), 0
    for folder in args.folders:
        files = list_image_files(folder)
        middle = len(files) // 2
        for label, part in (("1", files[:middle]), ("2", files[middle:])):
            names.append(f"{folder.name}/{label}")
            dnas.append(
                processor.make_vdna(
                    part, feat_extractor_name=args.extractor, distribution_name=args.distribution, verbose=False
                )
            )
            images += len(part)
    elapsed = time.perf_counter() - started

    matrix = [[EMD(a, b).item() for b in dnas] for a in dnas]
    width = max(len(name) for name in names) + 2
    print(f"EMD ({args.extractor}, {args.distribution}), {images} images in {elapsed:.0f} s")
    print(" " * width + "".join(f"{name:>{width}}" for name in names))
    for name, row in zip(names, matrix):
        print(f"{name:<{width}}" + "".join(f"{value:>{width}.3f}" for value in row))
    print()
    for index in range(0, len(names), 2):
        within = matrix[index][index + 1]
        across = min(matrix[i][j] for i in (index, index + 1) for j in range(len(names)) if j // 2 != index // 2)
        verdict = "ok" if within < across else "NOT closer"
        print(f"{names[index].split('/')[0]}: halves {within:.3f}, nearest other set {across:.3f} -> {verdict}")


if __name__ == "__main__":
    main()
