"""Section 5.3 in small: make a distance ignore one attribute and keep the others (Table 2).

Synthetic attributes: six image transformations, each given independently to half of the ImageNet
sample's images at random. For each attribute a, D_a holds the images with it and D_not_a those
without, in three disjoint splits (train 50%, validation 25%, test 25%). Weights are learned for
each target attribute in turn (Adam, A.4 defaults, early stopping on validation) for dna-emd
(per neuron), dna-fd (per neuron) and layer-wise fd (per layer); the table gives, averaged over
targets, the target's sensitivity removal Delta_a and the other attributes' mean |Delta_b| on the
test split.

    python experiments/attributes.py ../shared/data/imagenet1k --out attributes_out
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _common import cached, image_files
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from vdna import VDNAProcessor
from vdna.apps.attributes import evaluate_removal, learn_attribute_removal

ATTRIBUTES = {
    "grey": lambda image: ImageOps.grayscale(image).convert("RGB"),
    "blur": lambda image: image.filter(ImageFilter.GaussianBlur(2.0)),
    "dark": lambda image: ImageEnhance.Brightness(image).enhance(0.6),
    "posterize": lambda image: ImageOps.posterize(image, 3),
    "upside_down": lambda image: image.rotate(180),
    "noise": None,  # Gaussian noise, sigma 20, seeded per image
}


def transform(path: Path, attributes: list[str], seed: int) -> Image.Image:
    with Image.open(path) as image:
        result = image.convert("RGB")
    for name in ATTRIBUTES:
        if name not in attributes:
            continue
        if name == "noise":
            pixels = np.asarray(result, dtype=np.float32)
            noisy = pixels + np.random.default_rng(seed).normal(0, 20, pixels.shape)
            result = Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8))
        else:
            result = ATTRIBUTES[name](result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    files = image_files(args.images)
    rng = np.random.default_rng(args.seed)
    has = {name: rng.random(len(files)) < 0.5 for name in ATTRIBUTES}
    folder = args.out / "images"
    folder.mkdir(parents=True, exist_ok=True)
    transformed = []
    for index, path in enumerate(files):
        target = folder / f"{index:04d}.png"
        if not target.exists():
            transform(path, [name for name in ATTRIBUTES if has[name][index]], args.seed + index).save(target)
        transformed.append(target)
    order = rng.permutation(len(files))
    splits = {"train": order[: len(files) // 2], "validation": order[len(files) // 2 : 3 * len(files) // 4],
              "test": order[3 * len(files) // 4 :]}

    processor = VDNAProcessor()
    started = time.perf_counter()
    images = cached(args.out, "images", lambda: processor.make_vdna(transformed, distribution_name="image-histogram-1000"))
    means = cached(args.out, "means", lambda: processor.make_vdna(transformed, distribution_name="image-mean"))
    print(f"per-image DNAs of {len(images)} images: {time.perf_counter() - started:.0f} s")

    def pairs(split: str, metric: str) -> dict:
        chosen = splits[split]
        result = {}
        for name in ATTRIBUTES:
            with_it, without = chosen[has[name][chosen]], chosen[~has[name][chosen]]
            if metric == "emd":
                result[name] = (images.subset(with_it), images.subset(without))
            elif metric == "nfd":
                result[name] = (means.gaussian(with_it), means.gaussian(without))
            else:
                result[name] = (means.layer_gaussian(with_it), means.layer_gaussian(without))
        return result

    print(f"{'metric':8s} {'target':12s} {'Delta_a':>8s} {'mean|Delta_b|':>14s} {'iterations':>10s}")
    summary = {}
    for metric, label in (("fd", "fd (layer-wise)"), ("nfd", "dna-fd"), ("emd", "dna-emd")):
        started = time.perf_counter()
        train, validation, test = (pairs(split, metric) for split in ("train", "validation", "test"))
        removals, deviations = [], []
        for target in ATTRIBUTES:
            removal = learn_attribute_removal(train, validation, target, metric)
            removed, deviated = evaluate_removal(removal, test)
            removals.append(removed)
            deviations.append(deviated)
            print(f"{metric:8s} {target:12s} {100 * removed:7.1f}% {100 * deviated:13.1f}% {removal.iterations:10d}")
        summary[label] = (np.mean(removals), np.std(removals), np.mean(deviations), np.std(deviations))
        print(f"  ({time.perf_counter() - started:.0f} s)")
    print()
    print(f"{'':18s} {'mean Delta_a (%) ↑':>22s} {'mean |Delta_b| (%) ↓':>22s}   (test split, mean +- std over the 6 targets)")
    for label, (removal, removal_std, deviation, deviation_std) in summary.items():
        print(f"{label:18s} {100 * removal:14.1f} +- {100 * removal_std:4.1f} {100 * deviation:14.1f} +- {100 * deviation_std:4.1f}")


if __name__ == "__main__":
    main()
