"""DNAMetric.update against the extractor alone: time per batch of real images, side by side in one process.

A batch of real photographs (centre square, resized with Pillow to ``--size`` pixels, uint8, as a
generator would give them) is given to ``DNAMetric.update`` (clean resize to the network's input
on the CPU, forward pass, histograms); the plain forward pass is the extractor alone over the same
images already preprocessed, once as one batch and once an image at a time (as ``update`` runs
it on the CPU, which keeps the DNA equal to make_vdna's). Each repeat times all of them in turn,
so the ratios compare runs made under the same load; medians over the repeats are printed.

    python benchmarks/metrics.py ../shared/data/imagenet1k --batch 64 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def real_batch(folder: Path, count: int, size: int) -> torch.Tensor:
    """The first ``count`` images of ``folder``, centre squares resized to ``size``, as uint8 ``(count, 3, size, size)``."""
    arrays = []
    for path in sorted(folder.iterdir())[:count]:
        image = Image.open(path).convert("RGB")
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        square = image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)
        arrays.append(np.asarray(square))
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a folder of real images")
    parser.add_argument("--batch", type=int, default=64, help="images per batch")
    parser.add_argument("--size", type=int, default=256, help="side of the square images given to update")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--distribution", default="histogram-1000")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from vdna.metrics import DNAMetric
    from vdna.preprocess import Preprocessor

    images = real_batch(args.folder, args.batch, args.size)
    metric = DNAMetric(distribution_name=args.distribution)
    extractor = metric.extractor
    info = extractor.info
    preprocess = Preprocessor(info.input_size, info.mean, info.std)
    inputs = torch.stack([preprocess(np.ascontiguousarray(image.permute(1, 2, 0).numpy()), index)
                          for index, image in enumerate(images)])

    def update() -> None:
        metric.update(images)

    def preprocessing() -> None:
        for index, image in enumerate(images):
            preprocess(np.ascontiguousarray(image.permute(1, 2, 0).numpy()), index)

    @torch.inference_mode()
    def forward_batch() -> None:
        extractor(inputs)

    @torch.inference_mode()
    def forward_each() -> None:
        for image in inputs.split(1):
            extractor(image)

    metric.update(images[:2])  # compiled kernels and first allocations out of the way
    forward_batch()
    runs: dict[str, list[float]] = {"update": [], "preprocess": [], "forward_each": [], "forward_batch": []}
    for _ in range(args.repeats):
        metric.reset()
        runs["update"].append(timed(update))
        runs["preprocess"].append(timed(preprocessing))
        runs["forward_each"].append(timed(forward_each))
        runs["forward_batch"].append(timed(forward_batch))
    assert int(metric.compute().num_images) == args.batch

    median = {name: statistics.median(values) for name, values in runs.items()}
    ratios = {name: statistics.median(u / t for u, t in zip(runs["update"], runs[name])) for name in ("forward_each", "forward_batch")}
    print(f"{args.batch} images of {args.folder} ({args.size}x{args.size} uint8) -> {info.name} "
          f"{'x'.join(map(str, info.input_size))}, {args.distribution}, CPU, {torch.get_num_threads()} torch threads, "
          f"{args.repeats} repeats")
    print("| step | median s per batch | ms per image | all repeats (s) |")
    print("| --- | --- | --- | --- |")
    labels = {
        "update": "DNAMetric.update (clean resize + forward one image at a time + histograms)",
        "preprocess": "clean resize alone (part of update)",
        "forward_each": "extractor alone, one image at a time",
        "forward_batch": f"extractor alone, one batch of {args.batch}",
    }
    for name, label in labels.items():
        print(f"| {label} | {median[name]:.2f} | {1000 * median[name] / args.batch:.1f} | "
              f"{', '.join(f'{value:.2f}' for value in runs[name])} |")
    print(f"update / extractor one image at a time: {ratios['forward_each']:.2f} (median of per-repeat ratios)")
    print(f"update / extractor on the whole batch: {ratios['forward_batch']:.2f} (median of per-repeat ratios)")


if __name__ == "__main__":
    main()
