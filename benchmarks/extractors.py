"""Every registered extractor: layers, neurons, input size, weight source, and the time and peak
memory to make a 100-image histogram DNA with it on this machine.

Each extractor runs in a fresh process (so peak memory is its own): calibration of activation
ranges on the images, then the DNA (``histogram-1000``), timed separately. Extractors whose
weights cannot be downloaded here run with random weights (said in the table; the network's cost
is the same); ``rand_resnet50`` and ``efficientnet_lite0`` have their real weights.

    python benchmarks/extractors.py ../shared/data/imagenet1k --images 100
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from _common import extractor_as_built, run_in_fresh_process


def run_one(name: str, folder: Path, count: int) -> dict:
    import torch

    from vdna import VDNAProcessor

    built, extractor, weights = extractor_as_built(name)
    files = sorted(folder.iterdir())[:count]
    processor = VDNAProcessor()
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        processor.calibrate(files, built, Path(scratch) / "ranges.json", verbose=False)
        calibration = time.perf_counter() - started
        started = time.perf_counter()
        processor.make_vdna(files, feat_extractor_name=built, activation_ranges=Path(scratch) / "ranges.json", verbose=False)
        making = time.perf_counter() - started
    info = extractor.info
    return {
        "name": name, "layers": len(info.layers), "neurons": info.num_neurons,
        "input": "x".join(map(str, info.input_size)), "weights": weights,
        "sha256": (info.weights_sha256 or "")[:16], "calibrate_s": calibration, "dna_s": making,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--only", nargs="+", help="these extractors only")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.folder, args.images)))
        return
    from vdna.extractors import list_extractors

    rows = []
    for name in args.only or list_extractors():
        result, error = run_in_fresh_process(__file__, args.folder, args.images, name)
        if result is None:
            sys.exit(f"{name} failed: {error}")
        rows.append(result)
        print(f"done {name}", file=sys.stderr)
    print(f"{args.images} images of {args.folder}, histogram-1000, CPU, {rows[0]['threads']} torch threads")
    print("| extractor | layers | neurons | input | weights | sha256 | calibrate s | DNA s | images/s | peak MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['name']} | {row['layers']} | {row['neurons']} | {row['input']} | {row['weights']} | {row['sha256']} | "
              f"{row['calibrate_s']:.1f} | {row['dna_s']:.1f} | {args.images / row['dna_s']:.1f} | {row['peak_mib']:.0f} |")


if __name__ == "__main__":
    main()
