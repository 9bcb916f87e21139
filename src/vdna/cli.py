"""The ``vdna`` command: make, compare and inspect Visual DNAs, and the paper's applications.

The flags of settings come from their declarations (:mod:`vdna.config`): each command offers the
settings it uses, and builds its configurations from them once. Each command parses its
arguments, calls the library once and prints. Nothing that runs a network is imported until a
command needs it, so ``vdna --help``, every ``--help``, ``vdna inspect`` and ``vdna extractors``
start at once. Errors print one line naming the flag or file at fault and exit with status 2.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .config import RayConfig, RunConfig, StatsConfig, command_line_names, declared

if TYPE_CHECKING:
    from .dna import VDNA
    from .processor import VDNAProcessor


# -- arguments checked as they are parsed, before any work ---------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """A parser whose errors are one line naming the command and the flag, with exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def _checked(check: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type from a check raising ``ValueError``: its message is printed after the flag's name."""

    def convert(text: str) -> Any:
        try:
            return check(text)
        except (ValueError, FileNotFoundError) as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    convert.__name__ = check.__name__
    return convert


@_checked
def _output_file(text: str) -> str:
    from ._files import writable_file

    return str(writable_file(text))


@_checked
def _dna_output(text: str) -> str:
    from .fileformat import writable_dna

    writable_dna(text)
    return text


@_checked
def _input_file(text: str) -> str:
    if Path(text).is_dir():
        raise ValueError(f"{text} is a folder, not a file")
    if not Path(text).is_file():
        raise FileNotFoundError(f"{text} does not exist")
    return text


def _parsed(text: str, convert: Callable[[str], Any], noun: str) -> Any:
    try:
        return convert(text)
    except ValueError:
        raise ValueError(f"expected {noun}, got {text!r}") from None


def _integer(minimum: int) -> Callable[[str], int]:
    bound = {0: "a non-negative whole number", 1: "a positive whole number"}.get(minimum, f"a whole number >= {minimum}")

    @_checked
    def integer(text: str) -> int:
        value = _parsed(text, int, "a whole number")
        if value < minimum:
            raise ValueError(f"must be {bound}, got {value}")
        return value

    return integer


def _number(low: float, high: float | None = None) -> Callable[[str], float]:
    @_checked
    def number(text: str) -> float:
        value = _parsed(text, float, "a number")
        if not math.isfinite(value):
            raise ValueError(f"must be a finite number, got {text}")
        if not (value >= low and (high is None or value < high)):
            span = f"at least {low:g}" if high is None else f"in [{low:g}, {high:g})"
            raise ValueError(f"must be {span}, got {text}")
        return value

    return number


# -- flags from the settings' declarations ----------------------------------------------------------------
def _add_settings(
    parser: argparse.ArgumentParser,
    config_class: type,
    title: str,
    groups: Iterable[str] = (),
    exclude: Iterable[str] = (),
    defaults: dict[str, str] | None = None,
) -> None:
    """The flags of ``config_class``'s settings: those of every command, those of ``groups``, none of ``exclude``.

    Each flag stores into the setting's own name and defaults to None (the setting's default, or
    what ``defaults`` says this command does without it), so what a user did not give is told
    apart from what they gave.
    """
    group = parser.add_argument_group(title)
    groups, exclude = set(groups), set(exclude)
    for item, declaration in declared(config_class):
        if declaration.flag is None or item.name in exclude or (declaration.group and declaration.group not in groups):
            continue
        shown = (defaults or {}).get(item.name) or declaration.default_text or item.default
        metavar = declaration.metavar or declaration.flag.lstrip("-").replace("-", "_").upper()
        if declaration.kind is bool:
            action = "store_true" if item.default is False else "store_false"
            group.add_argument(declaration.flag, dest=item.name, action=action, default=None, help=declaration.help)
        elif declaration.flag_value is not None:
            group.add_argument(declaration.flag, dest=item.name, action="store_const", const=declaration.flag_value,
                               default=None, help=declaration.help)
        elif declaration.metavar == "ADDRESS":  # --ray alone: a local Ray; --ray ADDRESS: a cluster
            group.add_argument(declaration.flag, dest=item.name, nargs="?", const="", default=None,
                               metavar=declaration.metavar, help=declaration.help)
        else:
            kind = {int: int, float: float, "file": _input_file, "output": _output_file}.get(declaration.kind, str)
            group.add_argument(declaration.flag, dest=item.name, type=kind, choices=declaration.choices, default=None,
                               metavar=None if declaration.choices else metavar, help=f"{declaration.help} (default: {shown})")


def _settings(args: argparse.Namespace, config_class: type, **fixed: Any) -> Any:
    """The configuration of the flags given (the others keep their defaults), with ``fixed`` settings."""
    given = {name: getattr(args, name) for name in config_class.field_names() if getattr(args, name, None) is not None}
    return config_class(**{**given, **fixed})


def run_config(args: argparse.Namespace, distribution: str | None = None) -> RunConfig:
    """The run settings of a command's flags (making DNAs of ``distribution`` when given)."""
    return _settings(args, RunConfig, **({"distribution_name": distribution} if distribution else {}))


def _ray(args: argparse.Namespace) -> RayConfig | None:
    return _settings(args, RayConfig) if getattr(args, "address", None) is not None else None


def _processor(args: argparse.Namespace) -> VDNAProcessor:
    """One processor per command, so every DNA a command makes shares one extractor."""
    if getattr(args, "processor", None) is None:
        from .processor import VDNAProcessor

        args.processor = VDNAProcessor()
    return args.processor


def _dnas(argument: str, args: argparse.Namespace, distributions: Sequence[str]) -> list[VDNA]:
    """The DNAs of ``distributions`` of a saved DNA or of images (made in one pass), listing the images skipped."""
    from .inputs import dnas_of, is_saved_dna

    made = dnas_of(argument, distributions, run_config(args), _processor(args), ray=_ray(args))
    if not is_saved_dna(argument):
        _report_skipped(made[0])
    return made


def _dna(argument: str, args: argparse.Namespace, distribution: str) -> VDNA:
    return _dnas(argument, args, [distribution])[0]


def _report_skipped(vdna: VDNA) -> None:
    skipped = vdna.provenance.skipped
    if skipped:
        print(f"skipped {len(skipped)} image(s):", file=sys.stderr)
        for entry in skipped:
            print(f"  {entry['name']}: {entry['reason']}", file=sys.stderr)


def _histograms(args: argparse.Namespace) -> str:
    return f"histogram-{args.bins}"


def _image_histograms(args: argparse.Namespace) -> str:
    return f"image-histogram-{args.bins}"


def _write_unit_values(path: str, per_layer: dict[str, Any], metric: str) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["layer", "neuron", metric])
        for layer, values in per_layer.items():
            for index, value in enumerate(values.tolist()):
                writer.writerow([layer, index, repr(value)])


