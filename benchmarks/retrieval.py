"""Ranking speed of every retrieval method: the time to rank a set of per-image DNAs against a reference.

``--images`` and ``--reference`` name saved per-image DNAs (without suffix) made with both
distributions, ``NAME-hist`` (``image-histogram-1000``) and ``NAME-mean`` (``image-mean``), as
``experiments/retrieval.py`` caches them: e.g. the 1,000 ImageNet images against 50 Urban100 images
(``--reference-images 50`` keeps the first 50). Each method ranks every image on its default layers;
the time is the median of ``--repeats`` rankings after a warm-up one, DNAs already loaded.

    python benchmarks/retrieval.py --images retrieval_out/imagenet1k --reference retrieval_out/urban100
"""

from __future__ import annotations

import argparse

from compare import describe, timed

from vdna import load_vdna_from_files
from vdna.apps.retrieval import METHODS, rank_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", required=True, help="saved per-image DNAs NAME (NAME-hist, NAME-mean)")
    parser.add_argument("--reference", required=True, help="saved per-image DNAs of the reference images, likewise")
    parser.add_argument("--reference-images", type=int, default=50, help="use the first N reference images (default 50)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    images = [load_vdna_from_files(f"{args.images}-{kind}") for kind in ("hist", "mean")]
    reference = [load_vdna_from_files(f"{args.reference}-{kind}").select_images(range(args.reference_images))
                 for kind in ("hist", "mean")]
    print(f"ranking {images[0].num_images} images ({images[0].num_neurons} neurons) against {args.reference_images} "
          f"reference images")
    for method in METHODS:
        ranking, times = timed(lambda method=method: rank_images(images, reference, method=method), args.repeats)
        print(f"{method:20s} {describe(times, 1.0, 's')}; closest {ranking[0].name}")


if __name__ == "__main__":
    main()
