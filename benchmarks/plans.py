"""The forward plans of every extractor of the zoo on this machine: images per second of each candidate.

Each extractor runs in a fresh process, with its real weights where they are here and random
weights otherwise (the network's cost is the same), through ``VDNAProcessor.measure_plans``:
whole runs of the folder's first ``--images`` images and of half as many (decoded and resized as
any run does) with each candidate plan, after a warm-up run; a plan's speed is the images the
longer run adds over the time it adds. The fastest plan of
each is what ``vdna plan --extractor NAME --save`` would keep, and what ``RECORDED_CPU_PLANS``
records for a 2-core CPU.

    python benchmarks/plans.py ../shared/data/imagenet1k --images 64 [--extractors inception vgg16 ...]
"""

from __future__ import annotations

import argparse
import json

from _common import extractor_as_built, run_in_fresh_process


def run_one(name: str, folder: str, images: int) -> dict:
    from vdna import VDNAProcessor

    built, _, weights = extractor_as_built(name)
    timings = VDNAProcessor().measure_plans(built, folder, images)
    return {"extractor": name, "weights": weights,
            "images_per_second": {str(plan): round(speed, 2) for plan, speed in timings},
            "fastest": str(max(timings, key=lambda timing: timing[1])[0])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="images to time the runs on (e.g. ../shared/data/imagenet1k)")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--extractors", nargs="*", help="default: every built-in extractor")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.folder, args.images)))
        return
    from vdna.extractors import BUILTIN_EXTRACTORS

    for name in args.extractors or sorted(BUILTIN_EXTRACTORS):
        result, error = run_in_fresh_process(__file__, args.folder, args.images, name)
        if result is None:
            print(f"| {name} | failed: {error} |")
            continue
        speeds = " / ".join(f"{speed:g}" for speed in result["images_per_second"].values())
        print(f"| {name} | {speeds} | {result['fastest']} |", flush=True)

if __name__ == "__main__":
    main()
