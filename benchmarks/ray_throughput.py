"""The Ray backend against one process: identical DNAs, and images per second.

Makes the histogram DNA of every image of a folder in one process (``VDNAProcessor.make_vdna``, a
fresh process per torch thread count used), then on a local Ray (``ray.init(num_cpus=CPUS)``) with each
``ACTORSxTHREADS`` configuration. Prints, per run, the wall time and images/s, and whether each
Ray DNA equals, bit for bit, the single-process DNA made with as many torch threads (every
layer's counts, and the image list). CPU convolutions round differently with different thread
counts, hence one reference per count.

    python benchmarks/ray_throughput.py ../shared/data/imagenet1k --configs 1x2 2x1 2x2
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ray
import torch

from vdna import load_vdna_from_files
from vdna.distributed import make_vdna_ray


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray (default 2)")
    parser.add_argument("--configs", nargs="+", default=["1x2", "2x1", "2x2"], help="ACTORSxTHREADS runs on Ray")
    args = parser.parse_args()
    configs = [tuple(int(part) for part in config.split("x")) for config in args.configs]
    rows, references = [], {}
    scratch = tempfile.TemporaryDirectory()
    for threads in sorted({threads for _, threads in configs}, reverse=True):
        # each reference made in a fresh process, as a user would make it
        path = Path(scratch.name) / f"threads{threads}"
        script = (
            "import sys, time, torch\n"
            "from vdna import VDNAProcessor\n"
            f"torch.set_num_threads({threads})\n"
            "started = time.perf_counter()\n"
            f"dna = VDNAProcessor().make_vdna({str(args.folder)!r}, verbose=False)\n"
            "print(time.perf_counter() - started)\n"
            f"dna.save({str(path)!r})\n"
        )
        elapsed = float(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()[0])
        references[threads] = load_vdna_from_files(path)
        rows.append((f"one process, {threads} thread{'s' if threads > 1 else ''}", elapsed, "reference"))
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    make_vdna_ray(sorted(args.folder.iterdir())[:4], verbose=False)  # start-up and worker imports
    for actors, threads in configs:
        started = time.perf_counter()
        distributed = make_vdna_ray(args.folder, verbose=False, num_actors=actors, threads_per_actor=threads)
        elapsed = time.perf_counter() - started
        local = references[threads]
        equal_layers = sum(torch.equal(distributed.data[layer], local.data[layer]) for layer in local.neurons_list)
        same_images = distributed.provenance.images == local.provenance.images
        rows.append((f"Ray, {actors} actor{'s' if actors > 1 else ''} x {threads} thread{'s' if threads > 1 else ''}", elapsed,
                     f"{equal_layers}/{len(local.neurons_list)} layers bit-identical to one process with {threads} "
                     f"thread{'s' if threads > 1 else ''}, image list {'equal' if same_images else 'DIFFERENT'}"))
    ray.shutdown()
    count = next(iter(references.values())).num_images
    print(f"{count} images of {args.folder}, histogram-1000, Ray CPUs {args.cpus}")
    print("| run | wall s | images/s | identity |")
    print("| --- | --- | --- | --- |")
    for name, elapsed, identity in rows:
        print(f"| {name} | {elapsed:.1f} | {count / elapsed:.1f} | {identity} |")


if __name__ == "__main__":
    main()
