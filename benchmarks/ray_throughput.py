"""The Ray backend against one process: identical DNAs, and images per second.

Makes the histogram DNA of every image of a folder three times in one run: in this process
(``VDNAProcessor.make_vdna``), then on a local Ray (``ray.init(num_cpus=CPUS)``) with 1 and with 2
actors. Prints, per run, the wall time and images/s, and whether each Ray DNA equals the
single-process one bit for bit (every layer's counts, the image list).

    python benchmarks/ray_throughput.py ../shared/data/imagenet1k
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import ray
import torch

from vdna import VDNAProcessor
from vdna.distributed import make_vdna_ray


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray (default 2)")
    parser.add_argument("--actors", default="1,2", help="actor counts to run (default 1,2)")
    args = parser.parse_args()
    count = sum(1 for path in args.folder.rglob("*") if path.is_file())
    started = time.perf_counter()
    local = VDNAProcessor().make_vdna(args.folder, verbose=False)
    local_time = time.perf_counter() - started
    rows = [("single process", local_time, "reference")]
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    make_vdna_ray(sorted(args.folder.iterdir())[:4], verbose=False)  # start-up and worker imports
    for actors in (int(a) for a in args.actors.split(",")):
        started = time.perf_counter()
        distributed = make_vdna_ray(args.folder, verbose=False, num_actors=actors)
        elapsed = time.perf_counter() - started
        equal_layers = sum(torch.equal(distributed.data[layer], local.data[layer]) for layer in local.neurons_list)
        same_images = distributed.provenance.images == local.provenance.images
        rows.append((f"Ray, {actors} actor{'s' if actors > 1 else ''}", elapsed,
                     f"{equal_layers}/{len(local.neurons_list)} layers bit-identical, image list {'equal' if same_images else 'DIFFERENT'}"))
    ray.shutdown()
    print(f"{count} images of {args.folder}, histogram-1000, torch threads {torch.get_num_threads()}, Ray CPUs {args.cpus}")
    print(f"{'run':18s} {'wall s':>8s} {'images/s':>9s}  identity")
    for name, elapsed, identity in rows:
        print(f"{name:18s} {elapsed:8.1f} {local.num_images / elapsed:9.1f}  {identity}")


if __name__ == "__main__":
    main()
