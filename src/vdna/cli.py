"""The ``vdna`` command: make, compare and inspect Visual DNAs, and the paper's applications.

Every command builds its :class:`~vdna.RunConfig` once from its flags. Nothing that runs a network
is imported until a command needs it, so ``vdna --help``, every ``--help``, ``vdna inspect`` and
``vdna extractors`` start at once. Errors print one line naming the flag or file at fault and
exit with status 2.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .config import (
    CROP_MODES,
    DEFAULT_DISTRIBUTION,
    DEFAULT_EXTRACTOR,
    PRECISIONS,
    RunConfig,
    command_line_names,
)

if TYPE_CHECKING:
    from .dna import VDNA
    from .processor import VDNAProcessor

METRICS = {"emd": "histogram-1000", "nfd": "gaussian", "fd": "layer-gaussian"}
"""Each metric and the distribution it compares."""

DISTRIBUTIONS_HELP = (
    "histogram-B (e.g. histogram-1000), gaussian, layer-gaussian, activation-ranges, or per image: image-histogram-B, image-mean"
)


# -- options ----------------------------------------------------------------------------------------------
def _add_make_options(
    parser: argparse.ArgumentParser,
    *,
    distribution: str | None | bool = False,
    streams: bool = False,
    checkpoint: bool = False,
    ray: bool = False,
    ranges: bool = True,
    seeds: str = "--shuffle and random crops",
) -> None:
    """The options of making DNAs from images that this command accepts.

    ``distribution``: a default (``None``: the metric's) to offer ``--distribution``, False not to.
    ``seeds``: what ``--seed`` seeds.
    """
    group = parser.add_argument_group("making DNAs from images")
    group.add_argument("--extractor", default=DEFAULT_EXTRACTOR, help=f"feature extractor (default: {DEFAULT_EXTRACTOR})")
    if distribution is not False:
        shown = f" (default: {distribution})" if distribution else " (default: the metric's)"
        group.add_argument("--distribution", default=distribution, help=DISTRIBUTIONS_HELP + shown)
    group.add_argument("--batch-size", type=int, default=64, help="images per loader batch (default: 64)")
    group.add_argument("--device", default=None, help="e.g. cpu, cuda, cuda:1 (default: CUDA when available)")
    group.add_argument("--workers", type=int, default=None, help="decoding processes (default: available cores)")
    if streams:
        group.add_argument("--streams", type=int, default=1,
                           help="CPU, histograms: streams running the network side by side on one thread each, "
                                "each decoding its own images (default: 1)")
    group.add_argument("--num-images", type=int, default=-1, help="use at most this many images (default: all)")
    group.add_argument("--shuffle", action="store_true", help="with --num-images, draw a random subset")
    group.add_argument("--seed", type=int, default=0, help=f"seed of {seeds} (default: 0)")
    group.add_argument("--crop", choices=CROP_MODES, default="none", help="square crop before resizing (default: none)")
    if ranges:
        group.add_argument("--ranges", default=None, help="activation ranges file for histograms (default: the extractor's)")
    group.add_argument("--weights", default=None, help="weights file for the extractor (default: its own)")
    group.add_argument("--precision", choices=PRECISIONS, default="float32",
                       help="run the network under autocast (faster on GPUs, changes results slightly)")
    group.add_argument("--compile", action="store_true", help="run the network through torch.compile")
    if checkpoint:
        group.add_argument("--checkpoint", default=None, help="save the run's state to this file, and resume from it")
        group.add_argument("--checkpoint-every", type=int, default=1000, help="images between checkpoints (default: 1000)")
    group.add_argument("--skip-bad", action="store_true", help="skip unreadable images (listed) instead of stopping")
    if ray:
        group.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                           help="make the DNA on Ray: a local Ray, or the cluster at ADDRESS (auto, ray://head:10001)")
        group.add_argument("--ray-actors", type=int, default=None, help="with --ray: actors running the network")
        group.add_argument("--ray-gpus-per-actor", type=float, default=0, help="with --ray: GPUs per actor (default 0)")
        group.add_argument("--ray-threads", type=int, default=None,
                           help="with --ray: torch threads per actor (default: as a local run)")
    group.add_argument("--quiet", action="store_true", help="no progress bar")


def run_config(args: argparse.Namespace, distribution: str) -> RunConfig:
    """The run settings of a command's flags, for DNAs of ``distribution``."""
    return RunConfig(
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
        activation_ranges=getattr(args, "ranges", None),
        weights=args.weights,
        on_error="skip" if args.skip_bad else "raise",
        precision=args.precision,
        compile=args.compile,
        checkpoint=getattr(args, "checkpoint", None),
        checkpoint_every=getattr(args, "checkpoint_every", 1000),
        streams=getattr(args, "streams", 1),
    )


# -- DNAs from arguments ------------------------------------------------------------------------------------
def _processor(args: argparse.Namespace) -> VDNAProcessor:
    """One processor per command, so every DNA a command makes shares one extractor."""
    if getattr(args, "processor", None) is None:
        from .processor import VDNAProcessor

        args.processor = VDNAProcessor()
    return args.processor


def _make(source: str, args: argparse.Namespace, distributions: list[str]) -> list[VDNA]:
    config = run_config(args, distributions[0])
    if getattr(args, "ray", None) is not None:
        from .distributed import run_on_ray

        made = [run_on_ray(source, config, args.ray_actors, args.ray_gpus_per_actor, args.ray_threads, args.ray or None)]
    else:
        made = _processor(args).run(source, config, distributions)
    _report_skipped(made[0])
    return made


def _report_skipped(vdna: VDNA) -> None:
    skipped = vdna.provenance.skipped
    if skipped:
        print(f"skipped {len(skipped)} image(s):", file=sys.stderr)
        for entry in skipped:
            print(f"  {entry['name']}: {entry['reason']}", file=sys.stderr)


DNA_SUFFIXES = (".json", ".npz", ".vdnz")


def is_saved_dna(argument: str) -> bool:
    """Whether ``argument`` names a saved DNA (``NAME``, ``NAME.json``, ``NAME.npz`` or ``NAME.vdnz``) rather than images."""
    path = Path(argument)
    if path.is_dir():
        return False
    if path.suffix in DNA_SUFFIXES:
        return True
    return path.suffix == "" and path.with_suffix(".json").is_file()


def _load(argument: str) -> VDNA:
    from .io import load_vdna_from_files

    return load_vdna_from_files(argument)


def dna_or_images(argument: str, args: argparse.Namespace, distribution: str) -> VDNA:
    """A saved DNA, or the DNA of ``distribution`` made from the images ``argument`` names."""
    return _load(argument) if is_saved_dna(argument) else _make(argument, args, [distribution])[0]


def per_image(argument: str, args: argparse.Namespace, kind: str = "image-histogram", distribution: str | None = None) -> VDNA:
    """Saved per-image DNAs of ``kind``, or per-image DNAs of ``distribution`` (default: ``kind``, with ``--bins``) made from images."""
    made_as = distribution or (f"image-histogram-{getattr(args, 'bins', 1000)}" if kind == "image-histogram" else kind)
    if is_saved_dna(argument):
        vdna = _load(argument)
        if vdna.type != kind:
            article = "an" if vdna.type[0] in "aeiou" else "a"
            raise ValueError(f"{argument} is {article} {vdna.type} DNA; this command needs per-image DNAs ({kind}), "
                             f"made with `vdna make SOURCE --distribution {made_as}`")
        return vdna
    return dna_or_images(argument, args, made_as)


def histogram_dna(argument: str, args: argparse.Namespace) -> VDNA:
    """A histogram DNA: saved (a per-image set counts as the sum of its images), or made from images."""
    vdna = dna_or_images(argument, args, f"histogram-{args.bins}")
    return vdna.subset() if vdna.type == "image-histogram" else vdna


# -- make, compare, inspect, calibrate, extractors -------------------------------------------------------------
def command_make(args: argparse.Namespace) -> int:
    vdna = _make(args.source, args, [args.distribution])[0]
    vdna.save(args.output, compact=args.compact)
    arrays = ".vdnz" if args.compact else ".npz"
    print(f"{vdna.name} DNA of {vdna.num_images} images ({vdna.feature_extractor_name}, {vdna.num_neurons} neurons) -> "
          f"{Path(args.output).with_suffix('.json')} + {arrays}")
    return 0


def _write_neuron_wise(path: str, per_layer: dict[str, Any], metric: str) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["layer", "neuron", metric])
        for layer, values in per_layer.items():
            for index, value in enumerate(values.tolist()):
                writer.writerow([layer, index, repr(value)])


