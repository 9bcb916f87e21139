"""The ``vdna`` command: make, compare and inspect Visual DNAs."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

import torch

from ._version import __version__
from .distances import EMD, FD, NFD
from .dna import VDNA
from .extractors import DEFAULT_EXTRACTOR, create_extractor, list_extractors
from .io import load_vdna_from_files
from .preprocess import CROP_MODES, ImageError
from .processor import VDNAProcessor

METRICS = {"emd": (EMD, "histogram-1000"), "nfd": (NFD, "gaussian"), "fd": (FD, "layer-gaussian")}


def _add_make_options(parser: argparse.ArgumentParser, distribution_default: str | None) -> None:
    group = parser.add_argument_group("making DNAs from images")
    group.add_argument("--extractor", default=DEFAULT_EXTRACTOR, help=f"feature extractor (default: {DEFAULT_EXTRACTOR})")
    group.add_argument(
        "--distribution",
        default=distribution_default,
        help="histogram-B (e.g. histogram-1000), gaussian, layer-gaussian or activation-ranges"
        + (f" (default: {distribution_default})" if distribution_default else " (default: the metric's)"),
    )
    group.add_argument("--batch-size", type=int, default=64, help="images per loader batch (default: 64)")
    group.add_argument("--device", default=None, help="e.g. cpu, cuda, cuda:1 (default: CUDA when available)")
    group.add_argument("--workers", type=int, default=None, help="decoding processes (default: available cores)")
    group.add_argument("--num-images", type=int, default=-1, help="use at most this many images (default: all)")
    group.add_argument("--shuffle", action="store_true", help="with --num-images, draw a random subset")
    group.add_argument("--seed", type=int, default=0, help="seed of --shuffle and random crops (default: 0)")
    group.add_argument("--crop", choices=CROP_MODES, default="none", help="square crop before resizing (default: none)")
    group.add_argument("--ranges", default=None, help="activation ranges file for histograms (default: the extractor's)")
    group.add_argument("--weights", default=None, help="weights file for the extractor (default: its own)")
    group.add_argument("--precision", choices=("float32", "bfloat16", "float16"), default="float32",
                       help="run the network under autocast (faster on GPUs, changes results slightly)")
    group.add_argument("--compile", action="store_true", help="run the network through torch.compile")
    group.add_argument("--checkpoint", default=None, help="save the run's state to this file, and resume from it")
    group.add_argument("--checkpoint-every", type=int, default=1000, help="images between checkpoints (default: 1000)")
    group.add_argument("--skip-bad", action="store_true", help="skip unreadable images (listed) instead of stopping")
    group.add_argument("--quiet", action="store_true", help="no progress bar")


def _make(processor: VDNAProcessor, source: str, args: argparse.Namespace, distribution: str) -> VDNA:
    return processor.make_vdna(
        source,
        num_images=args.num_images,
        shuffle_files=args.shuffle,
        feat_extractor_name=args.extractor,
        distribution_name=distribution,
        seed=args.seed,
        batch_size=args.batch_size,
        device=args.device,
        verbose=not args.quiet,
        num_workers=args.workers,
        crop_to_square_pre_resize=args.crop,
        activation_ranges=args.ranges,
        weights=args.weights,
        on_error="skip" if args.skip_bad else "raise",
        precision=args.precision,
        compile=args.compile,
        checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every,
    )


def _report_skipped(vdna: VDNA) -> None:
    skipped = vdna.provenance.skipped
    if skipped:
        print(f"skipped {len(skipped)} image(s):", file=sys.stderr)
        for entry in skipped:
            print(f"  {entry['name']}: {entry['reason']}", file=sys.stderr)


def _is_saved_dna(argument: str) -> bool:
    path = Path(argument)
    if path.is_dir():
        return False
    if path.suffix in (".json", ".npz", ".vdnz"):
        return True
    return path.suffix == "" and path.with_suffix(".json").is_file() and path.with_suffix(".npz").is_file()


def _dna_or_images(argument: str, processor: VDNAProcessor, args: argparse.Namespace, distribution: str) -> VDNA:
    if _is_saved_dna(argument):
        return load_vdna_from_files(argument)
    vdna = _make(processor, argument, args, distribution)
    _report_skipped(vdna)
    return vdna


def command_make(args: argparse.Namespace) -> int:
    vdna = _make(VDNAProcessor(), args.source, args, args.distribution)
    vdna.save(args.output, compact=args.compact)
    _report_skipped(vdna)
    arrays = ".vdnz" if args.compact else ".npz"
    print(f"{vdna.name} DNA of {vdna.num_images} images ({vdna.feature_extractor_name}, {vdna.num_neurons} neurons) -> "
          f"{Path(args.output).with_suffix('.json')} + {arrays}")
    return 0


def _as_number(value: torch.Tensor) -> float:
    return float(value.item())


def _write_neuron_wise(path: str, per_layer: dict[str, torch.Tensor], metric: str) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["layer", "neuron", metric])
        for layer, values in per_layer.items():
            for index, value in enumerate(values.tolist()):
                writer.writerow([layer, index, repr(value)])


def _summary(vdna: VDNA, argument: str) -> dict[str, Any]:
    return {
        "source": argument,
        "distribution": vdna.name,
        "num_images": vdna.num_images,
        "feature_extractor": vdna.feature_extractor_name,
    }


def command_compare(args: argparse.Namespace) -> int:
    metric, default_distribution = METRICS[args.metric]
    distribution = args.distribution or default_distribution
    processor = VDNAProcessor()
    first = _dna_or_images(args.a, processor, args, distribution)
    second = _dna_or_images(args.b, processor, args, distribution)
    value = _as_number(metric(first, second, use_neurons_from_layer=args.layer))
    if args.neuron_wise:
        _write_neuron_wise(args.neuron_wise, metric(first, second, use_neurons_from_layer=args.layer, return_neuron_wise=True), args.metric)
    scope = f"layer {args.layer}" if args.layer else f"all {len(first.neurons_list)} layers"
    if args.json:
        document = {
            "metric": args.metric,
            "value": value,
            "scope": args.layer or "all",
            "a": _summary(first, args.a),
            "b": _summary(second, args.b),
        }
        print(json.dumps(document, indent=2))
    else:
        print(
            f"{args.metric}: {value:.6f}  ({first.feature_extractor_name}, {first.name}, {scope}; "
            f"A: {first.num_images} images, B: {second.num_images} images)"
        )
    return 0


def command_inspect(args: argparse.Namespace) -> int:
    vdna = load_vdna_from_files(args.dna)
    provenance = vdna.provenance
    print(f"{args.dna}: {vdna.name} DNA of {vdna.num_images} images")
    print(f"  extractor: {vdna.feature_extractor_name} ({len(vdna.neurons_list)} layers, {vdna.num_neurons} neurons)")
    print(f"  made: {provenance.time_of_compute} with vdna {provenance.library_version or 'unknown'}")
    if provenance.weights_sha256:
        print(f"  weights sha256: {provenance.weights_sha256}")
    if provenance.ranges_sha256:
        print(f"  ranges sha256: {provenance.ranges_sha256}")
    if provenance.skipped:
        print(f"  skipped images: {len(provenance.skipped)}")
    for layer, count in vdna.neurons_list.items():
        print(f"    {layer}: {count}")
    return 0


def command_extractors(args: argparse.Namespace) -> int:
    for name in list_extractors():
        if args.details:
            info = create_extractor(name, pretrained=False, device="cpu").info
            size = "x".join(map(str, info.input_size))
            print(f"{name}\t{len(info.layers)} layers\t{info.num_neurons} neurons\t{size}")
        else:
            print(name)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vdna", description="Visual DNA: make, compare and inspect DNAs of image sets.")
    parser.add_argument("--version", action="version", version=f"vdna {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    make = commands.add_parser("make", help="make the DNA of a set of images and save it", description=(
        "Make the DNA of the images of SOURCE (a folder, an image, a .txt index of paths or a .zip) and save it as "
        "OUTPUT.json + OUTPUT.npz."))
    make.add_argument("source")
    make.add_argument("-o", "--output", required=True, help="path of the DNA to write (without suffix)")
    make.add_argument("--compact", action="store_true", help="write histograms in the compact .vdnz encoding")
    _add_make_options(make, "histogram-1000")
    make.set_defaults(handler=command_make)

    compare = commands.add_parser("compare", help="distance between two DNAs or image sets", description=(
        "Distance between A and B, each a saved DNA (NAME, NAME.json or NAME.npz) or a source of images "
        "whose DNA is made on the fly."))
    compare.add_argument("a")
    compare.add_argument("b")
    compare.add_argument("--metric", choices=sorted(METRICS), default="emd", help="emd (histograms), nfd (gaussian) or fd (layer-gaussian)")
    compare.add_argument("--layer", default=None, help="compare the neurons of this layer only")
    compare.add_argument("--neuron-wise", metavar="FILE.csv", help="also write per-neuron distances to this CSV file")
    compare.add_argument("--json", action="store_true", help="print the result as JSON")
    _add_make_options(compare, None)
    compare.set_defaults(handler=command_compare)

    inspect = commands.add_parser("inspect", help="describe a saved DNA")
    inspect.add_argument("dna")
    inspect.set_defaults(handler=command_inspect)

    extractors = commands.add_parser("extractors", help="list the registered feature extractors")
    extractors.add_argument("--details", action="store_true", help="also build each (random weights) to show its layers")
    extractors.set_defaults(handler=command_extractors)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vdna`` command."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, TypeError, FileNotFoundError, ImageError) as error:
        print(f"vdna {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
