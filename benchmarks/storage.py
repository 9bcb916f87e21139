"""File size per neuron and load time of a histogram DNA: vdna 0.1.1's npz against the compact encoding.

    python benchmarks/storage.py ../shared/data/imagenet1k --out /tmp/dna-storage
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from vdna import VDNAProcessor, load_vdna_from_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="images whose DNA is measured")
    parser.add_argument("--out", type=Path, required=True, help="folder for the files written")
    parser.add_argument("--distribution", default="histogram-1000")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    vdna = VDNAProcessor().make_vdna(args.folder, distribution_name=args.distribution, verbose=False)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{vdna.name} DNA of {vdna.num_images} images, {vdna.num_neurons} neurons")
    print(f"{'encoding':10s} {'bytes':>10s} {'bytes/neuron':>13s} {'save ms':>8s} {'load ms':>8s}")
    for label, compact in (("npz", False), ("compact", True)):
        path = args.out / label
        start = time.perf_counter()
        vdna.save(path, compact=compact)
        saved = time.perf_counter() - start
        arrays = path.with_suffix(".vdnz" if compact else ".npz")
        loads = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            loaded = load_vdna_from_files(path)
            loads.append(time.perf_counter() - start)
        assert all(torch.equal(loaded.data[layer], vdna.data[layer]) for layer in vdna.neurons_list)
        size = arrays.stat().st_size
        print(
            f"{label:10s} {size:10d} {size / vdna.num_neurons:13.1f} {saved * 1e3:8.0f} "
            f"{statistics.median(loads) * 1e3:8.0f}"
        )


if __name__ == "__main__":
    main()