def _summary(vdna: VDNA, argument: str) -> dict[str, Any]:
    return {"source": argument, "distribution": vdna.name, "num_images": vdna.num_images,
            "feature_extractor": vdna.feature_extractor_name}


def neuron_weights(path: str, metric: str, attribute: str | None) -> dict[str, list[float]]:
    """Per-neuron weights ``{layer: weights}`` from a file written by ``vdna attributes -o`` (EMD_W, NFD_W)."""
    from ._files import json_object

    try:
        document = json_object(Path(path).read_bytes(), path, "weights file")
    except FileNotFoundError:
        raise FileNotFoundError(f"--neuron-weights: {path} does not exist") from None
    attributes = document.get("attributes")
    if not isinstance(attributes, dict) or not attributes:
        raise ValueError(f"--neuron-weights: {path} is not a weights file written by `vdna attributes -o`")
    if document.get("metric") != metric:
        raise ValueError(f"--neuron-weights: {path} holds weights learned for {document.get('metric')}, not for {metric}")
    if attribute is None:
        if len(attributes) > 1:
            raise ValueError(f"--neuron-weights: {path} holds weights for {', '.join(attributes)}; choose one with --attribute")
        attribute = next(iter(attributes))
    if attribute not in attributes:
        raise ValueError(f"--attribute {attribute!r} is not in {path}; it holds {', '.join(attributes)}")
    return attributes[attribute]["weights"]