# -- make, compare, inspect, calibrate, extractors -------------------------------------------------------------
def command_make(args: argparse.Namespace) -> int:
    vdna = _dna(args.source, args, args.distribution_name or RunConfig.distribution_name)
    vdna.save(args.output, compact=args.compact)
    arrays = ".vdnz" if args.compact else ".npz"
    print(f"{vdna.name} DNA of {vdna.num_images} images ({vdna.feature_extractor_name}, {vdna.num_neurons} neurons) -> "
          f"{Path(args.output).with_suffix('.json')} + {arrays}")
    return 0


def command_compare(args: argparse.Namespace) -> int:
    from .comparison import compare_metrics
    from .inputs import is_saved_dna

    if args.metrics and args.metric is not None:
        raise ValueError("give --metric NAME or --metrics NAME,NAME,..., not both")
    metrics = args.metrics or [args.metric or "emd"]
    if len(metrics) > 1 and args.neuron_wise:
        raise ValueError("--neuron-wise writes the units of one metric; give --metric NAME")
    args.metric = metrics[0]

    saved = [is_saved_dna(argument) for argument in (args.a, args.b)]
    if args.extractor_weights is not None and (all(saved) or Path(args.extractor_weights).suffix == ".json"):
        raise ValueError("--weights is the extractor's weights file, used only to make DNAs from images; to weight "
                         "neurons (EMD_W) give --neuron-weights FILE, the file written by `vdna attributes -o`")
    if args.neuron_weights and "fd" in metrics:
        raise ValueError("--neuron-weights weight neurons (emd, nfd); fd compares whole layers")
    if args.neuron_weights and len(metrics) > 1:
        raise ValueError("--neuron-weights weight the units of one metric; give --metric NAME")
    if not args.stats and (args.resamples is not None or args.permutations is not None):
        raise ValueError("--resamples and --permutations set the statistics of --stats; add --stats")
    weights = None
    if args.neuron_weights:
        from .apps.attributes import load_neuron_weights

        try:
            weights = load_neuron_weights(args.neuron_weights, args.metric, args.attribute)
        except (ValueError, FileNotFoundError) as error:
            raise type(error)(f"--neuron-weights: {error}") from None
    results = compare_metrics(
        args.a, args.b, metrics, layer=args.layer, neuron_weights=weights, stats=args.stats, by_layer=args.by_layer,
        distribution=args.distribution_name, config=run_config(args), stats_config=_settings(args, StatsConfig),
        processor=_processor(args), ray=_ray(args),
    )
    for dna, was_saved in zip((results[0].a, results[0].b), saved):
        if not was_saved:
            _report_skipped(dna)
    if args.neuron_wise:
        _write_unit_values(args.neuron_wise, results[0].unit_values(), args.metric)
    if args.json:
        import json

        documents = [result.to_dict((args.a, args.b)) for result in results]
        print(json.dumps(documents if args.metrics else documents[0], indent=2))
    else:
        print("\n".join(line for result in results for line in result.lines()))
    return 0


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
    config = run_config(args)
    ranges = _processor(args).calibrate(args.source, config.feat_extractor_name, args.output, margin=args.margin, config=config)
    print(f"activation ranges of {ranges.num_images} images, {sum(ranges.neurons_list.values())} neurons "
          f"({config.feat_extractor_name}) -> {args.output} (sha256 {ranges.digest})")
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


