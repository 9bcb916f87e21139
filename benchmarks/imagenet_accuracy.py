"""Top-1 accuracy of the default extractor's weights on one ImageNet image per class.

File names are ``nXXXXXXXX_name.jpg``; class indices follow the sorted WordNet ids, as in
ImageNet-1k. Images are centre-cropped and clean-resized to 224; the accuracy is given for the
extractor's normalisation (mean = std = 0.5) and for the usual ImageNet mean/std, to show which
one these weights expect.

    python benchmarks/imagenet_accuracy.py ../shared/data/imagenet1k
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from vdna import create_extractor
from vdna.preprocess import Preprocessor, decode_image
from vdna.sources import list_image_files

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()

    extractor = create_extractor("efficientnet_lite0", device="cpu")
    info = extractor.info
    files = list_image_files(args.folder)
    wordnet_ids = sorted({path.name.split("_")[0] for path in files})
    labels = torch.tensor([wordnet_ids.index(path.name.split("_")[0]) for path in files])
    pixels = [decode_image(path, str(path)) for path in files]
    for label, mean, std in (("mean=std=0.5 (used)", info.mean, info.std), ("ImageNet mean/std", IMAGENET_MEAN, IMAGENET_STD)):
        preprocess = Preprocessor(info.input_size, mean, std, crop="center")
        correct = 0
        with torch.inference_mode():
            for start in range(0, len(files), 50):
                batch = torch.stack([preprocess(image, i) for i, image in enumerate(pixels[start : start + 50])])
                correct += int((extractor.model(batch).argmax(1) == labels[start : start + 50]).sum())
        print(f"{label:22s} top-1 {correct / len(files) * 100:5.1f}% of {len(files)} images ({len(wordnet_ids)} classes)")


if __name__ == "__main__":
    main()