def command_compare(args: argparse.Namespace) -> int:
    from .distances import EMD, FD, NFD

    metric = {"emd": EMD, "nfd": NFD, "fd": FD}[args.metric]
    saved = [is_saved_dna(argument) for argument in (args.a, args.b)]
    if args.weights is not None and (all(saved) or Path(args.weights).suffix == ".json"):
        raise ValueError("--weights is the extractor's weights file, used only to make DNAs from images; to weight "
                         "neurons (EMD_W) give --neuron-weights FILE, the file written by `vdna attributes -o`")
    if args.neuron_weights and args.metric == "fd":
        raise ValueError("--neuron-weights weight neurons (emd, nfd); fd compares whole layers")
    if not args.stats and (args.resamples is not None or args.permutations is not None):
        raise ValueError("--resamples and --permutations set the statistics of --stats; add --stats")
    if args.stats:
        _check_statistics_flags(args)
    weights = neuron_weights(args.neuron_weights, args.metric, args.attribute) if args.neuron_weights else None
    neurons = {args.layer: None} if args.layer else None
    result = layers = None
    if args.stats:
        from .stats import compare_sets, set_dna

        kind, distribution = _stats_input(args)
        saved_ones = {argument: per_image(argument, args, kind) for argument in (args.a, args.b) if is_saved_dna(argument)}
        first, second = (saved_ones[argument] if argument in saved_ones else per_image(argument, args, kind, distribution)
                         for argument in (args.a, args.b))  # saved DNAs checked before images go through the network
        result = compare_sets(first, second, args.metric, resamples=200 if args.resamples is None else args.resamples,
                              permutations=200 if args.permutations is None else args.permutations, seed=args.seed,
                              neurons=neurons, weights=weights)
        value, layers = result.value, result.layers
        sets = (set_dna(first, args.metric), set_dna(second, args.metric)) if args.neuron_wise else ()
    else:
        distribution = args.distribution or METRICS[args.metric]
        first = dna_or_images(args.a, args, distribution)
        second = dna_or_images(args.b, args, distribution)
        value = float(metric(first, second, use_neurons_from_layer=args.layer, **({"weights": weights} if weights else {})))
        if args.by_layer:
            from .stats import layer_shares

            layers = layer_shares(first, second, args.metric, neurons=neurons, weights=weights)
        sets = (first, second)
    if args.neuron_wise:
        _write_neuron_wise(args.neuron_wise, metric(*sets, use_neurons_from_layer=args.layer, return_neuron_wise=True),
                           args.metric)
    scope = f"layer {args.layer}" if args.layer else f"all {len(first.neurons_list)} layers"
    if weights:
        scope += ", weighted"
    if args.json:
        document = {"metric": args.metric, "value": value, "scope": args.layer or "all", "weighted": bool(weights),
                    "a": _summary(first, args.a), "b": _summary(second, args.b)}
        if result is not None:
            document["stats"] = {key: item for key, item in result.to_dict().items() if key not in ("metric", "value", "layers")}
        if args.by_layer:
            document["layers"] = {layer: part.to_dict() for layer, part in layers.items()}
        print(json.dumps(document, indent=2))
        return 0
    print(f"{args.metric}: {value:.6f}  ({first.feature_extractor_name}, {first.name}, {scope}; "
          f"A: {first.num_images} images, B: {second.num_images} images)")
    if result is not None:
        low, high = result.ci
        print(f"  95% CI {low:.6g} to {high:.6g}  (bootstrap, {result.resamples} resamples of each set's images)")
        print(f"  noise floor {result.noise_floor:.6g} +- {result.noise_floor_spread:.2g}  "
              f"(mean and spread over {result.permutations} random splits of the pooled images)")
        print(f"  excess {result.excess:.6g}  (value - noise floor)")
        print(f"  p-value {result.p_value:.4g}  (permutation test, {result.permutations} permutations, seed {result.seed})")
        print(f"  {result.reading()}")
    if layers is not None:
        from .stats import layer_table

        print(layer_table(layers))
    return 0


def _check_statistics_flags(args: argparse.Namespace) -> None:
    """``--resamples``, ``--permutations`` and ``--seed`` checked before any image goes through the network."""
    for flag, count, least in (("--resamples", args.resamples, 1), ("--permutations", args.permutations, 1), ("--seed", args.seed, 0)):
        if count is not None and count < least:
            raise ValueError(f"{flag} must be an integer >= {least}, got {count}")


def _stats_input(args: argparse.Namespace) -> tuple[str, str]:
    """The per-image DNA kind ``--stats`` resamples for ``--metric``, and the distribution to make from images."""
    kind = "image-histogram" if args.metric == "emd" else "image-mean"
    distribution = args.distribution or ("image-histogram-1000" if kind == "image-histogram" else kind)
    if distribution != kind and not distribution.startswith(f"{kind}-"):
        raise ValueError(f"--stats resamples per-image DNAs: with --metric {args.metric} give --distribution "
                         f"{'image-histogram-B' if kind == 'image-histogram' else kind} or none, not {args.distribution}")
    return kind, distribution


def command_inspect(args: argparse.Namespace) -> int:
    from .fileformat import read_metadata

    document = read_metadata(args.dna)
    layers = document["neurons_list"]
    print(f"{args.dna}: {document['name']} DNA of {document['num_images']} images")
    print(f"  extractor: {document['feature_extractor_name']} ({len(layers)} layers, {sum(layers.values())} neurons)")
    print(f"  made: {document.get('time_of_compute', 'unknown')} with vdna {document.get('vdna_version') or 'unknown'}")
    for key, label in (("weights_sha256", "weights sha256"), ("ranges_sha256", "ranges sha256")):
        if document.get(key):
            print(f"  {label}: {document[key]}")
    if document.get("images_skipped"):
        print(f"  skipped images: {len(document['images_skipped'])}")
    for layer, count in layers.items():
        print(f"    {layer}: {count}")
    return 0