def command_plan(args: argparse.Namespace) -> int:
    from .engine import available_cores
    from .plans import RECORDED_CPU_PLANS, ForwardPlan, plan_key, save_plan

    config = run_config(args)
    name, cores = config.feat_extractor_name, available_cores()
    settings = {key: getattr(config, key) for key in ("extractor_weights", "activation_ranges", "precision", "compile",
                                                       "channels_last")}
    if args.source is not None:
        settings["num_workers"] = config.num_workers
    timings = _processor(args).measure_plans(name, args.source, args.images, distribution_name=args.distribution_name,
                                             **settings)
    fastest = max(timings, key=lambda timing: timing[1])[0]
    images = f"{args.images} random images" if args.source is None else f"{args.images} images of {args.source}"
    print(f"plans of {name} on the CPU with {cores} cores ({images}):")
    for plan, speed in timings:
        print(f"  {plan!s:<36}{speed:8.1f} img/s{'   fastest' if plan == fastest else ''}")
    print(f"recorded plan: {RECORDED_CPU_PLANS.get(name, ForwardPlan())}")
    if args.save:
        import torch

        path = save_plan(plan_key(name, torch.device("cpu"), cores), fastest, timings)
        print(f"runs of {name} on this machine now use {fastest} (kept in {path})")
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
    from .inputs import is_saved_dna, saved_dna

    method = args.method or DEFAULT_METHOD
    kinds = [_image_histograms(args) if kind == "image-histogram" else kind for kind in PER_IMAGE_INPUTS[method]]

    if len(PER_IMAGE_INPUTS[method]) > 1 and args.method and any(map(is_saved_dna, (args.images, args.reference))):
        raise ValueError(f"--method {method} needs {' and '.join(PER_IMAGE_INPUTS[method])} DNAs of each set, and a saved "
                         "DNA is one of them: give the images (a folder, an index, ...) to rank by it, or a --method "
                         "that one saved DNA a side serves (emd, emd-ratio, embedding-cosine, embedding-distance)")

    def dnas(argument: str, reference: bool) -> list[VDNA]:
        if is_saved_dna(argument):  # one saved DNA of one kind: the paper's emd unless a method is asked
            if reference:
                return [saved_dna(argument)]
            kind = PER_IMAGE_INPUTS[args.method or "emd"][0]
            return [_dna(argument, args, _image_histograms(args) if kind == "image-histogram" else kind)]
        if reference and method == "emd":
            return [_dna(argument, args, _histograms(args))]
        return _dnas(argument, args, kinds)

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
    from .distances import get_distance
    from .neurons import rank_neurons

    distance = get_distance(args.metric)
    if args.histograms and "histogram" not in distance.set_types:
        raise ValueError(f"--histograms draws the neurons' histograms; --metric {args.metric} compares {distance.accepted()}")
    first, second = (distance.set_dna(_dna(argument, args, distance.distribution(args.bins)), name)
                     for argument, name in ((args.a, "A"), (args.b, "B")))
    ranked = rank_neurons(first, second, args.metric)
    for position, neuron in enumerate(ranked[: args.top], 1):
        print(f"{position:5d}  {neuron.layer}[{neuron.index}]  {args.metric} {neuron.distance:.6f}")
    per_neuron = distance.unit_values(first, second) if args.csv or args.profile else None
    if args.csv:
        _write_unit_values(args.csv, per_neuron, args.metric)
    if args.histograms:
        from .plots import plot_neuron_histograms

        plot_neuron_histograms(first, second, [(n.layer, n.index) for n in ranked[: args.top]], args.histograms,
                               labels=(Path(args.a).name, Path(args.b).name))
    if args.profile:
        from .plots import plot_layer_profile

        plot_layer_profile(per_neuron, args.profile)
    return 0


