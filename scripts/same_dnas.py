"""Are two versions of the library making the same DNAs, bit for bit? Make them with each, then compare.

    PYTHONPATH=old/src python scripts/same_dnas.py make ../shared/data/imagenet1k /tmp/before
    PYTHONPATH=new/src python scripts/same_dnas.py make ../shared/data/imagenet1k /tmp/after
    python scripts/same_dnas.py compare /tmp/before /tmp/after

``make`` saves the DNA of every image of the folder for each distribution (one run each, with the
defaults, and the histogram once more with two streams), printing each run's time; ``compare``
says, for each saved DNA, whether every array has the same dtype and the same values.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

RUNS = [("histogram-1000", 1), ("histogram-1000", 2), ("gaussian", 1), ("layer-gaussian", 1), ("activation-ranges", 1),
        ("image-histogram-1000", 1), ("image-mean", 1)]


def make(folder: Path, out: Path) -> None:
    from vdna import VDNAProcessor

    out.mkdir(parents=True, exist_ok=True)
    for distribution, streams in RUNS:
        started = time.perf_counter()
        dna = VDNAProcessor().make_vdna(folder, distribution_name=distribution, verbose=False, streams=streams)
        print(f"{distribution} streams={streams}: {dna.num_images} images in {time.perf_counter() - started:.1f} s", flush=True)
        dna.save(out / (distribution + (f"-streams{streams}" if streams > 1 else "")))


def compare(first: Path, second: Path) -> bool:
    same_everywhere = True
    for arrays in sorted(first.glob("*.npz")):
        with np.load(arrays, allow_pickle=False) as mine, np.load(second / arrays.name, allow_pickle=False) as theirs:
            same = sorted(mine.files) == sorted(theirs.files) and all(
                mine[key].dtype == theirs[key].dtype and np.array_equal(mine[key], theirs[key]) for key in mine.files
            )
            print(f"{arrays.stem:28s} {'identical' if same else 'DIFFERENT'} ({len(mine.files)} arrays)")
        same_everywhere &= same
    print("ALL IDENTICAL" if same_everywhere else "SOME DIFFER")
    return same_everywhere


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    made = commands.add_parser("make", help="make and save the DNAs of a folder")
    made.add_argument("folder", type=Path)
    made.add_argument("out", type=Path)
    compared = commands.add_parser("compare", help="compare two folders of saved DNAs")
    compared.add_argument("first", type=Path)
    compared.add_argument("second", type=Path)
    args = parser.parse_args()
    if args.command == "make":
        make(args.folder, args.out)
    else:
        raise SystemExit(0 if compare(args.first, args.second) else 1)


if __name__ == "__main__":
    main()