def command_calibrate(args: argparse.Namespace) -> int:
    config = run_config(args, "activation-ranges")
    ranges = _processor(args).calibrate(args.source, args.extractor, args.output, margin=args.margin, config=config)
    print(f"activation ranges of {ranges.num_images} images, {sum(ranges.neurons_list.values())} neurons "
          f"({args.extractor}) -> {args.output} (sha256 {ranges.digest})")
    return 0


def command_extractors(args: argparse.Namespace) -> int:
    from .extractors import create_extractor, list_extractors

    for name in list_extractors():
        if args.details:
            info = create_extractor(name, pretrained=False, device="cpu").info
            size = "x".join(map(str, info.input_size))
            print(f"{name}\t{len(info.layers)} layers\t{info.num_neurons} neurons\t{size}")
        else:
            print(name)
    return 0


# -- applications ------------------------------------------------------------------------------------
def _read_names(path: str) -> set[str]:
    with open(path, encoding="utf-8") as handle:
        return {line.strip() for line in handle if line.strip() and not line.lstrip().startswith("#")}


def _print_ranking(ranking: list, top: int, csv_path: str | None) -> None:
    shown = ranking if top <= 0 else ranking[:top]
    for position, item in enumerate(shown, 1):
        print(f"{position:6d}  {item.distance:.6f}  {item.name}")
    if top > 0 and len(ranking) > top:
        print(f"   ... {len(ranking) - top} more (--top 0 shows all)")
    if csv_path:
        with open(csv_path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["rank", "distance", "image"])
            writer.writerows([position, repr(item.distance), item.name] for position, item in enumerate(ranking, 1))


def relevance(ranking: list, path: str) -> list[bool]:
    """Which images of ``ranking`` the file ``path`` names (by full name or file name); refused if it names none."""
    names = _read_names(path)
    relevant = [item.name in names or Path(item.name).name in names for item in ranking]
    if not any(relevant):
        raise ValueError(f"--relevant: none of the {len(names)} names in {path} is an image of the ranking "
                         f"(names are matched against each image's path and file name, e.g. {Path(ranking[0].name).name!r})")
    return relevant


def command_rank(args: argparse.Namespace) -> int:
    from .apps.retrieval import (
        DEFAULT_METHOD,
        PER_IMAGE_INPUTS,
        average_precision,
        precision_recall_curve,
        rank_images,
    )

    method = args.method or DEFAULT_METHOD
    kinds = [f"image-histogram-{args.bins}" if kind == "image-histogram" else kind for kind in PER_IMAGE_INPUTS[method]]

    def dnas(argument: str, reference: bool) -> list[VDNA]:
        if is_saved_dna(argument):  # one saved DNA of one kind: the paper's emd unless a method is asked
            if reference:
                return [_load(argument)]
            return [per_image(argument, args, PER_IMAGE_INPUTS[args.method or "emd"][0])]
        if reference and method == "emd":
            return [histogram_dna(argument, args)]
        return _make(argument, args, kinds)

    images, reference = dnas(args.images, False), dnas(args.reference, True)
    ranking = rank_images(images, reference, neurons={args.layer: None} if args.layer else None, method=args.method)
    _print_ranking(ranking, args.top, args.csv)
    if args.grid:
        from .plots import plot_ranked_images

        plot_ranked_images(ranking, args.grid)
    if args.relevant:
        relevant = relevance(ranking, args.relevant)
        distances = [item.distance for item in ranking]
        print(f"average precision (PR AUC): {average_precision(distances, relevant):.4f}  "
              f"({sum(relevant)} relevant of {len(ranking)})")
        if args.pr_plot:
            from .plots import plot_precision_recall

            precision, recall, _ = precision_recall_curve(distances, relevant)
            plot_precision_recall({method: (precision, recall)}, args.pr_plot)
    elif args.pr_plot:
        raise ValueError("--pr-plot draws the precision-recall curve of --relevant images; give --relevant too")
    return 0


def command_neurons(args: argparse.Namespace) -> int:
    from .distances import EMD
    from .neurons import rank_neurons

    first = histogram_dna(args.a, args)
    second = histogram_dna(args.b, args)
    ranked = rank_neurons(first, second)
    for position, neuron in enumerate(ranked[: args.top], 1):
        print(f"{position:5d}  {neuron.layer}[{neuron.index}]  emd {neuron.distance:.6f}")
    if args.csv:
        _write_neuron_wise(args.csv, EMD(first, second, return_neuron_wise=True), "emd")
    if args.histograms:
        from .plots import plot_neuron_histograms

        plot_neuron_histograms(first, second, [(n.layer, n.index) for n in ranked[: args.top]], args.histograms,
                               labels=(Path(args.a).name, Path(args.b).name))
    if args.profile:
        from .plots import plot_layer_profile

        plot_layer_profile(EMD(first, second, return_neuron_wise=True), args.profile)
    return 0


def command_realism(args: argparse.Namespace) -> int:
    from .apps.realism import rank_by_realism, realism_neurons

    generated = per_image(args.generated, args)
    real = histogram_dna(args.real, args)
    neurons = None
    if args.other_real or args.other_generated:
        if not (args.other_real and args.other_generated):
            raise ValueError("--other-real and --other-generated go together: real and generated images of other classes")
        other_real = [histogram_dna(item, args) for item in args.other_real]
        other_generated = [histogram_dna(item, args) for item in args.other_generated]
        neurons = realism_neurons(other_real, other_generated, args.neurons)
        print(f"ranking on the {neurons.num_neurons} neurons most sensitive to real vs generated "
              f"({', '.join(f'{layer}: {len(indices)}' for layer, indices in neurons.items())})")
    _print_ranking(rank_by_realism(generated, real, neurons), args.top, args.csv)
    return 0


