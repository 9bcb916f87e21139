"""What tracking every neuron's best images (:class:`vdna.explain.NeuronMaxima`) adds to a run.

In one process, runs over the same images alternate with the same runs feeding a tracker of every
neuron as well, so each pair meets the same load: runs as ``make_vdna`` makes the default histogram
DNA, and runs as the report makes its per-image DNAs (``image-histogram-1000`` and ``image-mean``
in one pass). Medians over the repeats and the median of the pairs' ratios are printed. The tracker's update alone is also timed on activations computed beforehand (no
network), per image.

    python benchmarks/explain_tracking.py ../shared/data/imagenet1k --images 200 --repeats 5 [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from vdna import RunConfig, VDNAProcessor
from vdna.engine import run_preprocessor
from vdna.explain import NeuronMaxima
from vdna.preprocess import decode_image
from vdna.sources import list_image_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--per-set", type=int, default=6)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    processor = VDNAProcessor()
    config = RunConfig(num_images=args.images, verbose=False)
    passes = {"make_vdna (histogram-1000)": ["histogram-1000"], "report (image-histogram-1000, image-mean)": [
        "image-histogram-1000", "image-mean"]}
    times: dict[str, dict[str, list[float]]] = {}
    for label, distributions in passes.items():
        processor.run(args.folder, config, distributions)  # warm-up: extractor built, kernels compiled, files cached
        plain, tracked = [], []
        for _ in range(args.repeats):
            started = time.perf_counter()
            processor.run(args.folder, config, distributions)
            plain.append(time.perf_counter() - started)
            maxima = NeuronMaxima(args.per_set)
            started = time.perf_counter()
            processor.run(args.folder, config, distributions, trackers=[maxima])
            tracked.append(time.perf_counter() - started)
            assert maxima.num_images == args.images
        times[label] = {"plain": plain, "tracked": tracked}

    extractor = processor.get_extractor()
    preprocessor = run_preprocessor(extractor.info, config)
    paths = list_image_files(Path(args.folder))[:20]
    with torch.inference_mode():
        activations = [extractor(preprocessor(decode_image(path, str(path)), i)[None]) for i, path in enumerate(paths)]
    updates = []
    for _ in range(args.repeats):
        maxima = NeuronMaxima(args.per_set)
        started = time.perf_counter()
        for position, batch in enumerate(activations):
            maxima.update(batch, [position])
        updates.append((time.perf_counter() - started) / len(activations))

    print(json.dumps({
        "images": args.images,
        "torch_threads": torch.get_num_threads(),
        "neurons_tracked": extractor.info.num_neurons,
        "runs_s": times,
        "medians": {
            label: {
                "plain_s": statistics.median(runs["plain"]),
                "tracked_s": statistics.median(runs["tracked"]),
                "pair_ratio": statistics.median(t / p for p, t in zip(runs["plain"], runs["tracked"])),
                "added_ms_per_image": 1000 * (statistics.median(runs["tracked"]) - statistics.median(runs["plain"])) / args.images,
            }
            for label, runs in times.items()
        },
        "tracker_update_ms_per_image": {"median": 1000 * statistics.median(updates), "all": [1000 * u for u in updates]},
    }, indent=2))


if __name__ == "__main__":
    main()
