"""What every registered distribution and every registered distance promises, checked for each of them.

A new distribution or distance is held to these contracts by registering it: merging parts equals
one pass, files and checkpoints give back exactly what was saved, training-loop metric states
merge as accumulators do, and resampling per-image DNAs reproduces the distance of the sets.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from helpers import assert_same_dna

from vdna import load_vdna_from_files
from vdna.distances import get_distance, list_distances
from vdna.distances._registry import BUILTIN_DISTANCES
from vdna.distributions import dna_class_for_type, list_distributions, parse_distribution
from vdna.distributions.histogram import BinnedDNA
from vdna.extractors import HookExtractor
from vdna.ranges import ActivationRanges
from vdna.stats import compare_sets, resampled_distances

LAYERS = {"early": 3, "late": 5}
POSITIONS = {"early": 6, "late": 2}
BINS = 16


def distribution_name(dna_type: str) -> str:
    """A distribution of each registered type: ``<type>-16`` for histograms, the type itself otherwise."""
    return f"{dna_type}-{BINS}" if issubclass(dna_class_for_type(dna_type), BinnedDNA) else dna_type


DISTRIBUTIONS = [distribution_name(kind) for kind in list_distributions()]
RANGES = ActivationRanges(
    "test_contract_net",
    minimum={layer: np.full(n, -2.0, np.float32) for layer, n in LAYERS.items()},
    maximum={layer: np.full(n, 2.0, np.float32) for layer, n in LAYERS.items()},
)


def batches(seed: int, sizes: tuple[int, ...] = (2, 1, 3, 2)) -> list[dict[str, torch.Tensor]]:
    """Activations ``{layer: (images, neurons, positions)}`` of a few batches; some reach past the ranges."""
    generator = torch.Generator().manual_seed(seed)
    return [
        {layer: 1.5 * torch.randn(size, n, POSITIONS[layer], generator=generator) for layer, n in LAYERS.items()}
        for size in sizes
    ]


def accumulator(distribution: str):
    dna_class, parameters = parse_distribution(distribution)
    return dna_class.accumulator(parameters, LAYERS, RANGES if dna_class.needs_ranges else None, torch.device("cpu"))


def fed(distribution: str, parts):
    made = accumulator(distribution)
    for part in parts:
        made.update(part)
    return made


# -- distributions -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_merged_parts_equal_one_pass(distribution):
    parts = batches(1)
    whole = fed(distribution, parts).result("test_contract_net")
    first, second = fed(distribution, parts[:2]), fed(distribution, parts[2:])
    first.merge(second)
    dna_class = parse_distribution(distribution)[0]
    merged = first.result("test_contract_net")
    assert merged.num_images == 8
    assert_same_dna(merged, whole, exact=dna_class.exact_merge or dna_class.type.startswith("image-"))


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_parts_taken_image_by_image_and_merged_in_order_equal_one_pass_bit_for_bit(distribution):
    images = batches(4, sizes=(1,) * 6)  # what streams do: each image's part taken, merged in the images' order
    whole = fed(distribution, images).result("test_contract_net")
    stream, merged = accumulator(distribution), accumulator(distribution)
    for image in images:
        stream.update(image)
        merged.merge(stream.take())
        assert stream.num_images == 0
    assert_same_dna(merged.result("test_contract_net"), whole)


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_accumulators_of_other_settings_do_not_merge(distribution):
    first = accumulator(distribution)
    dna_class, parameters = parse_distribution(distribution)
    other_layers = dna_class.accumulator(parameters, {"early": 3}, RANGES if dna_class.needs_ranges else None, torch.device("cpu"))
    with pytest.raises(ValueError, match="only accumulators of the same distribution and layers can merge"):
        first.merge(other_layers)


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_saved_and_loaded_dnas_are_the_same(distribution, tmp_path):
    made = fed(distribution, batches(2)).result("test_contract_net")
    made.save(tmp_path / "dna")
    assert_same_dna(load_vdna_from_files(tmp_path / "dna"), made)


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_a_resumed_state_continues_to_the_one_pass_dna_bit_for_bit(distribution):
    parts = batches(3)
    whole = fed(distribution, parts).result("test_contract_net")
    stopped = fed(distribution, parts[:2])
    buffer = io.BytesIO()
    np.savez(buffer, **{key: tensor.numpy() for key, tensor in stopped.state_tensors().items()})
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as arrays:
        saved = {key: torch.from_numpy(arrays[key]) for key in arrays.files}
    resumed = accumulator(distribution)
    resumed.load_state_tensors(saved, stopped.num_images)
    for part in parts[2:]:
        resumed.update(part)
    assert_same_dna(resumed.result("test_contract_net"), whole)


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_a_saved_state_of_other_layers_is_refused(distribution):
    stopped = fed(distribution, batches(3)[:1])
    tensors = {key: value for key, value in stopped.state_tensors().items() if not key.endswith("_1")}
    with pytest.raises(ValueError, match="a saved state must hold"):
        accumulator(distribution).load_state_tensors(tensors, 1)


class _Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.early = torch.nn.Conv2d(3, 3, 3, stride=2)
        self.late = torch.nn.Conv2d(3, 5, 3, stride=4)

    def forward(self, x):
        return self.late(torch.tanh(self.early(x)))


def _tiny(pretrained=True, weights=None):
    return HookExtractor(_Tiny(), {"early": "early", "late": "late"}, name="test_contract_net", input_size=(24, 24),
                         mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


@pytest.fixture(scope="module")
def contract_net(registered_in_module):
    registered_in_module("test_contract_net", _tiny)


@pytest.mark.usefixtures("contract_net")
@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_metric_states_merge_as_the_accumulators_do(distribution, skimage_photos, one_torch_thread):
    pytest.importorskip("torchmetrics")
    from vdna.metrics import DNAMetric

    images = torch.stack([torch.from_numpy(photo[:64, :64]).permute(2, 0, 1) for photo in list(skimage_photos.values())[:4]])
    options = {"feat_extractor_name": "test_contract_net", "distribution_name": distribution, "activation_ranges": RANGES}
    whole, first, second = DNAMetric(**options), DNAMetric(**options), DNAMetric(**options)
    whole.update(images)
    first.update(images[:3])
    second.update(images[3:])
    first.merge_state(second)
    dna_class = parse_distribution(distribution)[0]
    assert_same_dna(first.compute(), whole.compute(), exact=dna_class.exact_merge or dna_class.type.startswith("image-"))


# -- distances -----------------------------------------------------------------------------------------------
DISTANCES = list_distances()


# Identical sets are at distance 0, except for these (the value they give instead, or None where it is an estimate
# of 0 rather than 0: KID's unbiased estimator, FD-infinity's extrapolation); higher-is-closer shares give 1.
IDENTICAL = {"kid": None, "fd-infinity": None, "precision": 1.0, "recall": 1.0, "density": 1.0, "coverage": 1.0}


def per_image(name: str, seed: int, sizes=(3, 4)):
    distance = get_distance(name)
    return fed(distance.per_image_distribution(BINS), batches(seed, sizes)).result("test_contract_net")


def test_every_built_in_distance_is_listed_and_registered():
    assert set(BUILTIN_DISTANCES) <= set(DISTANCES) and DISTANCES == sorted(DISTANCES)
    assert all(module == f"vdna.distances.{name.replace('-', '_')}_distance" for name, module in BUILTIN_DISTANCES.items())
    assert [get_distance(name).name for name in DISTANCES] == DISTANCES
    with pytest.raises(ValueError, match=r"unknown distance 'fid'; valid: .*emd, fd, fd-infinity, .*mmd-rbf, nfd"):
        get_distance("fid")


@pytest.mark.parametrize("name", DISTANCES)
def test_a_record_names_dnas_that_fit_together(name):
    distance = get_distance(name)
    assert parse_distribution(distance.distribution(BINS))[0].type in distance.set_types
    if distance.image_type is not None:
        assert parse_distribution(distance.per_image_distribution(BINS))[0].type == distance.image_type
        images = per_image(name, 4)
        assert distance.resamples(images) and distance.set_of(images).type in distance.set_types
        assert distance.set_dna(images).num_images == 7
    assert distance.unit in ("neuron", "layer") and distance.interval in ("squared", "basic", "percentile")


@pytest.mark.parametrize("name", DISTANCES)
def test_identical_sets_are_at_distance_zero(name):
    distance = get_distance(name)
    whole = distance.set_dna(per_image(name, 5))
    if IDENTICAL.get(name, 0.0) is not None:
        assert float(distance.compare(whole, whole)) == IDENTICAL.get(name, 0.0)


@pytest.mark.parametrize("name", DISTANCES)
def test_resampling_every_image_once_reproduces_the_distance_of_the_sets(name):
    distance = get_distance(name)
    a, b = per_image(name, 6, (3, 4)), per_image(name, 7, (3, 3))  # more than 5 images: 5 nearest neighbours
    first = np.concatenate([np.ones((a.num_images, 1)), np.zeros((b.num_images, 1))]).astype(np.int64)
    resampled = resampled_distances(a, b, first, 1 - first, metric=name)
    units = distance.unit_values(distance.set_dna(a), distance.set_dna(b))
    assert list(resampled) == list(units)
    for layer, values in units.items():
        np.testing.assert_allclose(resampled[layer][:, 0], values.numpy(), rtol=1e-7, atol=1e-12)  # FD: SVD against eigh
        if name == "emd":
            assert np.array_equal(resampled[layer][:, 0], values.numpy())  # the compiled sums are exact
    result = compare_sets(a, b, name, resamples=5, permutations=5)
    assert result.value == float(distance.compare(distance.set_dna(a), distance.set_dna(b)))
    assert result.interval == distance.interval and list(result.layers) == list(LAYERS)


def _mean_gap_per_neuron(a, b, neurons=None):
    from vdna.distances import select_neurons

    gaps = {}
    for layer, index in select_neurons(a, neurons=neurons):
        gap = (a.data[layer]["mu"] - b.data[layer]["mu"]).abs()
        gaps[layer] = gap if index is None else gap[index]
    return gaps


def _mean_gap(a, b, neurons=None, neuron_weights=None):
    gaps = torch.cat(list(_mean_gap_per_neuron(a, b, neurons).values()))
    return gaps.mean() if neuron_weights is None else (gaps * torch.as_tensor(neuron_weights)).sum()


@pytest.fixture()
def mean_gap():
    """The README's example of a distance registered in user code, registered for one test."""
    from vdna.distances import Distance, register_distance, unregister_distance

    register_distance(Distance(
        name="mean-gap", label="mean gap", description="gap between each neuron's mean activations, averaged",
        set_types=("gaussian",), set_distribution="gaussian", compare=_mean_gap, unit_values=_mean_gap_per_neuron,
        image_type="image-mean", image_distribution="image-mean",
        interval="squared",
    ))
    yield get_distance("mean-gap")
    unregister_distance("mean-gap")
    assert "mean-gap" not in list_distances()