def _attribute_pairs(folder: str) -> dict[str, tuple[VDNA, VDNA]]:
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder of attribute DNAs")
    pairs = {}
    for attribute in sorted(path for path in root.iterdir() if path.is_dir()):
        files = {side: attribute / side for side in ("with", "without")}
        missing = [str(path) + ".json" for path in files.values() if not path.with_suffix(".json").is_file()]
        if missing:
            raise FileNotFoundError(f"attribute {attribute.name!r}: missing {', '.join(missing)}")
        pairs[attribute.name] = (_load(str(files["with"])), _load(str(files["without"])))
    if not pairs:
        raise ValueError(f"{folder} holds no attribute folders (ATTRIBUTE/with.json + ATTRIBUTE/without.json)")
    return pairs


def command_attributes(args: argparse.Namespace) -> int:
    from .apps.attributes import evaluate_removal, learn_attribute_removal

    train, validation = _attribute_pairs(args.train), _attribute_pairs(args.validation)
    targets = args.target or sorted(train)
    results = {}
    for target in targets:
        removal = learn_attribute_removal(train, validation, target, args.metric, args.learning_rate, patience=args.patience,
                                          max_iterations=args.max_iterations)
        line = f"{target}: removal {100 * removal.target_removal:.1f}%  others |deviation| {100 * removal.other_deviation:.1f}% (validation)"
        entry = {"validation": [removal.target_removal, removal.other_deviation], "iterations": removal.iterations}
        if args.test:
            removed, deviated = evaluate_removal(removal, _attribute_pairs(args.test))
            line += f"; test {100 * removed:.1f}% / {100 * deviated:.1f}%"
            entry["test"] = [removed, deviated]
        print(line)
        entry["weights"] = {layer: values.tolist() for layer, values in removal.weights.items()}
        results[target] = entry
    if args.output:
        Path(args.output).write_text(json.dumps({"metric": args.metric, "attributes": results}, indent=1))
    return 0


def _read_table(path: str) -> dict[str, dict[str, float]]:
    with open(path, encoding="utf-8") as handle:
        table = json.load(handle)
    if not isinstance(table, dict) or not all(isinstance(row, dict) for row in table.values()):
        raise ValueError(f"{path}: expected a JSON object {{target: {{source: value}}}}")
    return table


def command_transfer(args: argparse.Namespace) -> int:
    from .apps.transfer import distance_matrix, rank_sources, ranking_discrepancy
    from .distances import EMD

    dnas = {Path(path).with_suffix("").name if is_saved_dna(path) else Path(path).name: path for path in args.dnas}
    if len(dnas) != len(args.dnas):
        raise ValueError("two DNAs or sources have the same name; names must be distinct")
    performance = _read_table(args.performance) if args.performance else None
    if performance is not None:
        unknown = sorted({name for target, row in performance.items() for name in (target, *row)} - set(dnas))
        if unknown:
            raise ValueError(f"--performance names sets that are not among the DNAs: {', '.join(unknown)} "
                             f"(the DNAs are {', '.join(dnas)})")
    loaded = {name: histogram_dna(path, args) for name, path in dnas.items()}
    matrix = distance_matrix(loaded, EMD)
    for target, row in matrix.items():
        others = {source: value for source, value in row.items() if source != target}
        ranked = rank_sources(others, higher_is_better=False)
        print(f"{target}: " + ", ".join(f"{source} {others[source]:.4f}" for source in ranked))
    if args.heatmap:
        from .plots import plot_distance_matrix

        plot_distance_matrix(matrix, args.heatmap, title="dna-emd")
    if performance is not None:
        print(f"ranking discrepancy d: {ranking_discrepancy(performance, matrix):.4f}")
    return 0


