"""Forward plans: which plan a run takes, how plans are measured and kept, and that a run says and records its plan."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from vdna import VDNAProcessor
from vdna.cli import main
from vdna.config import RunConfig
from vdna.extractors import HookExtractor
from vdna.plans import RECORDED_CPU_PLANS, ForwardPlan, plan_key, resolve_plan, save_plan

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VDNA_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture()
def tiny_net(registered):
    def build(pretrained=True, weights=None):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2))
        return HookExtractor(model, {"first": "1", "second": "2"}, name="test_plan_net", input_size=(32, 32),
                             mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))

    registered("test_plan_net", build)
    return "test_plan_net"


@pytest.mark.usefixtures("cache")
def test_a_run_that_sets_nothing_takes_the_recorded_plan_capped_by_its_cores():
    assert RECORDED_CPU_PLANS["efficientnet_lite0"] == ForwardPlan(1, 2)
    assert resolve_plan(RunConfig(), "efficientnet_lite0", CPU, cores=2) == ForwardPlan(1, 2)
    assert resolve_plan(RunConfig(), "efficientnet_lite0", CPU, cores=1) == ForwardPlan(1, 1)
    assert resolve_plan(RunConfig(), "an_extractor_never_measured", CPU, cores=8) == ForwardPlan(1, 1)


@pytest.mark.usefixtures("cache")
def test_settings_given_replace_the_plan_and_cuda_batches_as_the_loader_does():
    assert resolve_plan(RunConfig(forward_batch_size=8), "efficientnet_lite0", CPU, cores=2) == ForwardPlan(8, 1)
    assert resolve_plan(RunConfig(streams=3), "efficientnet_lite0", CPU, cores=2) == ForwardPlan(1, 3)
    assert resolve_plan(RunConfig(streams=1), "efficientnet_lite0", CPU, cores=2) == ForwardPlan(1, 1)
    assert resolve_plan(RunConfig(batch_size=32), "efficientnet_lite0", CUDA, cores=2) == ForwardPlan(32, 1)
    assert resolve_plan(RunConfig(forward_batch_size=4), "efficientnet_lite0", CUDA, cores=2) == ForwardPlan(4, 1)


def test_a_plan_measured_here_is_preferred_for_its_extractor_cores_and_torch(cache, caplog):
    key = plan_key("efficientnet_lite0", CPU, 2)
    path = save_plan(key, ForwardPlan(8, 1), [(ForwardPlan(1, 1), 10.0), (ForwardPlan(8, 1), 20.0)])
    assert path == cache / "plans.json"
    assert json.loads(path.read_text())[key]["images_per_second"] == {"one image at a time": 10.0, "forward batches of 8": 20.0}
    assert resolve_plan(RunConfig(), "efficientnet_lite0", CPU, cores=2) == ForwardPlan(8, 1)
    assert resolve_plan(RunConfig(), "efficientnet_lite0", CPU, cores=4) == ForwardPlan(1, 2)  # measured elsewhere
    path.write_text("{not json")
    assert resolve_plan(RunConfig(), "efficientnet_lite0", CPU, cores=2) == ForwardPlan(1, 2)
    assert "not a file of measured plans" in caplog.text


@pytest.mark.usefixtures("cache")
def test_measured_plans_time_whole_runs_of_each_candidate_on_random_arrays_or_real_images(tiny_net, data_dir):
    candidates = [ForwardPlan(1), ForwardPlan(3), ForwardPlan(1, 2)]
    processor = VDNAProcessor()
    for source in (None, data_dir / "set14"):
        timings = processor.measure_plans(tiny_net, source, images=4, candidates=candidates, num_workers=0)
        assert [plan for plan, _ in timings] == candidates and all(speed > 0 for _, speed in timings)


def test_a_plan_is_timed_by_what_a_longer_run_adds_so_what_every_run_spends_once_cancels_out(tiny_net, monkeypatch):
    processor, runs = VDNAProcessor(), []
    clock = iter(np.arange(0.0, 100.0, 0.5))
    monkeypatch.setattr("vdna.processor.time.perf_counter", lambda: next(clock))

    def run(source, config):  # each image costs 0.5 s on the clock; the clock's own reading adds 0.5 s to every run
        runs.append(config.num_images)
        for _ in range(config.num_images):
            next(clock)
        return [type("Made", (), {"num_images": config.num_images})()]

    monkeypatch.setattr(processor, "run", run)
    (plan, speed), = processor.measure_plans(tiny_net, images=12, candidates=[ForwardPlan(4)])
    assert plan == ForwardPlan(4) and runs == [4, 6, 12] and speed == pytest.approx(6 / 3.0)  # 12 - 6 images in 6.5 - 3.5 s
    with pytest.raises(ValueError, match="images must be at least 2, got 1"):
        processor.measure_plans(tiny_net, images=1)


def test_vdna_plan_prints_the_timings_and_save_keeps_the_fastest_for_later_runs(tiny_net, cache, capsys):
    assert main(["plan", "--extractor", tiny_net, "--images", "4", "--save"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"plans of {tiny_net} on the CPU with ") and "img/s   fastest" in out
    assert "recorded plan: one image at a time" in out
    saved = json.loads((cache / "plans.json").read_text())
    (key, entry), = saved.items()
    assert key.startswith(f"{tiny_net} on cpu with ") and len(entry["images_per_second"]) >= 4
    fastest = max(entry["images_per_second"], key=entry["images_per_second"].get)
    assert str(ForwardPlan(**entry["plan"])) == fastest and f"now use {fastest}" in out


@pytest.mark.usefixtures("cache")
def test_a_run_says_its_plan_and_records_it(tiny_net, capsys):
    images = list(np.random.default_rng(0).integers(0, 256, (5, 40, 40, 3), dtype=np.uint8))
    processor = VDNAProcessor()
    for options, plan in (({}, ForwardPlan(1, 1)), ({"forward_batch_size": 2}, ForwardPlan(2, 1)),
                          ({"streams": 2}, ForwardPlan(1, 2))):
        dna = processor.make_vdna(images, feat_extractor_name=tiny_net, distribution_name="gaussian", num_workers=0,
                                  verbose=True, **options)
        settings = dna.provenance.extraction_settings
        assert (settings["forward_batch_size"], settings["streams"]) == (plan.forward_batch_size, plan.streams)
        assert f"DNA gaussian ({plan})" in capsys.readouterr().err