def command_realism(args: argparse.Namespace) -> int:
    from .apps.realism import rank_by_realism, realism_neurons

    if bool(args.other_real) != bool(args.other_generated):
        raise ValueError("--other-real and --other-generated go together: real and generated images of other classes")
    generated = _dna(args.generated, args, _image_histograms(args))
    real = _dna(args.real, args, _histograms(args))
    neurons = None
    if args.other_real:
        other_real = [_dna(item, args, _histograms(args)) for item in args.other_real]
        other_generated = [_dna(item, args, _histograms(args)) for item in args.other_generated]
        neurons = realism_neurons(other_real, other_generated, args.neurons)
        print(f"ranking on the {neurons.num_neurons} neurons most sensitive to real vs generated "
              f"({', '.join(f'{layer}: {len(indices)}' for layer, indices in neurons.items())})")
    _print_ranking(rank_by_realism(generated, real, neurons), args.top, args.csv)
    return 0


def command_attributes(args: argparse.Namespace) -> int:
    from .apps.attributes import learn_removals, load_attribute_pairs, save_removals

    train, validation = load_attribute_pairs(args.train), load_attribute_pairs(args.validation)
    test = load_attribute_pairs(args.test) if args.test else None
    learned = learn_removals(train, validation, args.target, args.metric, args.learning_rate, args.patience,
                             args.max_iterations, test)
    for target, item in learned.items():
        removal = item.removal
        line = (f"{target}: removal {100 * removal.target_removal:.1f}%  others |deviation| "
                f"{100 * removal.other_deviation:.1f}% (validation)")
        if item.test is not None:
            line += f"; test {100 * item.test[0]:.1f}% / {100 * item.test[1]:.1f}%"
        print(line)
    if args.output:
        save_removals(learned, args.output, args.metric)
    return 0


def _read_table(path: str) -> dict[str, dict[str, float]]:
    import json

    with open(path, encoding="utf-8") as handle:
        table = json.load(handle)
    if not isinstance(table, dict) or not all(isinstance(row, dict) for row in table.values()):
        raise ValueError(f"{path}: expected a JSON object {{target: {{source: value}}}}")
    return table


