"""Every setting of the library, each declared once: its default, its check, its command-line flag and help.

:class:`RunConfig` holds the settings of making DNAs, :class:`StatsConfig` those of the statistics
of a comparison and :class:`RayConfig` those of a run on Ray. Each field is declared with
:func:`setting`, which records what the command line, the messages and the checks need; the
``vdna`` command's flags, the names messages give (:func:`option`) and the validation of every
entry point derive from these declarations. The configurations are frozen, plain data (numbers,
names, paths as strings) that pickle and travel to other processes; devices, activation ranges and
weights are resolved when a run starts. Changing a setting makes a new object
(``dataclasses.replace``). This module imports neither torch nor numpy, so the command line can
describe its options without them.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import numbers
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import Field, dataclass, field, fields, replace
from typing import Any

DEFAULT_EXTRACTOR = "efficientnet_lite0"
DEFAULT_DISTRIBUTION = "histogram-1000"
TIMM_PREFIX = "timm:"
"""Extractor names starting with this name any timm model: ``timm:<model_name>``."""
CROP_MODES = ("none", "center", "random")
ON_ERROR = ("raise", "skip")
PRECISIONS = ("float32", "bfloat16", "float16")
PATH_KINDS = ("path", "file", "output")
DEFAULT_MAX_IMAGE_PIXELS = 178_956_970
"""Images declaring more pixels than this are refused as decompression bombs (twice Pillow's warning limit)."""
DISTRIBUTIONS_HELP = (
    "histogram-B (e.g. histogram-1000), gaussian, layer-gaussian, activation-ranges, or per image: image-histogram-B, image-mean"
)


@dataclass(frozen=True)
class Setting:
    """What a setting's declaration records beside its default.

    ``kind``: ``int``, ``float``, ``bool``, ``str``, ``"path"`` (a path, kept as a string), ``"file"``
    (the path of a file read), ``"output"`` (the path of a file written) or ``"device"`` (kept as a
    string such as ``"cuda:1"``). ``minimum`` and ``also`` (other valid
    values) bound numbers; ``choices`` lists valid strings; a default of None means None is valid.
    ``flag``: the ``vdna`` command's flag (None: no flag); a boolean's flag switches it away from
    its default, and ``flag_value`` is what a flag without a value sets (``--skip-bad``: ``"skip"``).
    ``group``: flags that only some commands offer; ``default_text`` describes a None default.
    ``identity``: the DNA depends on it, so a checkpoint made with another value is not resumed;
    ``values``: each image's activations depend on it, so DNAs (and metric states) made with other values do not merge;
    ``reading``: it says how a source of files is read, which a training-loop metric (fed tensors) has no use for.
    """

    help: str
    kind: Any
    flag: str | None = None
    minimum: float | None = None
    also: tuple[Any, ...] = ()
    choices: tuple[str, ...] | None = None
    flag_value: Any = None
    group: str | None = None
    default_text: str | None = None
    metavar: str | None = None
    identity: bool = False
    values: bool = False
    reading: bool = False


def setting(
    default: Any,
    help: str,
    kind: Any = None,
    *,
    flag: str | None = None,
    minimum: float | None = None,
    also: tuple[Any, ...] = (),
    choices: tuple[str, ...] | None = None,
    flag_value: Any = None,
    group: str | None = None,
    default_text: str | None = None,
    metavar: str | None = None,
    identity: bool = False,
    values: bool = False,
    reading: bool = False,
) -> Any:
    """A dataclass field declaring a setting (see :class:`Setting`); ``kind`` defaults to the default's type."""
    declared = Setting(
        help=help, kind=kind or type(default), flag=flag, minimum=minimum, also=also, choices=choices,
        flag_value=flag_value, group=group, default_text=default_text, metavar=metavar, identity=identity,
        values=values, reading=reading,
    )
    return field(default=default, metadata={"setting": declared})


def declared(config_class: type) -> list[tuple[Field, Setting]]:
    """The fields of a configuration class with their declarations, in order."""
    return [(item, item.metadata["setting"]) for item in fields(config_class)]


def _check(config_class: type, name: str, value: Any, declaration: Setting, default: Any) -> Any:
    """``value`` checked against its declaration and normalised (paths and devices become strings)."""
    if value is None and default is None:
        return None
    kind = declaration.kind
    if kind in PATH_KINDS:
        if not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"{option(name)} must be a path, got {type(value).__name__}")
        normalised = os.fspath(value)
        if not normalised:
            raise ValueError(f"{option(name)} must be a path, got an empty one")
        return normalised
    if kind == "device":
        return str(value)
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{option(name)} must be True or False, got {value!r}")
        return value
    if kind in (int, float):
        number = isinstance(value, numbers.Integral) if kind is int else isinstance(value, numbers.Real)
        if not number or isinstance(value, bool):
            raise ValueError(f"{option(name)} must be {_bound_text(declaration)}, got {value!r}")
        value = int(value) if kind is int else value
        if kind is float and not math.isfinite(value):
            raise ValueError(f"{option(name)} must be {_bound_text(declaration)}, got {value!r}")
        if value in declaration.also:
            return value
        if declaration.minimum is not None and not value >= declaration.minimum:
            raise ValueError(f"{option(name)} must be {_bound_text(declaration)}, got {value!r}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"{option(name)} must be a string, got {value!r}")
    if declaration.choices is not None and value not in declaration.choices:
        raise ValueError(f"{option(name)} must be one of {declaration.choices}, got {value!r}")
    return value


def _bound_text(declaration: Setting) -> str:
    noun = "integer" if declaration.kind is int else "number"
    if declaration.minimum is None:
        text = f"a{'n' if noun == 'integer' else ''} {noun}"
    elif declaration.minimum == 0:
        text = f"a non-negative {noun}"
    elif declaration.minimum == 1 and noun == "integer":
        text = "a positive integer"
    else:
        text = f"a{'n' if noun == 'integer' else ''} {noun} >= {declaration.minimum:g}"
    others = " or ".join(repr(value) for value in declaration.also)
    if others and declaration.default_text:
        others += f" ({declaration.default_text})"
    return f"{others} or {text}" if others else text


class _Checked:
    """Frozen settings checked against their declarations when made (paths and devices kept as strings)."""

    def __post_init__(self) -> None:
        for item, declaration in declared(type(self)):
            value = _check(type(self), item.name, getattr(self, item.name), declaration, item.default)
            object.__setattr__(self, item.name, value)

    @classmethod
    def field_names(cls) -> list[str]:
        """The names of the settings, in order."""
        return [item.name for item in fields(cls)]

    @classmethod
    def from_options(cls, **options: Any) -> Any:
        """Settings from keyword options, naming any that is not a setting."""
        _refuse_unknown(cls, options)
        return cls(**options)


def _refuse_unknown(config_class: type, options: Mapping[str, Any], where: str = "") -> None:
    names = set(config_class.field_names())
    unknown = sorted(set(options) - names)
    if unknown:
        place = f" of {where}" if where else ""
        raise TypeError(f"unknown settings{place} {unknown}; valid: {', '.join(sorted(names))}")


@dataclass(frozen=True)
class RunConfig(_Checked):
    """The settings of making DNAs, named as :meth:`vdna.VDNAProcessor.make_vdna`'s arguments.

    ``activation_ranges`` and ``extractor_weights`` are files; activation ranges held in memory (an
    :class:`~vdna.ActivationRanges` or an activation-ranges DNA) are given to a run beside its
    config (every entry point that takes ``activation_ranges=`` accepts them). ``device=None``
    means CUDA when available; ``num_workers=None`` one decoding process per available core;
    ``forward_batch_size=None`` and ``streams=None`` the extractor's plan (:mod:`vdna.plans`).
    """

    num_images: int = setting(-1, "use at most this many images", flag="--num-images", minimum=1, also=(-1,),
                              default_text="all", reading=True)
    shuffle_files: bool = setting(False, "with --num-images, draw a random subset", flag="--shuffle", reading=True)
    feat_extractor_name: str = setting(DEFAULT_EXTRACTOR, "feature extractor", flag="--extractor", identity=True, values=True)
    distribution_name: str = setting(DEFAULT_DISTRIBUTION, DISTRIBUTIONS_HELP, flag="--distribution", group="distribution",
                                     identity=True)
    seed: int = setting(0, "seed of --shuffle, random crops and resampling", flag="--seed", minimum=0, identity=True)
    batch_size: int = setting(64, "images per loader batch", flag="--batch-size", minimum=1, reading=True)
    device: str | None = setting(None, "e.g. cpu, cuda, cuda:1", "device", flag="--device", default_text="CUDA when available")
    verbose: bool = setting(True, "no progress bar", flag="--quiet")
    num_workers: int | None = setting(None, "decoding processes", int, flag="--workers", minimum=0,
                                      default_text="available cores", reading=True)
    save_sample_images: str | None = setting(None, "a folder to save a few preprocessed images to", "path", reading=True)
    n_sample_images: int = setting(5, "how many preprocessed images save_sample_images saves", minimum=0, reading=True)
    crop_to_square_pre_resize: str = setting("none", "square crop before resizing", flag="--crop", choices=CROP_MODES,
                                             identity=True, values=True)
    activation_ranges: str | None = setting(None, "activation ranges file for histograms", "file", flag="--ranges",
                                            default_text="the extractor's")
    extractor_weights: str | None = setting(None, "weights file for the extractor", "file", flag="--weights",
                                            default_text="its own")
    on_error: str = setting("raise", "skip unreadable images (listed) instead of stopping", flag="--skip-bad",
                            choices=ON_ERROR, flag_value="skip", identity=True, reading=True)
    max_image_pixels: int = setting(DEFAULT_MAX_IMAGE_PIXELS, "refuse images declaring more pixels (decompression bombs)",
                                    flag="--max-image-pixels", minimum=1, identity=True)
    forward_batch_size: int | None = setting(None, "images per forward pass", int, flag="--forward-batch-size", minimum=1,
                                             default_text="the extractor's plan on the CPU, --batch-size on CUDA",
                                             identity=True)
    precision: str = setting("float32", "run the network under autocast (faster on GPUs, changes results slightly)",
                             flag="--precision", choices=PRECISIONS, identity=True, values=True)
    compile: bool = setting(False, "run the network through torch.compile", flag="--compile", identity=True, values=True)
    channels_last: bool = setting(False, "feed the network channels-last images (faster with autocast on recent GPUs; "
                                         "changes results slightly)", flag="--channels-last", identity=True, values=True)
    checkpoint: str | None = setting(None, "save the run's state to this file, and resume from it", "output",
                                     flag="--checkpoint", group="checkpoint", reading=True)
    checkpoint_every: int = setting(1000, "images between checkpoints", flag="--checkpoint-every", minimum=1,
                                    group="checkpoint", reading=True)
    streams: int | None = setting(None, "CPU: streams running the network side by side on one thread each, each "
                                        "decoding its own images", int, flag="--streams", minimum=1, group="streams",
                                  default_text="the extractor's plan", reading=True)


@dataclass(frozen=True)
class StatsConfig(_Checked):
    """The settings of the statistics of a comparison (:func:`vdna.stats.compare_sets`)."""

    resamples: int = setting(200, "bootstrap resamples of the statistics", flag="--resamples", minimum=1)
    permutations: int = setting(200, "random splits of the pooled images for the noise floor and p-value",
                                flag="--permutations", minimum=1)


@dataclass(frozen=True)
class RayConfig(_Checked):
    """Where and how a run on Ray runs (:func:`vdna.distributed.make_vdna_ray`)."""

    address: str | None = setting(None, "make the DNA on Ray: a local Ray, or the cluster at ADDRESS "
                                        "(auto, ray://head:10001)", str, flag="--ray", metavar="ADDRESS",
                                  default_text="no Ray", group="ray")
    num_actors: int | None = setting(None, "actors running the network", int, flag="--ray-actors", minimum=1,
                                     group="ray", default_text="one per GPU with GPUs per actor, else one")
    num_gpus_per_actor: float = setting(0.0, "GPUs per actor", float, flag="--ray-gpus-per-actor", minimum=0,
                                        group="ray")
    threads_per_actor: int | None = setting(None, "torch threads per actor", int, flag="--ray-threads", minimum=1,
                                            group="ray", default_text="as a local run")


CONFIGS = (RunConfig, StatsConfig, RayConfig)
"""Every configuration class: their settings' names are distinct."""

COMMAND_LINE_FLAGS = {
    item.name: declaration.flag for config_class in CONFIGS
    for item, declaration in declared(config_class) if declaration.flag
}
"""The ``vdna`` command's flag for each setting that has one."""

_COMMAND_LINE: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar("vdna_command_line", default=None)


@contextlib.contextmanager
def command_line_names(flags: Mapping[str, str] | None = None) -> Iterator[None]:
    """Within this context, messages name settings by their command-line flags (``--ranges``, not ``activation_ranges``).

    ``flags`` adds the running command's own arguments (``{python name: flag}``).
    """
    token = _COMMAND_LINE.set({**COMMAND_LINE_FLAGS, **(flags or {})})
    try:
        yield
    finally:
        _COMMAND_LINE.reset(token)


def option(name: str) -> str:
    """How messages name the setting or argument ``name``: its Python name, or its flag on the command line."""
    flags = _COMMAND_LINE.get()
    return flags.get(name, name) if flags is not None else name


def value_settings() -> list[str]:
    """The settings each image's activations depend on (declared ``values``)."""
    return [item.name for item, declaration in declared(RunConfig) if declaration.values]


def settings_of(config: Any) -> dict[str, Any]:
    """``{name: value}`` of every setting of a configuration."""
    return {item.name: getattr(config, item.name) for item in fields(config)}


def check_count(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an integer of at least ``minimum`` (numpy integers too, not bools), or ``ValueError`` naming it as settings are named."""
    return _check(None, name, value, Setting(help="", kind=int, minimum=minimum), default=0)


def check_setting(config_class: type, name: str, value: Any) -> Any:
    """``value`` checked as the setting ``name`` of ``config_class`` is (the same message), normalised."""
    for item, declaration in declared(config_class):
        if item.name == name:
            return _check(config_class, name, value, declaration, item.default)
    raise KeyError(name)


_RENAMED = {"weights": "extractor_weights"}


def run_settings(config: RunConfig | None = None, where: str = "", **options: Any) -> tuple[RunConfig, Any]:
    """The :class:`RunConfig` of a call, and the activation ranges it was given in memory (None if a file or none).

    ``options`` are settings by name; given with ``config`` they replace its fields. Activation
    ranges given as an object rather than a file stay out of the config (which is plain data) and
    are returned beside it, for the run to use. ``weights=`` is the former name of
    ``extractor_weights=``. ``where`` names the entry point in the message refusing unknown names.
    """
    for old, new in _RENAMED.items():
        if old in options:
            if new in options:
                raise TypeError(f"give {new}= only ({old}= is its former name)")
            warnings.warn(f"{old}= is now named {new}=", DeprecationWarning, stacklevel=3)
            options[new] = options.pop(old)
    _refuse_unknown(RunConfig, options, where)
    ranges = options.get("activation_ranges")
    in_memory = None
    if ranges is not None and not isinstance(ranges, (str, os.PathLike)):
        in_memory, options["activation_ranges"] = ranges, None
    made = replace(config, **options) if config is not None else RunConfig(**options)
    return made, in_memory


def given_settings(config: Any, **named: Any) -> dict[str, Any]:
    """Settings passed by name beside ``config``: all of them without a config; with one, those that differ
    from their declared default (a parameter left at its default does not replace the config's value)."""
    if config is None:
        return named
    defaults = {item.name: item.default for item in fields(config)}
    return {name: value for name, value in named.items() if value != defaults[name]}


def split_settings(options: Mapping[str, Any], *config_classes: type) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``options`` split into the settings of each configuration class, and the rest."""
    rest = dict(options)
    parts = []
    for config_class in config_classes:
        names = set(config_class.field_names()) | ({*_RENAMED} if config_class is RunConfig else set())
        parts.append({name: rest.pop(name) for name in list(rest) if name in names})
    return parts, rest


__all__ = [
    "COMMAND_LINE_FLAGS",
    "CONFIGS",
    "CROP_MODES",
    "DEFAULT_DISTRIBUTION",
    "DEFAULT_EXTRACTOR",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "ON_ERROR",
    "PRECISIONS",
    "TIMM_PREFIX",
    "RayConfig",
    "RunConfig",
    "Setting",
    "StatsConfig",
    "check_count",
    "check_setting",
    "command_line_names",
    "declared",
    "given_settings",
    "option",
    "run_settings",
    "setting",
    "settings_of",
    "split_settings",
    "value_settings",
]
