"""DNAs inside training loops: the torchmetrics metrics against make_vdna, across processes, and their errors."""

from __future__ import annotations

import importlib
import os
import pickle
import re
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import assert_same_dna
from metric_ranks import DISTRIBUTIONS, as_batch, real_photo

import vdna
from vdna import EMD, NFD, load_vdna_from_files
from vdna.distances import get_distance
from vdna.distributions import VDNAHist

pytest.importorskip("torchmetrics")
from vdna.distributions.state import Moments
from vdna.metrics import DNADistance, DNAMetric

DISTRIBUTIONS_MADE = ("histogram-1000", "gaussian", "layer-gaussian", "activation-ranges", "image-histogram-1000", "image-mean")


@pytest.fixture(scope="module")
def photo_paths(data_dir) -> list[Path]:
    return sorted((data_dir / "set14").iterdir())[:6]


@pytest.fixture(scope="module")
def photos(photo_paths) -> list[np.ndarray]:
    """Six real photographs cropped to one size (96 x 128), so that any split of them is a batch."""
    return [real_photo(path) for path in photo_paths]


def _one_thread_dnas(processor, arrays, distributions=DISTRIBUTIONS_MADE):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return processor.make_vdnas(arrays, list(distributions), num_workers=0, verbose=False)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def whole(processor, photos):
    """make_vdna of the six photographs (one torch thread), for every distribution the metric makes."""
    return _one_thread_dnas(processor, photos)


@pytest.fixture(scope="module")
def halves(processor, photos):
    """make_vdna of the first three photographs and of the last three."""
    return [_one_thread_dnas(processor, part, ("histogram-1000", "gaussian")) for part in (photos[:3], photos[3:])]


def _fed(metric: DNAMetric, batch: torch.Tensor, sizes: tuple[int, ...]):
    start = 0
    for size in sizes:
        metric.update(batch[start : start + size])
        start += size
    return metric.compute()


# -- the DNA of the images seen, whatever the batches -----------------------------------------------------
@pytest.mark.parametrize("sizes", [(1, 5), (3, 3), (6,)])
def test_histogram_equals_make_vdna_whatever_the_batches(sizes, photos, whole, one_torch_thread):
    made = _fed(DNAMetric(), as_batch(photos), sizes)
    assert_same_dna(made, whole["histogram-1000"])
    assert made.provenance.extraction_settings["backend"] == "metric"
    assert made.provenance.extraction_settings["torch_threads"] == 1


def test_float_images_equal_make_vdna_of_the_same_float_arrays(processor, photos, one_torch_thread):
    scaled = [photo.astype(np.float32) / np.float32(255) for photo in photos[:3]]
    expected = _one_thread_dnas(processor, scaled, ["histogram-1000"])["histogram-1000"]
    batch = as_batch(scaled).double()  # float64 holding the float32 values exactly
    assert_same_dna(_fed(DNAMetric(), batch, (1, 2)), expected)


@pytest.mark.parametrize(
    ("distribution", "sizes", "exact"),
    [("gaussian", (1, 5), False), ("layer-gaussian", (3, 3), False), ("activation-ranges", (2, 4), True),
     ("image-histogram-1000", (1, 5), True), ("image-mean", (3, 3), True)],
)
def test_every_distribution_equals_make_vdna(distribution, sizes, exact, photos, whole, one_torch_thread):
    made = _fed(DNAMetric(distribution_name=distribution), as_batch(photos), sizes)
    assert_same_dna(made, whole[distribution], exact=exact)


def test_histograms_with_ranges_of_ones_own_equal_make_vdna_with_them(processor, photos, whole, one_torch_thread):
    ranges = whole["activation-ranges"]  # the minima and maxima of the six photographs
    expected = processor.make_vdna(photos[:3], activation_ranges=ranges, num_workers=0, verbose=False)
    made = _fed(DNAMetric(activation_ranges=ranges), as_batch(photos[:3]), (3,))
    assert made.provenance.ranges_sha256 != whole["histogram-1000"].provenance.ranges_sha256
    assert_same_dna(made, expected)
    with pytest.raises(ValueError, match="activation ranges differ"):
        DNADistance(whole["histogram-1000"], activation_ranges=ranges)


