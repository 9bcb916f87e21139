"""Making a DNA end to end, against the forward pass alone over the same preprocessed images.

In one process: every image of the folder is decoded and preprocessed into memory first (not
timed); then the extractor's forward pass alone runs over them, as the pipeline runs it (one
image at a time on the CPU); then ``make_vdna`` runs on the folder itself (decoding, resizing,
forward pass and histograms). Both are repeated and their medians compared. Peak memory is
measured in fresh processes (main process and decoding workers) for several image counts.

    python benchmarks/end_to_end.py ../shared/data/imagenet1k --peak-memory 100 1000
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from vdna import VDNAProcessor
from vdna.preprocess import Preprocessor, decode_image
from vdna.sources import list_image_files


def peak_memory_mib(folder: Path, count: int, distribution: str) -> dict[str, float]:
    """Peak resident memory of a fresh process making the DNA of ``count`` images."""
    script = (
        "import json, resource, sys\n"
        "from vdna import VDNAProcessor\n"
        f"VDNAProcessor().make_vdna({str(folder)!r}, num_images={count}, distribution_name={distribution!r}, verbose=False)\n"
        "own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(json.dumps({'main': own, 'worker': workers}))\n"
    )
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--distribution", default="histogram-1000")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--peak-memory", type=int, nargs="*", default=[], metavar="N", help="image counts")
    args = parser.parse_args()

    # First, while this process is small: Linux carries a process's peak memory over into a
    # program it starts, so a child started later would report this process's peak as its own.
    peaks = {count: peak_memory_mib(args.folder, count, args.distribution) for count in args.peak_memory}
    processor = VDNAProcessor()
    extractor = processor.get_extractor(device="cpu")
    info = extractor.info
    files = list_image_files(args.folder)
    preprocess = Preprocessor(info.input_size, info.mean, info.std)
    images = [preprocess(decode_image(path, str(path)), index) for index, path in enumerate(files)]

    def forward_only() -> None:
        with torch.inference_mode():
            for image in images:
                extractor(image[None])

    def make() -> None:
        processor.make_vdna(args.folder, distribution_name=args.distribution, verbose=False)

    forward_only()  # warm-up of both, then alternate
    make()
    forward_times, make_times = [], []
    for _ in range(args.repeats):
        for function, times in ((forward_only, forward_times), (make, make_times)):
            start = time.perf_counter()
            function()
            times.append(time.perf_counter() - start)
    forward, whole = statistics.median(forward_times), statistics.median(make_times)
    print(f"{len(files)} images, {info.name}, {args.distribution}, {torch.get_num_threads()} threads")
    print(f"forward pass alone      {forward:8.2f} s  {len(files) / forward:6.1f} images/s")
    print(f"make_vdna end to end    {whole:8.2f} s  {len(files) / whole:6.1f} images/s")
    print(f"beyond the forward pass {whole - forward:8.2f} s  {(whole - forward) / forward * 100:5.1f}% of the forward pass")
    for count, peak in peaks.items():
        print(f"peak memory, {count:5d} images: main process {peak['main']:7.1f} MiB, largest worker {peak['worker']:7.1f} MiB")


if __name__ == "__main__":
    main()
