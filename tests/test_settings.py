"""Every setting is declared once: its flag, check and default, and every entry point derives from that declaration."""

from __future__ import annotations

import inspect
import pickle
from dataclasses import fields

import pytest

from vdna import RunConfig, StatsConfig
from vdna.cli import build_parser
from vdna.config import COMMAND_LINE_FLAGS, CONFIGS, RayConfig, declared, option, run_settings


def _entry_points():
    from vdna.comparison import compare, compare_metrics
    from vdna.distributed import make_vdna_ray
    from vdna.explain import neuron_examples
    from vdna.metrics import DNAMetric
    from vdna.processor import VDNAProcessor
    from vdna.report import make_report
    from vdna.stats import compare_sets

    return {
        "make_vdna": VDNAProcessor.make_vdna, "make_vdnas": VDNAProcessor.make_vdnas, "calibrate": VDNAProcessor.calibrate,
        "make_vdna_ray": make_vdna_ray, "DNAMetric": DNAMetric.__init__, "make_report": make_report,
        "neuron_examples": neuron_examples, "compare": compare, "compare_metrics": compare_metrics,
        "compare_sets": compare_sets,
    }


SETTINGS = {item.name: item.default for config_class in CONFIGS for item in fields(config_class)}


@pytest.mark.parametrize("name", list(_entry_points()))
def test_entry_points_name_settings_as_declared_with_their_defaults(name):
    """A parameter named after a setting defaults to the setting's declared default, and the rest arrive as **options."""
    signature = inspect.signature(_entry_points()[name])
    parameters = signature.parameters
    for parameter in parameters.values():
        if parameter.name in SETTINGS and parameter.default is not inspect.Parameter.empty:
            assert parameter.default == SETTINGS[parameter.name], (name, parameter.name)
    named = {p.name for p in parameters.values()} & set(SETTINGS)
    takes_options = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    assert takes_options or name == "compare_sets", name
    if name == "compare_sets":
        assert {"resamples", "permutations", "seed"} <= named
    assert "weights" not in parameters or name in ("compare_sets",), name  # one meaning: extractor_ or neuron_weights


def test_options_that_are_not_settings_are_refused_naming_the_valid_ones():
    with pytest.raises(TypeError, match=r"unknown settings of make_vdna \['batchsize'\]; valid: activation_ranges, batch_size"):
        run_settings(None, "make_vdna", batchsize=4)
    config, ranges = run_settings(RunConfig(seed=3), "x", batch_size=4)
    assert (config.seed, config.batch_size, ranges) == (3, 4, None)


def test_the_former_name_of_the_extractors_weights_still_works_and_says_its_new_name():
    with pytest.warns(DeprecationWarning, match="weights= is now named extractor_weights="):
        config, _ = run_settings(None, "make_vdna", weights="w.pth")
    assert config.extractor_weights == "w.pth"
    with pytest.raises(TypeError, match=r"give extractor_weights= only \(weights= is its former name\)"):
        run_settings(None, "make_vdna", weights="a", extractor_weights="b")


def test_a_config_is_plain_data_that_pickles():
    from pathlib import Path

    config = RunConfig(device="cpu", activation_ranges=Path("/r.json"), extractor_weights=Path("w.pth"), checkpoint=Path("c"))
    assert (config.activation_ranges, config.extractor_weights, config.checkpoint) == ("/r.json", "w.pth", "c")
    assert all(isinstance(getattr(config, item.name), (str, int, float, bool, type(None))) for item in fields(config))
    assert pickle.loads(pickle.dumps(config)) == config


def test_ranges_in_memory_travel_beside_the_config_not_in_it():
    from vdna import ActivationRanges

    ranges = ActivationRanges("x", {}, {})
    config, given = run_settings(None, "make_vdna", activation_ranges=ranges)
    assert config.activation_ranges is None and given is ranges


@pytest.mark.parametrize(
    ("config_class", "options", "match"),
    [
        (RunConfig, {"batch_size": 0}, "batch_size must be a positive integer, got 0"),
        (RunConfig, {"batch_size": True}, "batch_size must be a positive integer, got True"),
        (RunConfig, {"num_images": 0}, r"num_images must be -1 \(all\) or a positive integer, got 0"),
        (RunConfig, {"num_workers": -1}, "num_workers must be a non-negative integer, got -1"),
        (RunConfig, {"precision": "int8"}, r"precision must be one of \('float32', 'bfloat16', 'float16'\), got 'int8'"),
        (RunConfig, {"shuffle_files": 1}, "shuffle_files must be True or False, got 1"),
        (RunConfig, {"checkpoint": ""}, "checkpoint must be a path, got an empty one"),
        (StatsConfig, {"resamples": 0}, "resamples must be a positive integer, got 0"),
        (RayConfig, {"num_gpus_per_actor": -0.5}, "num_gpus_per_actor must be a non-negative number, got -0.5"),
    ],
)
def test_settings_are_checked_by_their_declaration(config_class, options, match):
    with pytest.raises(ValueError, match=match):
        config_class(**options)


def test_the_command_lines_flags_are_the_declared_ones():
    assert COMMAND_LINE_FLAGS == {item.name: setting.flag for config_class in CONFIGS for item, setting in declared(config_class)
                                  if setting.flag}
    commands = {action.dest: action for action in build_parser()._subparsers._group_actions[0].choices["make"]._actions}
    for config_class in (RunConfig, RayConfig):
        for item, setting in declared(config_class):
            if setting.flag:
                assert item.name in commands and setting.flag in commands[item.name].option_strings, item.name
    compare = build_parser()._subparsers._group_actions[0].choices["compare"]
    assert {"resamples", "permutations"} <= {action.dest for action in compare._actions}


def test_flags_not_given_keep_the_declared_defaults():
    from vdna.cli import run_config

    args = build_parser().parse_args(["make", "folder", "-o", "out", "--batch-size", "8", "--skip-bad", "--quiet"])
    assert run_config(args) == RunConfig(batch_size=8, on_error="skip", verbose=False)


def test_messages_name_settings_by_their_flags_on_the_command_line():
    from vdna.config import command_line_names

    assert option("activation_ranges") == "activation_ranges"
    with command_line_names({"attribute": "--attribute"}):
        assert option("activation_ranges") == "--ranges" and option("attribute") == "--attribute"
        with pytest.raises(ValueError, match="--batch-size must be a positive integer"):
            RunConfig(batch_size=0)
