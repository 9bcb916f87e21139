"""What tracking every neuron's best images (:class:`vdna.explain.NeuronMaxima`) adds to a run.

In one process, runs of ``make_vdna`` (the default histogram DNA, through ``VDNAProcessor.run``)
over the same images alternate with the same runs feeding a tracker of every neuron as well, so
each pair meets the same load; medians over the repeats and the median of the pairs' ratios are
printed. The tracker's update alone is also timed on activations computed beforehand (no
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
    processor.run(args.folder, config)  # warm-up: extractor built, kernels compiled, files in the page cache
    plain, tracked = [], []
    for _ in range(args.repeats):
        started = time.perf_counter()
        processor.run(args.folder, config)
        plain.append(time.perf_counter() - started)
        maxima = NeuronMaxima(args.per_set)
        started = time.perf_counter()
        processor.run(args.folder, config, trackers=[maxima])
        tracked.append(time.perf_counter() - started)
        assert maxima.num_images == args.images

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

    ratios = [t / p for p, t in zip(plain, tracked)]
    print(json.dumps({
        "images": args.images,
        "torch_threads": torch.get_num_threads(),
        "neurons_tracked": extractor.info.num_neurons,
        "run_s": {"plain": plain, "tracked": tracked},
        "median_run_s": {"plain": statistics.median(plain), "tracked": statistics.median(tracked)},
        "median_ratio_tracked_to_plain": statistics.median(ratios),
        "tracker_update_ms_per_image": {"median": 1000 * statistics.median(updates), "all": [1000 * u for u in updates]},
    }, indent=2))


if __name__ == "__main__":
    main()
