"""Making a DNA end to end, against the forward pass alone over the same preprocessed images.

In one process: every image of the folder is decoded and preprocessed into memory first (not
timed); then the extractor's forward pass alone runs over them, as the pipeline runs it (one
image at a time on the CPU); then ``make_vdna`` runs on the folder itself (decoding, resizing,
forward pass and histograms). Both are repeated and their medians compared; so is each repeat's
pair of runs, which follow each other. With ``--streams N``,
``make_vdna(streams=N)`` is also timed (N one-thread streams running the network side by side, each
decoding its own images), against the forward pass alone run the same way. Peak memory is
measured in fresh processes (main process and decoding processes) for several image counts, for
the default run and, with ``--streams N``, for ``streams=N``. With ``--breakdown``, the steps of a
streams run (decoding, preprocessing, forward pass, histograms) are also timed one by one inside
the streams, as they run side by side, in milliseconds per image and stream.

    python benchmarks/end_to_end.py ../shared/data/imagenet1k --streams 2 --peak-memory 100 1000 --breakdown
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from vdna import VDNAProcessor, create_extractor
from vdna.distributions import parse_distribution
from vdna.engine import one_thread_streams
from vdna.preprocess import Preprocessor, decode_image
from vdna.sources import list_image_files


def peak_memory_mib(folder: Path, count: int, distribution: str, streams: int = 1) -> dict[str, float]:
    """Peak resident memory of a fresh process making the DNA of ``count`` images."""
    script = (
        "import json, resource, sys\n"
        "from vdna import VDNAProcessor\n"
        f"VDNAProcessor().make_vdna({str(folder)!r}, num_images={count}, distribution_name={distribution!r}, "
        f"streams={streams}, verbose=False)\n"
        "own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(json.dumps({'main': own, 'worker': workers}))\n"
    )
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def forward_in_streams(extractors: list, images: list[torch.Tensor]) -> None:
    """The forward pass alone as ``make_vdna(streams=len(extractors))`` runs it: one-thread streams side by side."""

    def run(stream: int) -> None:
        with torch.inference_mode():
            for image in images[stream :: len(extractors)]:
                extractors[stream](image[None])

    with one_thread_streams(len(extractors)) as run_streams:
        run_streams(run)


def stream_breakdown(extractors: list, files: list[Path], preprocess: Preprocessor, distribution: str, share: int) -> list[dict[str, float]]:
    """Milliseconds per image spent by each stream in each step, run as ``make_vdna(streams=len(extractors))`` runs them.

    Each stream decodes and preprocesses ``share`` images of its own, then runs the network and
    the histograms on them one at a time.
    """
    dna_class, parameters = parse_distribution(distribution)
    info = extractors[0].info
    accumulators = [dna_class.accumulator(parameters, info.layers, info.ranges, torch.device("cpu")) for _ in extractors]
    spent = [dict.fromkeys(("decoding", "preprocessing", "forward pass", "histograms"), 0.0) for _ in extractors]

    def run(stream: int) -> None:
        steps, mine = spent[stream], list(range(stream, len(files), len(extractors)))
        with torch.inference_mode():
            for first in range(0, len(mine), share):
                images = []
                for index in mine[first : first + share]:
                    start = time.perf_counter()
                    pixels = decode_image(files[index], str(files[index]))
                    decoded = time.perf_counter()
                    images.append(preprocess(pixels, index))
                    steps["decoding"] += decoded - start
                    steps["preprocessing"] += time.perf_counter() - decoded
                for image in images:
                    start = time.perf_counter()
                    activations = extractors[stream](image[None])
                    ran = time.perf_counter()
                    accumulators[stream].update(activations)
                    steps["forward pass"] += ran - start
                    steps["histograms"] += time.perf_counter() - ran
            start = time.perf_counter()
            accumulators[stream].result(info.name)  # bins what is still gathered
            steps["histograms"] += time.perf_counter() - start

    with one_thread_streams(len(extractors)) as run_streams:
        run_streams(run)
    per_stream = len(files) / len(extractors)
    return [{step: seconds / per_stream * 1e3 for step, seconds in steps.items()} for steps in spent]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--distribution", default="histogram-1000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--streams", type=int, default=1, help="also time make_vdna(streams=N) against N one-thread streams")
    parser.add_argument("--peak-memory", type=int, nargs="*", default=[], metavar="N", help="image counts")
    parser.add_argument("--breakdown", action="store_true", help="time each step inside the streams (needs --streams N)")
    args = parser.parse_args()

    # First, while this process is small: Linux carries a process's peak memory over into a
    # program it starts, so a child started later would report this process's peak as its own.
    runs = [(count, streams) for streams in sorted({1, args.streams}) for count in args.peak_memory]
    peaks = {(count, streams): peak_memory_mib(args.folder, count, args.distribution, streams) for count, streams in runs}
    processor = VDNAProcessor()
    extractor = processor.get_extractor(device="cpu")
    info = extractor.info
    files = list_image_files(args.folder)
    preprocess = Preprocessor(info.input_size, info.mean, info.std)
    images = [preprocess(decode_image(path, str(path)), index) for index, path in enumerate(files)]
    threads = torch.get_num_threads()

    def forward_only() -> None:
        with torch.inference_mode():
            for image in images:
                extractor(image[None])

    def make(streams: int = 1) -> None:
        processor.make_vdna(args.folder, distribution_name=args.distribution, verbose=False, streams=streams)

    cases = {f"forward pass alone, 1 copy on {threads} threads": forward_only, "make_vdna": make}
    if args.streams > 1:
        others = [extractor if extractor.concurrent_calls else create_extractor(info.name, device="cpu") for _ in range(args.streams - 1)]
        streamed = [extractor, *others]  # shared or copied, as make_vdna does
        cases[f"forward pass alone, {args.streams} one-thread streams"] = lambda: forward_in_streams(streamed, images)
        cases[f"make_vdna(streams={args.streams})"] = lambda: make(args.streams)
    for function in cases.values():  # warm-up of each, then in turn
        function()
    times: dict[str, list[float]] = {label: [] for label in cases}
    for _ in range(args.repeats):
        for label, function in cases.items():
            start = time.perf_counter()
            function()
            times[label].append(time.perf_counter() - start)
    medians = {label: statistics.median(values) for label, values in times.items()}
    print(f"{len(files)} images, {info.name}, {args.distribution}, medians of {args.repeats}")
    for label, seconds in medians.items():
        print(f"{label:42s} {seconds:8.2f} s  {len(files) / seconds:6.1f} images/s")
    labels = list(medians)
    pairs = [(labels[1], labels[0])] + ([(labels[3], labels[2]), (labels[3], labels[0])] if args.streams > 1 else [])
    for whole, forward in pairs:
        extra = medians[whole] - medians[forward]
        print(f"{whole} beyond {forward}: {extra:7.2f} s, {extra / medians[forward] * 100:5.1f}%")
        # Each repeat's two runs follow each other, so their ratio is not moved by the machine's slower spells.
        paired = sorted((made / alone - 1) * 100 for made, alone in zip(times[whole], times[forward]))
        print(f"    in each repeat: {', '.join(f'{ratio:.1f}%' for ratio in paired)}; median {statistics.median(paired):.1f}%")
    if args.breakdown and args.streams > 1:
        batch_size = inspect.signature(VDNAProcessor.make_vdna).parameters["batch_size"].default
        shares = stream_breakdown(streamed, files, preprocess, args.distribution, -(-batch_size // args.streams))
        print(f"inside {args.streams} streams, ms per image and stream:")
        for stream, steps in enumerate(shares):
            print(f"  stream {stream}: " + ", ".join(f"{step} {ms:.2f}" for step, ms in steps.items()))
    for (count, streams), peak in peaks.items():
        # Streams decode in the main process; their only child is a short helper run at import time.
        decoding = f"largest decoding process {peak['worker']:7.1f} MiB" if streams == 1 else "no decoding processes"
        print(f"peak memory, {count:5d} images, streams={streams}: main process {peak['main']:7.1f} MiB, {decoding}")


if __name__ == "__main__":
    main()
