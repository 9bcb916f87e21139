"""Compute the activation ranges shipped for the extractors that work offline (efficientnet_lite0, rand_resnet50).

The ranges are the per-neuron minimum and maximum activations over every image of the benchmark
folders (Urban100, BSD100, Sun-Hays 80, Set14, an ImageNet sample) and every image of
scikit-image's ``skimage.data``; histograms then widen them by 20% (appendix A.2 of the paper).

    python scripts/make_default_ranges.py --data ../shared/data --extractor efficientnet_lite0 \
        -o src/vdna/extractors/data/efficientnet_lite0.ranges.json
    python scripts/make_default_ranges.py --data ../shared/data --extractor rand_resnet50 \
        -o src/vdna/extractors/data/rand_resnet50.ranges.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from vdna import VDNAProcessor, merge_vdnas
from vdna.config import DEFAULT_EXTRACTOR


def skimage_images() -> list[np.ndarray]:
    """Every 2-D or colour image of ``skimage.data`` that ships with scikit-image."""
    import skimage.data

    images = []
    for name in sorted(skimage.data.__all__):
        loader = getattr(skimage.data, name)
        if not callable(loader) or name in {"download_all", "load_stereo", "file_hash"}:
            continue
        try:
            value = loader()
        except Exception:  # images that need a download are not part of the package
            continue
        stack = value if name == "lfw_subset" else [value]
        for image in stack:
            if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or min(image.shape[:2]) < 8:
                continue
            if image.ndim == 3 and image.shape[2] not in (3, 4):
                continue
            if image.dtype == bool:
                image = image.astype(np.uint8) * 255
            elif image.dtype != np.uint8:
                image = np.clip(image.astype(np.float64), 0.0, 1.0)
            images.append(image)
    return images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder holding the benchmark image folders")
    parser.add_argument("-o", "--output", type=Path, required=True, help="ranges file to write")
    parser.add_argument("--extractor", default=DEFAULT_EXTRACTOR, help=f"extractor name (default: {DEFAULT_EXTRACTOR})")
    parser.add_argument("--device", default=None)
    parser.add_argument("--streams", type=int, default=1, help="CPU: streams running the network side by side")
    args = parser.parse_args()

    processor = VDNAProcessor()
    folders = sorted(path for path in args.data.iterdir() if path.is_dir())
    sources: list = [*folders, skimage_images()]
    dnas = [
        processor.make_vdna(source, distribution_name="activation-ranges", feat_extractor_name=args.extractor,
                            device=args.device, streams=args.streams)
        for source in sources
    ]
    merged = merge_vdnas(dnas)
    described = ", ".join(folder.name for folder in folders) + ", skimage.data"
    ranges = merged.to_ranges(description=f"min/max over {merged.num_images} images: {described}")
    sha = ranges.save(args.output)
    print(f"{merged.num_images} images, {merged.num_neurons} neurons -> {args.output} (sha256 {sha})")


if __name__ == "__main__":
    main()