def command_sample_size(args: argparse.Namespace) -> int:
    from .apps.sample_size import sample_size_curve
    from .stats import noise_floor_limits, set_dna

    try:
        sizes = [int(size) for size in args.sizes.split(",")]
    except ValueError:
        raise ValueError(f"--sizes must be comma-separated whole numbers such as 10,20,50, got {args.sizes!r}") from None
    histograms = f"image-histogram-{args.bins}"
    if args.fd:
        if is_saved_dna(args.images) or is_saved_dna(args.reference):
            raise ValueError("--fd compares the Fréchet distance of each image's mean activations, which saved histogram "
                             "DNAs do not hold: give IMAGES and REFERENCE as folders of images (per-image histograms "
                             "and means are made from them in one pass each)")
        images, means = _make(args.images, args, [histograms, "image-mean"])
        reference, reference_means = _make(args.reference, args, [histograms, "image-mean"])
    else:
        images = per_image(args.images, args)
        reference = dna_or_images(args.reference, args, histograms)
    inputs = {"dna-emd": (images, reference, "emd")}
    if args.fd:
        inputs["fd"] = (means, reference_means, "fd")
    curves, floors, pooled = {}, {}, reference.type == "image-histogram"
    for label, (subsets, whole, metric) in inputs.items():
        layers = args.fd_layer if metric == "fd" else None
        curves[label] = sample_size_curve(subsets, set_dna(whole, metric, "reference"), sizes, args.seeds, metric=metric,
                                          layers=layers)
        floors[label] = _noise_floor(subsets, whole if pooled else whole.num_images, curves[label], args.seed, metric, layers)
    for label, curve in curves.items():
        print(f"{label}: settles within {100 * args.tolerance:.0f}% of its last value from {curve.settled_size(args.tolerance)} images")
        floor = floors[label]
        for size, mean, std in zip(curve.sizes, curve.mean, curve.std):
            line = f"  {size:7d}  {mean:.6f} +- {std:.6f}"
            if floor is not None and size in floor.sizes:
                column = floor.sizes.index(size)
                line += f"   noise floor {floor.mean[column]:.6f} +- {floor.std[column]:.6f}"
            print(line)
    pool = "IMAGES and REFERENCE pooled" if pooled else "IMAGES alone (REFERENCE is a DNA of a whole set, not per-image DNAs)"
    print(f"noise floor: the distance from n images to {reference.num_images} images (REFERENCE's size), drawn at random "
          f"from {pool}: what the curve reads when both come from one source; mean +- std over {args.seeds} draws")
    if not pooled and any(floor is None or len(floor.sizes) < len(sizes) for floor in floors.values()):
        largest = noise_floor_limits(images, reference.num_images)[1]
        gap = f"sizes above {largest} have none" if largest >= 2 else "no size has one"
        print(f"  {gap}: the {images.num_images} IMAGES cannot spare {reference.num_images} beside the subset to stand for "
              f"REFERENCE; give REFERENCE as images or per-image DNAs (`vdna make SOURCE --distribution {histograms}`) "
              "to pool them")
    if args.plot:
        from .plots import plot_sample_size_curves

        plot_sample_size_curves(curves, args.plot, floors={label: floor for label, floor in floors.items() if floor is not None})
    return 0


def _noise_floor(images: VDNA, reference: VDNA | int, curve: Any, seed: int, metric: str, layers: list[str] | None) -> Any:
    """The noise floor beside a sample-size curve, at the sizes that leave the reference's images aside (None: none)."""
    from .apps.sample_size import SampleSizeCurve
    from .stats import noise_floor_curve, noise_floor_limits

    other, largest = noise_floor_limits(images, reference)
    sizes = [size for size in curve.sizes if size <= largest]
    if not sizes or other < 2:
        return None
    distances = noise_floor_curve(images, sizes, reference, draws=curve.distances.shape[0], seed=seed, metric=metric,
                                  layers=layers)
    return SampleSizeCurve(metric, sizes, distances)


def command_report(args: argparse.Namespace) -> int:
    from .report import make_report

    _check_statistics_flags(args)
    config = run_config(args, f"image-histogram-{args.bins}")
    path = make_report(args.a, args.b, args.output, processor=_processor(args), config=config,
                       top_neurons=args.top_neurons, images_shown=args.images_shown, resamples=args.resamples,
                       permutations=args.permutations)
    print(f"report -> {path}")
    return 0


# -- the parser --------------------------------------------------------------------------------------------------
def _command(commands: Any, name: str, handler: Callable[[argparse.Namespace], int], summary: str, description: str) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=summary, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(handler=handler)
    return parser