def test_a_distance_registered_in_user_code_gets_statistics_by_making_each_resample(mean_gap):
    a, b = per_image("nfd", 8, (3, 3)), per_image("nfd", 9, (2, 3))
    assert "mean-gap" in list_distances() and mean_gap.resample is None
    expected = float((a.gaussian().data["late"]["mu"] - b.gaussian().data["late"]["mu"]).abs().mean())
    result = compare_sets(a, b, "mean-gap", resamples=4, permutations=6, seed=1, neurons={"late": None})
    assert result.value == pytest.approx(expected, rel=1e-12)
    first = np.zeros((11, 1), np.int64)
    first[0], first[2] = 2, 1  # image 0 twice and image 2: a bootstrap draw
    second = np.zeros((11, 1), np.int64)
    second[[6, 7, 10]] = 1
    by_hand = np.abs(a.gaussian([0, 0, 2]).data["early"]["mu"] - b.gaussian([0, 1, 4]).data["early"]["mu"]).numpy()
    np.testing.assert_allclose(resampled_distances(a, b, first, second, metric="mean-gap")["early"][:, 0], by_hand, rtol=1e-12)
    assert len(result.null) == 6 and len(result.bootstrap) == 4
    with pytest.raises(ValueError, match="'emd' is a built-in distance and cannot be unregistered"):
        from vdna.distances import unregister_distance

        unregister_distance("emd")