def command_transfer(args: argparse.Namespace) -> int:
    from .apps.transfer import distance_matrix, rank_sources, ranking_discrepancy
    from .distances import get_distance
    from .inputs import is_saved_dna

    distance = get_distance(args.metric)
    if len(args.dnas) < 2:
        raise ValueError(f"transfer compares at least 2 DNAs or image sets, got {len(args.dnas)}")
    dnas = {Path(path).with_suffix("").name if is_saved_dna(path) else Path(path).name: path for path in args.dnas}
    if len(dnas) != len(args.dnas):
        raise ValueError("two DNAs or sources have the same name; names must be distinct")
    performance = _read_table(args.performance) if args.performance else None
    if performance is not None:
        unknown = sorted({name for target, row in performance.items() for name in (target, *row)} - set(dnas))
        if unknown:
            raise ValueError(f"--performance names sets that are not among the DNAs: {', '.join(unknown)} "
                             f"(the DNAs are {', '.join(dnas)})")
    loaded = {name: distance.set_dna(_dna(path, args, distance.distribution(args.bins)), name) for name, path in dnas.items()}
    matrix = distance_matrix(loaded, distance.compare)
    for target, row in matrix.items():
        others = {source: value for source, value in row.items() if source != target}
        ranked = rank_sources(others, higher_is_better=False)
        print(f"{target}: " + ", ".join(f"{source} {others[source]:.4f}" for source in ranked))
    if args.heatmap:
        from .plots import plot_distance_matrix

        plot_distance_matrix(matrix, args.heatmap, title=distance.label)
    if performance is not None:
        print(f"ranking discrepancy d: {ranking_discrepancy(performance, matrix):.4f}")
    return 0


def command_sample_size(args: argparse.Namespace) -> int:
    from .apps.sample_size import noise_floor_beside, sample_size_curve
    from .inputs import is_saved_dna
    from .stats import noise_floor_limits, set_dna

    try:
        sizes = [int(size) for size in args.sizes.split(",")]
    except ValueError:
        raise ValueError(f"--sizes must be comma-separated whole numbers such as 10,20,50, got {args.sizes!r}") from None
    histograms = _image_histograms(args)
    if args.fd:
        if is_saved_dna(args.images) or is_saved_dna(args.reference):
            raise ValueError("--fd compares the Fréchet distance of each image's mean activations, which saved histogram "
                             "DNAs do not hold: give IMAGES and REFERENCE as folders of images (per-image histograms "
                             "and means are made from them in one pass each)")
        images, means = _dnas(args.images, args, [histograms, "image-mean"])
        reference, reference_means = _dnas(args.reference, args, [histograms, "image-mean"])
    else:
        images = _dna(args.images, args, histograms)
        reference = _dna(args.reference, args, histograms) if not is_saved_dna(args.reference) else _saved(args.reference)
    inputs = {"dna-emd": (images, reference, "emd")}
    if args.fd:
        inputs["fd"] = (means, reference_means, "fd")
    curves, floors, pooled = {}, {}, reference.type == "image-histogram"
    for label, (subsets, whole, metric) in inputs.items():
        layers = args.fd_layer if metric == "fd" else None
        curves[label] = sample_size_curve(subsets, set_dna(whole, metric, "reference"), sizes, args.seeds, metric=metric,
                                          layers=layers)
        floors[label] = noise_floor_beside(curves[label], subsets, whole if pooled else whole.num_images,
                                           run_config(args).seed, layers)
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


def _saved(argument: str) -> VDNA:
    from .inputs import saved_dna

    return saved_dna(argument)


def command_report(args: argparse.Namespace) -> int:
    from .report import make_report

    path = make_report(args.a, args.b, args.output, processor=_processor(args), bins=args.bins,
                       top_neurons=args.top_neurons, images_shown=args.images_shown, stats=args.stats,
                       config=run_config(args), stats_config=_settings(args, StatsConfig), on_made=_report_skipped)
    print(f"report -> {path}")
    return 0


# -- the parser --------------------------------------------------------------------------------------------------
def _command(commands: Any, name: str, handler: Callable[[argparse.Namespace], int], summary: str, description: str) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=summary, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(handler=handler, command_parser=parser)
    return parser


def _add_making(
    parser: argparse.ArgumentParser, groups: Iterable[str] = (), exclude: Iterable[str] = (), defaults: dict[str, str] | None = None
) -> None:
    """The flags of making DNAs from images (``groups``: the optional ones this command offers)."""
    _add_settings(parser, RunConfig, "making DNAs from images", groups, exclude, defaults)


