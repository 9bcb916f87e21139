"""Section 5.1 in small: find augmented images of a reference set among images of other sets (Fig. 3).

Reference: the first half of Urban100 (sorted names). Candidates: the second half of Urban100, each
image transformed by two random operations of appendix A.3 (the relevant images), mixed with
BSD100, Sun-Hays 80 and the ImageNet sample. Every candidate is ranked by its distance to the
reference set: dna-emd between its own DNA and the reference DNA (all neurons; first and last
layer only), and the paper's pairwise baselines, pixel L2 and SSIM, averaged over the reference
images. Prints the area under each precision-recall curve (average precision).

    python experiments/retrieval.py ../shared/data --out retrieval_out
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _common import cached, image_files
from PIL import Image

from vdna import VDNAProcessor
from vdna.apps.augment import random_augmentation
from vdna.apps.retrieval import average_precision, precision_recall_curve, rank_images
from vdna.distances import emd_to_reference
from vdna.plots import plot_precision_recall, plot_ranked_images

SIDE = 224


def _pixels(path: Path, grey: bool = False) -> np.ndarray:
    with Image.open(path) as image:
        image = image.convert("L" if grey else "RGB").resize((SIDE, SIDE), Image.Resampling.BICUBIC)
        return np.asarray(image, dtype=np.float32)


def pixel_l2(candidates: list[Path], references: list[Path]) -> np.ndarray:
    """Mean over reference images of the mean squared pixel difference, per candidate."""
    c = np.stack([_pixels(p).reshape(-1) for p in candidates]).astype(np.float64)
    r = np.stack([_pixels(p).reshape(-1) for p in references]).astype(np.float64)
    squared = (c * c).sum(1)[:, None] + (r * r).sum(1)[None, :] - 2 * c @ r.T
    return squared.mean(axis=1) / c.shape[1]


def ssim_distance(candidates: list[Path], references: list[Path]) -> np.ndarray:
    """1 - mean over reference images of the SSIM of the grey images, per candidate."""
    from skimage.metrics import structural_similarity

    refs = [_pixels(p, grey=True) for p in references]
    out = np.empty(len(candidates))
    for i, path in enumerate(candidates):
        image = _pixels(path, grey=True)
        out[i] = 1 - np.mean([structural_similarity(image, ref, data_range=255.0) for ref in refs])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="folder for augmented images, DNAs and plots")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    urban = image_files(args.data / "urban100")
    references, held_out = urban[: len(urban) // 2], urban[len(urban) // 2 :]
    augmented_folder = args.out / "augmented"
    augmented_folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    augmented = []
    for path in held_out:
        target = augmented_folder / f"{path.stem}.png"
        with Image.open(path) as image:
            changed, names = random_augmentation(image, rng)
        changed.save(target)
        augmented.append(target)
    others = [p for name in ("bsd100", "sunhays80", "imagenet1k") for p in image_files(args.data / name)]
    candidates = augmented + others
    relevant = np.array([i < len(augmented) for i in range(len(candidates))])
    print(f"reference: {len(references)} Urban100 images; candidates: {len(augmented)} augmented Urban100 "
          f"+ {len(others)} others ({relevant.mean():.1%} relevant)")

    processor = VDNAProcessor()
    started = time.perf_counter()
    images = cached(args.out, "candidates", lambda: processor.make_vdna(candidates, distribution_name="image-histogram-1000"))
    reference = cached(args.out, "reference", lambda: processor.make_vdna(references))
    print(f"DNAs: {time.perf_counter() - started:.1f} s")
    first, last = reference.layers[0], reference.layers[-1]
    scores = {}
    started = time.perf_counter()
    scores["dna-emd (all neurons)"] = emd_to_reference(images, reference).numpy()
    ranking_time = time.perf_counter() - started
    scores[f"dna-emd ({first})"] = emd_to_reference(images, reference, neurons={first: None}).numpy()
    scores[f"dna-emd ({last})"] = emd_to_reference(images, reference, neurons={last: None}).numpy()
    started = time.perf_counter()
    scores["pixel L2"] = pixel_l2(candidates, references)
    l2_time = time.perf_counter() - started
    started = time.perf_counter()
    scores["SSIM"] = ssim_distance(candidates, references)
    ssim_time = time.perf_counter() - started
    print(f"distances of {len(candidates)} candidates: dna-emd {ranking_time:.2f} s, pixel L2 {l2_time:.1f} s, SSIM {ssim_time:.1f} s")
    print(f"{'method':28s} {'PR AUC':>8s}  relevant in the first {len(augmented)}")
    curves = {}
    for method, distances in scores.items():
        order = np.argsort(distances, kind="stable")
        hits = int(relevant[order[: len(augmented)]].sum())
        print(f"{method:28s} {average_precision(distances, relevant):8.4f}  {hits}/{len(augmented)}")
        precision, recall, _ = precision_recall_curve(distances, relevant)
        curves[method] = (precision, recall)
    print(f"chance: {relevant.mean():.4f}")
    plot_precision_recall(curves, args.out / "precision_recall.png")
    plot_ranked_images(rank_images(images, reference), args.out / "ranked.png", per_row=8)
    print(f"plots -> {args.out / 'precision_recall.png'}, {args.out / 'ranked.png'}")


if __name__ == "__main__":
    main()