def test_images_of_different_sizes_in_different_batches(processor, photo_paths, one_torch_thread):
    small = [real_photo(path, 72, 100) for path in photo_paths[:2]]
    large = [real_photo(path, 240, 300) for path in photo_paths[2:4]]  # downsampled, the others upsampled
    expected = _one_thread_dnas(processor, small + large, ["histogram-1000"])["histogram-1000"]
    metric = DNAMetric()
    metric.update(as_batch(small))
    metric.update(as_batch(large))
    assert_same_dna(metric.compute(), expected)


def test_the_network_runs_in_float32_inside_an_autocast_region(photos, halves, one_torch_thread):
    metric = DNAMetric()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as in a training loop with mixed precision
        metric.update(as_batch(photos[:3]))
    assert_same_dna(metric.compute(), halves[0]["histogram-1000"])


@pytest.mark.parametrize(
    ("setting", "value", "shown"),
    [
        ("precision", "bfloat16", "precision ('float32' vs 'bfloat16')"),
        ("distribution_name", "histogram-100", "distribution_name ('histogram-1000' vs 'histogram-100')"),
        ("activation_ranges", "theirs", "ranges_sha256 ("),
    ],
)
def test_metrics_of_other_settings_do_not_merge(setting, value, shown, whole):
    theirs = whole["activation-ranges"] if value == "theirs" else value
    with pytest.raises(ValueError, match=re.escape(f"cannot merge the states of metrics made with other settings: {shown}")):
        DNAMetric().merge_state(DNAMetric(**{setting: theirs}))


def test_compute_after_a_merge_reflects_the_merge(photos, whole, one_torch_thread):
    batch = as_batch(photos)
    first, second = DNAMetric(), DNAMetric()
    first.update(batch[:3])
    second.update(batch[3:])
    assert first.compute().num_images == 3
    first.merge_state(second)
    assert_same_dna(first.compute(), whole["histogram-1000"])


def test_forward_batch_size_runs_that_many_images_at_once_as_make_vdna_does(processor, photos, one_torch_thread):
    expected = processor.make_vdna(photos, forward_batch_size=3, num_workers=0, verbose=False)
    assert_same_dna(_fed(DNAMetric(forward_batch_size=3), as_batch(photos), (6,)), expected)


def test_forward_gives_the_batch_dna_and_keeps_adding(photos, whole, one_torch_thread):
    metric = DNAMetric(distribution_name="gaussian")
    batch = as_batch(photos)
    first = metric(batch[:3])
    assert first.num_images == 3
    assert metric(batch[3:]).num_images == 3
    metric.half()
    metric.to(torch.float16)  # the states are exact sums: they keep their dtypes
    assert_same_dna(metric.compute(), whole["gaussian"], exact=False)
    copy = pickle.loads(pickle.dumps(metric))
    assert copy.extractor is metric.extractor  # rebuilt from its name: this process's shared extractor
    assert_same_dna(copy.compute(), whole["gaussian"], exact=False)


@pytest.mark.parametrize("full", [False, True])
def test_packed_moments_of_parts_merge_into_those_of_the_whole(full):
    """The reduction across processes: rows [count, mean, m2] of parts (one empty) against numpy on the whole."""
    samples = np.random.default_rng(5).normal(3.0, 2.0, size=(10, 4))

    def packed(part: np.ndarray) -> torch.Tensor:
        if len(part) == 0:
            return torch.zeros(1 + 4 + (16 if full else 4), dtype=torch.float64)
        centred = part - part.mean(axis=0)
        m2 = centred.T @ centred if full else (centred**2).sum(axis=0)
        return torch.from_numpy(np.concatenate([[len(part)], part.mean(axis=0), m2.ravel()]))

    stacked = torch.stack([packed(samples[:3]), packed(samples[3:3]), packed(samples[3:])])
    merged = Moments(4, full).across_processes(stacked)
    torch.testing.assert_close(merged, packed(samples), rtol=1e-14, atol=1e-13)
    assert merged[0] == 10