def _add_bins(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bins", type=_integer(2), default=1000, help="histogram bins when making DNAs (default 1000)")


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
    rank.add_argument("--top", type=_integer(0), default=20, help="print the first N (0: all; default 20)")
    rank.add_argument("--csv", type=_output_file, help="write the whole ranking to this CSV file")
    rank.add_argument("--grid", type=_output_file, help="draw the best, middle and worst images to this image file")
    rank.add_argument("--relevant", type=_input_file, help="file naming the relevant images, to score the ranking")
    rank.add_argument("--pr-plot", type=_output_file, help="with --relevant, draw the precision-recall curve to this image file")

    neurons = _command(commands, "neurons", command_neurons, "the neurons that differ most between two sets", (
        "Rank every neuron by its distance between A and B (the EMD between its histograms by default), most different first: the\n"
        "neurons sensitive to what tells the sets apart (sections 5.3-5.4). Optionally draws their\n"
        "histograms and the per-layer profile (Fig. 8-9, 11)."))
    neurons.add_argument("a")
    neurons.add_argument("b")
    neurons.add_argument("--metric", choices=_distances(), default="emd",
                         help="a distance measured neuron by neuron: emd (histograms, the default), nfd or smd (gaussian)")
    neurons.add_argument("--top", type=_integer(1), default=20, help="neurons to print and draw (default 20)")
    neurons.add_argument("--csv", type=_output_file, help="write every neuron's distance to this CSV file")
    neurons.add_argument("--histograms", type=_output_file, help="draw the top neurons' histograms to this image file")
    neurons.add_argument("--profile", type=_output_file, help="draw the per-layer profile of neuron-wise distances to this image file")

    realism = _command(commands, "realism", command_realism, "rank generated images by realism", (
        "Rank the generated images GENERATED by their EMD to the DNA of real images REAL, most realistic\n"
        "first (section 5.4). With --other-real and --other-generated (DNAs or image sets of other classes)\n"
        "only the --neurons neurons most sensitive to real vs generated on those classes are used."))
    realism.add_argument("generated")
    realism.add_argument("real")
    realism.add_argument("--other-real", nargs="+", default=[], help="real images (or DNAs) of other classes")
    realism.add_argument("--other-generated", nargs="+", default=[], help="generated images (or DNAs) of other classes")
    realism.add_argument("--neurons", type=_integer(1), default=100, help="sensitive neurons to use (default 100)")
    realism.add_argument("--top", type=_integer(0), default=20, help="print the first N (0: all; default 20)")
    realism.add_argument("--csv", type=_output_file, help="write the whole ranking to this CSV file")

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
    attributes.add_argument("--metric", choices=_distances(), default="emd", help="the distance whose units are weighted")
    attributes.add_argument("--learning-rate", type=_number(0), default=1e-5, help="Adam's learning rate (default 1e-5)")
    attributes.add_argument("--patience", type=_integer(1), default=50, help="iterations without progress before stopping")
    attributes.add_argument("--max-iterations", type=_integer(1), default=100_000)
    attributes.add_argument("-o", "--output", type=_output_file, help="write the weights and scores to this JSON file")

    transfer = _command(commands, "transfer", command_transfer, "distances between datasets, to choose training data", (
        "The distance matrix (dna-emd by default) between the DNAS (saved DNAs or image sets), each target's sources\n"
        "ranked closest first (section 5.5); with --performance (JSON {target: {source: score}}, higher is\n"
        "better) the ranking discrepancy d of eq. 8."))
    transfer.add_argument("dnas", nargs="+")
    transfer.add_argument("--metric", choices=_distances(), default="emd", help="the distance (default: emd)")
    transfer.add_argument("--performance", type=_input_file,
                          help="observed transfer performance, JSON {target: {source: value}}")
    transfer.add_argument("--heatmap", type=_output_file, help="draw the distance matrix to this image file")

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
    sample_size.add_argument("--seeds", type=_integer(1), default=10, help="random subsets per size (default 10)")
    sample_size.add_argument("--fd", action="store_true",
                             help="also the Fréchet distance (needs folders of images: it uses each image's mean activations)")
    sample_size.add_argument("--fd-layer", nargs="+", help="layers of the Fréchet distance (default: all, averaged)")
    sample_size.add_argument("--tolerance", type=_number(0), default=0.05, help="relative tolerance (default 0.05)")
    sample_size.add_argument("--plot", type=_output_file, help="draw the curves to this image file")

    report = _command(commands, "report", command_report, "an HTML page comparing two image sets", (
        "Write one self-contained HTML page comparing A and B (image sources, or saved histogram or\n"
        "per-image DNAs): how sure the difference is (value, estimate, interval, noise floor, p-value; from\n"
        "images or per-image DNAs), distances, each layer's share of the EMD, the neurons furthest above\n"
        "their own noise floor by layer with their two cumulative distributions (the area between them, their\n"
        "EMD, shaded) and the parts of each set's images where they fire most, and the images of\n"
        "each set closest to and furthest from the other. Each set of images goes through the network once."))
    report.add_argument("a")
    report.add_argument("b")
    report.add_argument("-o", "--output", type=_output_file, required=True, help="HTML file to write")
    report.add_argument("--top-neurons", type=_integer(1), default=8, help="neurons to show (default 8)")
    report.add_argument("--no-stats", dest="stats", action="store_false",
                        help="leave out the statistics (estimate, interval, noise floor, p-value), e.g. for sets of one image")
    report.add_argument("--images-shown", type=_integer(1), default=6,
                        help="images per row, and crops per set for each neuron (default 6)")
    _add_settings(report, StatsConfig, "statistics")

    for parser in (rank, realism, sample_size, report, neurons, transfer):
        _add_bins(parser)
        _add_making(parser, groups=("streams",))


def _distances() -> list[str]:
    from .distances import list_distances

    return list_distances()


def _metric_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in _distances()]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown metric {', '.join(unknown) or repr(text)}; valid: {', '.join(_distances())}")
    return names