def _add_bins(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bins", type=int, default=1000, help="histogram bins when making DNAs (default 1000)")


def _add_application_commands(commands: Any) -> None:
    rank = _command(commands, "rank", command_rank, "rank images by their distance to a reference set (retrieval)", (
        "Rank every image of IMAGES by its distance to the set REFERENCE, closest first (section 5.1 of the\n"
        "paper): --method emd (the paper's EMD), embedding-cosine, embedding-distance, emd-ratio or hybrid\n"
        "(the default, best on held-out tasks). IMAGES and REFERENCE are sources of images (the DNAs the\n"
        "method needs are made in one pass) or saved DNAs (a saved image-histogram DNA with a saved histogram\n"
        "reference ranks by emd). With --relevant\n"
        "(a file listing the relevant images, one name per line) the average precision is printed."))
    rank.add_argument("images")
    rank.add_argument("reference")
    rank.add_argument("--layer", help="compare on the neurons of this layer only")
    rank.add_argument("--method", choices=("emd", "embedding-cosine", "embedding-distance", "emd-ratio", "hybrid"),
                      help="ranking method (default: hybrid from image sources; see vdna.apps.retrieval); "
                           "each makes the per-image DNAs it needs from image sources")
    rank.add_argument("--top", type=int, default=20, help="print the first N (0: all; default 20)")
    rank.add_argument("--csv", help="write the whole ranking to this CSV file")
    rank.add_argument("--grid", help="draw the best, middle and worst images to this image file")
    rank.add_argument("--relevant", help="file naming the relevant images, to score the ranking")
    rank.add_argument("--pr-plot", help="with --relevant, draw the precision-recall curve to this image file")

    neurons = _command(commands, "neurons", command_neurons, "the neurons that differ most between two sets", (
        "Rank every neuron by the EMD between its histograms in A and in B, most different first: the\n"
        "neurons sensitive to what tells the sets apart (sections 5.3-5.4). Optionally draws their\n"
        "histograms and the per-layer profile (Fig. 8-9, 11)."))
    neurons.add_argument("a")
    neurons.add_argument("b")
    neurons.add_argument("--top", type=int, default=20, help="neurons to print and draw (default 20)")
    neurons.add_argument("--csv", help="write every neuron's EMD to this CSV file")
    neurons.add_argument("--histograms", help="draw the top neurons' histograms to this image file")
    neurons.add_argument("--profile", help="draw the per-layer profile of neuron-wise EMDs to this image file")

    realism = _command(commands, "realism", command_realism, "rank generated images by realism", (
        "Rank the generated images GENERATED by their EMD to the DNA of real images REAL, most realistic\n"
        "first (section 5.4). With --other-real and --other-generated (DNAs or image sets of other classes)\n"
        "only the --neurons neurons most sensitive to real vs generated on those classes are used."))
    realism.add_argument("generated")
    realism.add_argument("real")
    realism.add_argument("--other-real", nargs="+", default=[], help="real images (or DNAs) of other classes")
    realism.add_argument("--other-generated", nargs="+", default=[], help="generated images (or DNAs) of other classes")
    realism.add_argument("--neurons", type=int, default=100, help="sensitive neurons to use (default 100)")
    realism.add_argument("--top", type=int, default=20, help="print the first N (0: all; default 20)")
    realism.add_argument("--csv", help="write the whole ranking to this CSV file")

    attributes = _command(commands, "attributes", command_attributes, "learn neuron weights that ignore chosen attributes", (
        "Learn per-neuron (emd, nfd) or per-layer (fd) weights that make the distance blind to a target\n"
        "attribute while keeping the others (section 5.3, eq. 5-7; Adam, early stopping on validation).\n"
        "TRAIN and VALIDATION (and --test) are folders with one folder per attribute holding with.json\n"
        "and without.json: the DNAs of images with and without it. Prints the target's sensitivity\n"
        "removal and the mean deviation of the others; --output saves the weights as JSON, which\n"
        "`vdna compare --neuron-weights` applies."))
    attributes.add_argument("train")
    attributes.add_argument("validation")
    attributes.add_argument("--test", help="a third folder of pairs to evaluate the learned weights on")
    attributes.add_argument("--target", nargs="+", help="attributes to remove, one at a time (default: each)")
    attributes.add_argument("--metric", choices=("emd", "nfd", "fd"), default="emd")
    attributes.add_argument("--learning-rate", type=float, default=1e-5, help="Adam's learning rate (default 1e-5)")
    attributes.add_argument("--patience", type=int, default=50, help="iterations without progress before stopping")
    attributes.add_argument("--max-iterations", type=int, default=100_000)
    attributes.add_argument("-o", "--output", help="write the weights and scores to this JSON file")

    transfer = _command(commands, "transfer", command_transfer, "distances between datasets, to choose training data", (
        "The dna-emd distance matrix between the DNAS (saved DNAs or image sets), each target's sources\n"
        "ranked closest first (section 5.5); with --performance (JSON {target: {source: score}}, higher is\n"
        "better) the ranking discrepancy d of eq. 8."))
    transfer.add_argument("dnas", nargs="+")
    transfer.add_argument("--performance", help="observed transfer performance, JSON {target: {source: value}}")
    transfer.add_argument("--heatmap", help="draw the distance matrix to this image file")

    sample_size = _command(commands, "sample-size", command_sample_size, "how many images a DNA needs", (
        "Distance from random subsets of IMAGES of growing sizes to REFERENCE, over several seeds\n"
        "(section 5.2, Fig. 5), for dna-emd and with --fd for the Fréchet distance; prints the size from\n"
        "which the mean stays within --tolerance of its last value. Beside each size it prints (and --plot\n"
        "draws) the noise floor: the distance from that many images to as many images as REFERENCE holds,\n"
        "drawn at random from IMAGES and REFERENCE pooled (REFERENCE given as images or per-image DNAs),\n"
        "i.e. what the curve would read if both came from one source. A curve that settles on its floor\n"
        "has found no difference; one that settles above it measures the difference."))
    sample_size.add_argument("images")
    sample_size.add_argument("reference")
    sample_size.add_argument("--sizes", required=True, help="comma-separated subset sizes, e.g. 10,20,50,100")
    sample_size.add_argument("--seeds", type=int, default=10, help="random subsets per size (default 10)")
    sample_size.add_argument("--fd", action="store_true",
                             help="also the Fréchet distance (needs folders of images: it uses each image's mean activations)")
    sample_size.add_argument("--fd-layer", nargs="+", help="layers of the Fréchet distance (default: all, averaged)")
    sample_size.add_argument("--tolerance", type=float, default=0.05, help="relative tolerance (default 0.05)")
    sample_size.add_argument("--plot", help="draw the curves to this image file")

    report = _command(commands, "report", command_report, "an HTML page comparing two image sets", (
        "Write one self-contained HTML page comparing A and B (image sources, or saved histogram or\n"
        "per-image DNAs): how sure the difference is (interval, noise floor, p-value; from images or\n"
        "per-image DNAs), distances, each layer's share of the EMD, the most different neurons by layer\n"
        "with their histograms and the parts of each set's images where they fire most, and the images of\n"
        "each set closest to and furthest from the other. Each set of images goes through the network once."))
    report.add_argument("a")
    report.add_argument("b")
    report.add_argument("-o", "--output", required=True, help="HTML file to write")
    report.add_argument("--top-neurons", type=int, default=8, help="neurons to show (default 8)")
    report.add_argument("--images-shown", type=int, default=6,
                        help="images per row, and crops per set for each neuron (default 6)")

    report.add_argument("--resamples", type=int, default=200, help="bootstrap resamples of the statistics (default 200)")
    report.add_argument("--permutations", type=int, default=200,
                        help="random splits of the pooled images for the noise floors and p-value (default 200)")

    crops = "--shuffle and random crops"
    for parser, seeds in ((rank, crops), (realism, crops), (sample_size, "--shuffle, random crops and the noise floor's draws"),
                          (report, "--shuffle, random crops and the statistics' resamples")):
        _add_bins(parser)
        _add_make_options(parser, seeds=seeds)
    for parser in (neurons, transfer):
        _add_bins(parser)
        _add_make_options(parser, streams=True)


def build_parser() -> argparse.ArgumentParser:
    """The ``vdna`` command's argument parser."""
    parser = argparse.ArgumentParser(prog="vdna", description="Visual DNA: make, compare and inspect DNAs of image sets.")
    parser.add_argument("--version", action="version", version=f"vdna {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    make = _command(commands, "make", command_make, "make the DNA of a set of images and save it", (
        "Make the DNA of the images of SOURCE (a folder, an image, a .txt index of paths, a .zip or tar shards) and save\n"
        "it as OUTPUT.json + OUTPUT.npz."))
    make.add_argument("source")
    make.add_argument("-o", "--output", required=True, help="path of the DNA to write (without suffix)")
    make.add_argument("--compact", action="store_true", help="write histograms in the compact .vdnz encoding")
    _add_make_options(make, distribution=DEFAULT_DISTRIBUTION, streams=True, checkpoint=True, ray=True)

    compare = _command(commands, "compare", command_compare, "distance between two DNAs or image sets", (
        "Distance between A and B, each a saved DNA (NAME, NAME.json, NAME.npz or NAME.vdnz) or a source of images\n"
        "whose DNA is made on the fly.\n\n"
        "--stats also tells how sure the distance is, from per-image DNAs (image-histogram-B for emd, image-mean\n"
        "for nfd and fd: made from images in one pass, or saved ones), resampled without running the network\n"
        "again: a 95% bootstrap interval, the noise floor (the mean distance between random splits of the\n"
        "pooled images into sets of the same sizes, +- its spread), the excess over it and the permutation\n"
        "p-value. --by-layer gives each layer's value and share of the total, early to late: with --stats\n"
        "also its interval, noise floor and p-value; without, from the DNAs of the whole sets (any saved DNAs)."))
    compare.add_argument("a")
    compare.add_argument("b")
    compare.add_argument("--metric", choices=sorted(METRICS), default="emd", help="emd (histograms), nfd (gaussian) or fd (layer-gaussian)")
    compare.add_argument("--layer", default=None, help="compare the neurons of this layer only")
    compare.add_argument("--neuron-wise", metavar="FILE.csv", help="also write per-neuron distances to this CSV file")
    compare.add_argument("--neuron-weights", metavar="FILE.json",
                         help="weight neurons (EMD_W) with the weights written by `vdna attributes -o`")
    compare.add_argument("--attribute", help="with --neuron-weights: the attribute whose weights to use, if the file holds several")
    compare.add_argument("--json", action="store_true", help="print the result as JSON")
    compare.add_argument("--stats", action="store_true",
                         help="also the 95%% interval, noise floor, excess and p-value, from per-image DNAs")
    compare.add_argument("--resamples", type=int, help="with --stats: bootstrap resamples (default 200)")
    compare.add_argument("--permutations", type=int, help="with --stats: random splits of the pooled images (default 200)")
    compare.add_argument("--by-layer", action="store_true",
                         help="each layer's value and share of the total, early to late (with --stats, its noise floor too)")
    _add_make_options(compare, distribution=None, streams=True, ray=True,
                      seeds="--shuffle, random crops and the resamples of --stats")

    inspect = _command(commands, "inspect", command_inspect, "describe a saved DNA",
                       "Describe the saved DNA DNA (NAME, NAME.json, NAME.npz or NAME.vdnz), its arrays checked against their sha256.")
    inspect.add_argument("dna")

    calibrate = _command(commands, "calibrate", command_calibrate, "activation ranges of an extractor over your images", (
        "Compute every neuron's minimum and maximum activation over the images of SOURCE with --extractor and save\n"
        "them as OUTPUT (JSON); histograms made with --ranges OUTPUT normalise each neuron with its range widened\n"
        "by --margin (appendix A.2 of the paper). Needed for extractors without published ranges (e.g.\n"
        "timm:<model>, resnet50, dinov2_*)."))
    calibrate.add_argument("source")
    calibrate.add_argument("-o", "--output", required=True, help="ranges file to write (JSON)")
    calibrate.add_argument("--margin", type=float, default=0.2, help="widening of each range (default 0.2)")
    _add_make_options(calibrate, streams=True, ranges=False)

    extractors = _command(commands, "extractors", command_extractors, "list the registered feature extractors",
                          "List the feature extractors by name; --details builds each with random weights to show its layers.")
    extractors.add_argument("--details", action="store_true", help="also build each (random weights) to show its layers")

    _add_application_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vdna`` command."""
    args = build_parser().parse_args(argv)
    try:
        with command_line_names():
            return args.handler(args)
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"vdna {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