# -- across processes ---------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_processes_give_the_dna_of_all_their_images(photo_paths, whole, tmp_path):
    """Two processes (gloo, CPU), each with half the images, both get the DNA of all of them after sync."""
    env = {
        **os.environ, "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
        "PYTHONPATH": os.pathsep.join([str(Path(vdna.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
    }
    worker = Path(__file__).with_name("metric_ranks.py")
    command = [sys.executable, str(worker), str(tmp_path / "dna"), *map(str, photo_paths)]
    ranks = [subprocess.Popen(command, env={**env, "RANK": str(rank)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for rank in range(2)]
    outputs = [rank.communicate(timeout=300) for rank in ranks]
    for rank, (out, err) in zip(ranks, outputs):
        assert rank.returncode == 0, err[-3000:]
        print(out, end="")
    for name in DISTRIBUTIONS:
        for rank in range(2):
            synced = load_vdna_from_files(tmp_path / f"dna-{name}-rank{rank}")
            assert_same_dna(synced, whole[name], exact=name.startswith("histogram"))
            if name.startswith("histogram"):
                total = sum(int(synced.data[layer].sum()) for layer in synced.neurons_list)
                print(f"rank {rank}: {name}: every count equal to make_vdna's of the 6 images ({total} counts)")
            else:
                gap = max(float((synced.data[layer][key] - whole[name].data[layer][key]).abs().max())
                          for layer in synced.neurons_list for key in ("mu", "var"))
                print(f"rank {rank}: {name}: largest difference from make_vdna's mean or variance {gap:.3g}")


# -- distances to a reference -----------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric DNADistance was called before the ``update``")
def test_distance_equals_emd_to_the_reference_and_reset_keeps_it(photos, whole, halves, tmp_path, one_torch_thread):
    whole["histogram-1000"].save(tmp_path / "reference")
    metric = DNADistance(str(tmp_path / "reference"))
    batch = as_batch(photos)
    metric.update(batch[:3])
    first = metric.compute()
    assert first.dtype == torch.float64 and first.ndim == 0
    assert torch.equal(first, EMD(halves[0]["histogram-1000"], whole["histogram-1000"]))
    assert first > 0
    metric.reset()
    with pytest.raises(ValueError, match="has no images: call update"):
        metric.compute()
    metric.update(batch[3:])
    assert torch.equal(metric.compute(), EMD(halves[1]["histogram-1000"], whole["histogram-1000"]))
    assert metric.reference.num_images == 6 and metric.higher_is_better is False


def test_nfd_on_chosen_neurons(photos, whole, halves, one_torch_thread):
    neurons = {"head": [0, 7, 99], "blocks.3.0": None}
    metric = DNADistance(whole["gaussian"], metric="nfd", neurons=neurons)
    metric.update(as_batch(photos[:3]))
    expected = NFD(halves[0]["gaussian"], whole["gaussian"], neurons=neurons)
    torch.testing.assert_close(metric.compute(), expected, rtol=1e-10, atol=0)


def test_a_metric_of_embeddings_takes_the_reference_as_the_real_set(photos, whole, one_torch_thread):
    reference = whole["image-mean"]
    precision = DNADistance(reference, metric="precision")
    precision.update(as_batch(photos))
    assert precision.higher_is_better is True and precision.compute().item() == 1.0  # the same six images
    kid = DNADistance(reference, metric="kid", neurons={"head": None})
    kid.update(as_batch(photos[:3]))
    expected = get_distance("kid").compare(reference, reference.select_images([0, 1, 2]), neurons={"head": None})
    assert kid.higher_is_better is False
    torch.testing.assert_close(kid.compute(), expected, rtol=1e-10, atol=0)


# -- what the metric is as a module ------------------------------------------------------------------------
def test_the_extractor_is_frozen_outside_the_module_tree():
    metric = DNAMetric()
    assert list(metric.parameters()) == [] and metric.state_dict() == {}
    metric.train()
    assert not metric.extractor.training
    assert metric.clone().extractor is metric.extractor
    assert metric.to("cpu").extractor is metric.extractor
    metric.persistent(True)
    assert metric.state_dict()["counts_0"].dtype == torch.int64
    assert metric.higher_is_better is None
    assert not metric.is_differentiable and not metric.full_state_update


# -- errors --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("images", "error", "match"),
    [
        ([[0.5]], TypeError, r"must be a torch.Tensor of shape \(N, 3, H, W\), got list"),
        (torch.zeros(3, 32, 32, dtype=torch.uint8), ValueError, r"got shape \(3, 32, 32\); for one image .* images\[None\]"),
        (torch.zeros(2, 4, 32, 32, dtype=torch.uint8), ValueError, r"3 \(RGB\) channels .* got shape \(2, 4, 32, 32\)"),
        (torch.zeros(2, 32, 32, 3, dtype=torch.uint8), ValueError, r"channels-last batches: images.permute\(0, 3, 1, 2\)"),
        (torch.zeros(2, 3, 0, 32, dtype=torch.uint8), ValueError, r"images have no pixels: shape \(2, 3, 0, 32\)"),
        (torch.zeros(2, 3, 32, 32, dtype=torch.int32), TypeError, r"uint8 \(0..255\) or float in \[0, 1\], got dtype torch.int32"),
        (torch.zeros(2, 3, 32, 32, dtype=torch.bool), TypeError, r"got dtype torch.bool"),
        (torch.full((2, 3, 32, 32), 1.5), ValueError, r"must lie in \[0, 1\] .* found values in \[1.5, 1.5\]"),
        (torch.linspace(-0.25, 1, 2 * 3 * 32 * 32).reshape(2, 3, 32, 32), ValueError, r"found values in \[-0.25, 1\]"),
        (torch.full((2, 3, 32, 32), float("nan")), ValueError, r"contain NaN or infinite values"),
        (torch.full((1, 3, 32, 32), 255.0), ValueError, r"\(or be uint8 in 0..255\), found values in \[255, 255\]"),
    ],
)
def test_bad_batches_are_refused_and_change_nothing(images, error, match):
    metric = DNAMetric(distribution_name="activation-ranges")  # the checks are the same for every distribution
    with pytest.raises(error, match=match):
        metric.update(images)
    with pytest.raises(ValueError, match="DNAMetric has no images: call update"):
        metric.compute()


def test_an_update_that_fails_part_way_makes_compute_refuse_until_reset(photos, monkeypatch, one_torch_thread):
    metric = DNAMetric()
    network = metric.extractor.forward
    calls = []

    def nan_for_the_second_image(images):
        activations = network(images)
        calls.append(len(images))
        if len(calls) == 2:
            activations["head"] = torch.full_like(activations["head"], float("nan"))
        return activations

    monkeypatch.setattr(metric.extractor, "forward", nan_for_the_second_image)
    with pytest.raises(ValueError, match=r"layer 'head': the extractor produced \d+ NaN activation"):
        metric.update(as_batch(photos[:2]))
    with pytest.raises(RuntimeError, match=r"an update failed part way through a batch, so .* reset\(\) the metric"):
        metric.compute()
    monkeypatch.undo()
    metric.reset()
    metric.update(as_batch(photos[:1]))
    assert metric.compute().num_images == 1


def test_an_empty_batch_adds_nothing():
    metric = DNAMetric(distribution_name="gaussian")
    metric.update(torch.zeros(0, 3, 32, 32))
    with pytest.raises(ValueError, match="no images"):
        metric.compute()


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"streams": 2}, ValueError, r"takes images from update\(\): streams describe reading a source of files"),
        ({"num_images": 3, "checkpoint": "c"}, ValueError, r"num_images, checkpoint describe reading a source"),
        ({"distribution_name": "histogram"}, ValueError, "unknown distribution 'histogram'"),
        ({"precision": "float64"}, ValueError, "precision must be one of"),
        ({"forward_batch_size": 0}, ValueError, "forward_batch_size must be a positive integer"),
        ({"feat_extractor_name": "no_such_net"}, ValueError, "no_such_net"),
    ],
)
def test_bad_options_are_refused(options, error, match):
    with pytest.raises(error, match=match):
        DNAMetric(**options)


def _claiming(dna, **changes):
    """The DNA with other metadata: another extractor's name, other bins, other ranges."""
    provenance = replace(dna.provenance, **changes.pop("provenance", {}))
    fields = {"name": dna.name, "feature_extractor_name": dna.feature_extractor_name, **changes}
    return type(dna)(fields["name"], fields["feature_extractor_name"], dna.neurons_list, fields.get("data", dna.data),
                     dna.num_images, provenance)


def test_references_that_do_not_match_are_refused(whole, tmp_path):
    hist = whole["histogram-1000"]
    other_net = _claiming(hist, feature_extractor_name="timm:resnet18")
    with pytest.raises(ValueError, match=r"does not match .* feature extractors differ \('efficientnet_lite0' vs 'timm:resnet18'\)"):
        DNADistance(other_net, feat_extractor_name="efficientnet_lite0")
    fewer_bins = VDNAHist.create({"bins": 500}, hist.feature_extractor_name, hist.neurons_list,
                                 {layer: counts[:, ::2] + counts[:, 1::2] for layer, counts in hist.data.items()},
                                 hist.num_images, hist.provenance)
    with pytest.raises(ValueError, match=r"distributions differ \('histogram-1000' vs 'histogram-500'\)"):
        DNADistance(fewer_bins, distribution_name="histogram-1000")
    other_ranges = _claiming(hist, provenance={"ranges_sha256": "0" * 64})
    with pytest.raises(ValueError, match=r"activation ranges differ"):
        DNADistance(other_ranges)
    with pytest.raises(ValueError, match=r"metric='emd' compares histogram DNAs; the reference DNA is gaussian"):
        DNADistance(whole["gaussian"])
    with pytest.raises(ValueError, match=r"unknown distance 'fid'; valid: .*emd, fd, .*nfd"):
        DNADistance(hist, metric="fid")
    with pytest.raises(ValueError, match=r"fd compares whole layers: neurons= may only name layers"):
        DNADistance(whole["layer-gaussian"], metric="fd", neurons={"head": [0]})
    with pytest.raises(ValueError, match=r"neuron indices for layer 'head' must lie in \[0, 1280\)"):
        DNADistance(hist, neurons={"head": [1280]})
    with pytest.raises(ValueError, match=r"weights must be one value per compared neuron, shape \(3120,\), got \(3,\)"):
        DNADistance(hist, neuron_weights=torch.ones(3))
    with pytest.raises(TypeError, match=r"weights= is ambiguous here: give neuron_weights= .* or extractor_weights="):
        DNADistance(hist, weights=torch.ones(3120))
    with pytest.raises(TypeError, match="reference must be a VDNA or the path of a saved DNA, got int"):
        DNADistance(3)
    with pytest.raises(FileNotFoundError, match="missing"):
        DNADistance(tmp_path / "missing")


def test_without_torchmetrics_the_import_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchmetrics", None)
    monkeypatch.delitem(sys.modules, "vdna.metrics")
    with pytest.raises(ImportError, match=r'pip install "vdna\[metrics\]"'):
        importlib.import_module("vdna.metrics")