def build_parser() -> argparse.ArgumentParser:
    """The ``vdna`` command's argument parser."""
    parser = _Parser(prog="vdna", description="Visual DNA: make, compare and inspect DNAs of image sets.")
    parser.add_argument("--version", action="version", version=f"vdna {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    make = _command(commands, "make", command_make, "make the DNA of a set of images and save it", (
        "Make the DNA of the images of SOURCE (a folder, an image, a .txt index of paths, a .zip or tar shards) and save\n"
        "it as OUTPUT.json + OUTPUT.npz."))
    make.add_argument("source")
    make.add_argument("-o", "--output", type=_dna_output, required=True, help="path of the DNA to write (without suffix)")
    make.add_argument("--compact", action="store_true", help="write histograms in the compact .vdnz encoding")
    _add_making(make, groups=("distribution", "streams", "checkpoint"))
    _add_settings(make, RayConfig, "making the DNA on Ray", groups=("ray",))

    compare = _command(commands, "compare", command_compare, "distance between two DNAs or image sets", (
        "Distance between A and B, each a saved DNA (NAME, NAME.json, NAME.npz or NAME.vdnz) or a source of images\n"
        "whose DNA is made on the fly.\n\n"
        "--stats also tells how sure the distance is, from per-image DNAs (image-histogram-B for emd, image-mean\n"
        "for nfd and fd: made from images in one pass, or saved ones), resampled without running the network\n"
        "again: the estimate (the distance with sampling noise removed, as the interval removes it), a 95%\n"
        "bootstrap interval, the noise floor (the mean distance between random splits of the pooled images\n"
        "into sets of the same sizes, +- its spread) and the permutation p-value. --by-layer gives each layer's value and share of the total, early to late: with --stats\n"
        "also its estimate, interval, noise floor and p-value; without, from the DNAs of the whole sets (any saved DNAs)."))
    compare.add_argument("a")
    compare.add_argument("b")
    compare.add_argument("--metric", choices=_distances(), default=None,
                         help="the distance (default: emd, between histograms; nfd between gaussian DNAs, fd between "
                              "layer-gaussian DNAs)")
    compare.add_argument("--metrics", type=_metric_list, metavar="NAME,NAME,...",
                         help="several distances, each set's DNAs made in one pass for all (JSON: a list, one per metric)")
    compare.add_argument("--layer", default=None, help="compare the neurons of this layer only")
    compare.add_argument("--neuron-wise", type=_output_file, metavar="FILE.csv",
                         help="also write per-neuron distances to this CSV file")
    compare.add_argument("--neuron-weights", type=_input_file, metavar="FILE.json",
                         help="weight neurons (EMD_W) with the weights written by `vdna attributes -o`")
    compare.add_argument("--attribute", help="with --neuron-weights: the attribute whose weights to use, if the file holds several")
    compare.add_argument("--json", action="store_true", help="print the result as JSON")
    compare.add_argument("--stats", action="store_true",
                         help="also the estimate, 95%% interval, noise floor and p-value, from per-image DNAs")
    compare.add_argument("--by-layer", action="store_true",
                         help="each layer's value and share of the total, early to late (with --stats, its noise floor too)")
    _add_settings(compare, StatsConfig, "statistics (with --stats)")
    _add_making(compare, groups=("distribution", "streams"), defaults={"distribution_name": "the metric's"})
    _add_settings(compare, RayConfig, "making the DNAs on Ray", groups=("ray",))

    inspect = _command(commands, "inspect", command_inspect, "describe a saved DNA",
                       "Describe the saved DNA DNA (NAME, NAME.json, NAME.npz or NAME.vdnz), its arrays checked against their sha256.")
    inspect.add_argument("dna")

    calibrate = _command(commands, "calibrate", command_calibrate, "activation ranges of an extractor over your images", (
        "Compute every neuron's minimum and maximum activation over the images of SOURCE with --extractor and save\n"
        "them as OUTPUT (JSON); histograms made with --ranges OUTPUT normalise each neuron with its range widened\n"
        "by --margin (appendix A.2 of the paper). Needed for extractors without published ranges (e.g.\n"
        "timm:<model>, resnet50, dinov2_*)."))
    calibrate.add_argument("source")
    calibrate.add_argument("-o", "--output", type=_output_file, required=True, help="ranges file to write (JSON)")
    calibrate.add_argument("--margin", type=_number(0, 10), default=0.2, help="widening of each range (default 0.2)")
    _add_making(calibrate, groups=("streams",), exclude=("activation_ranges",))

    extractors = _command(commands, "extractors", command_extractors, "list the registered feature extractors",
                          "List the feature extractors by name; --details builds each with random weights to show its layers.")
    extractors.add_argument("--details", action="store_true", help="also build each (random weights) to show its layers")

    plan = _command(commands, "plan", command_plan, "measure the forward plans of an extractor on this machine", (
        "Time whole runs of your images (or random ones) with each candidate plan (forward batches of 1, 4, 8 and 16 images, and\n"
        "one stream per core) and print images per second: the images a run of --images adds to a run of half as many,\n"
        "over the time it adds, so what each run spends once cancels out. Runs that set neither --forward-batch-size nor\n"
        "--streams use the extractor's plan: with --save, the fastest measured here; else the recorded one."))
    plan.add_argument("source", nargs="?", help="images to time the runs on, as a run reads them (default: random "
                                                 "arrays, with nothing to decode)")
    plan.add_argument("--images", type=_integer(2), default=64,
                      help="images of the longer timed run; a run of half as many is timed too (default 64)")
    plan.add_argument("--save", action="store_true", help="keep the fastest plan for runs of this extractor here")
    _add_making(plan, groups=("distribution",), exclude=("forward_batch_size", "num_images", "shuffle_files"))

    _add_application_commands(commands)
    return parser


def _flags(parser: argparse.ArgumentParser) -> dict[str, str]:
    """``{argument's name: its flag}`` of a command, so messages name its arguments as typed."""
    return {action.dest: max(action.option_strings, key=len) for action in parser._actions if action.option_strings}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vdna`` command: exit status 0, 2 for a user's mistake (one line saying it), 130 on Ctrl-C."""
    args = build_parser().parse_args(argv)

    def one_line(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
        print(f"vdna {args.command}: warning: {message}", file=sys.stderr)

    try:
        with command_line_names(_flags(args.command_parser)), warnings.catch_warnings():
            warnings.showwarning = one_line
            return args.handler(args)
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"vdna {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        kept = getattr(args, "checkpoint", None)
        resume = f"; {kept} keeps the images done: run the same command again to resume" if kept else ""
        print(f"vdna {args.command}: interrupted{resume}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "build_parser",
    "main",
]
