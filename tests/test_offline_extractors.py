"""The extractors that work offline for every distribution: their weights and activation ranges ship with the package."""

from __future__ import annotations

import copy

import numpy as np
import torch
from conftest import image_files
from PIL import Image

from vdna import EMD, VDNAProcessor, create_extractor
from vdna.ranges import load_activation_ranges


def test_rand_resnet50_ships_ranges_that_cover_real_images(data_dir):
    extractor = create_extractor("rand_resnet50", device="cpu")
    ranges = extractor.info.ranges
    assert ranges is not None and ranges.extractor == "rand_resnet50" and ranges.num_images == 1519
    assert dict(ranges.neurons_list) == dict(extractor.info.layers) and sum(ranges.neurons_list.values()) == 15104
    images = [np.asarray(Image.open(path).convert("RGB")) for path in image_files(data_dir / "set14", 2)]
    processor = VDNAProcessor()
    dnas = processor.make_vdnas(images, ["histogram-100", "gaussian", "activation-ranges"],
                                feat_extractor_name="rand_resnet50", verbose=False, num_workers=0)
    histogram, extremes = dnas["histogram-100"], dnas["activation-ranges"]
    assert histogram.provenance.ranges_sha256 == ranges.digest
    assert float(EMD(histogram, histogram)) == 0.0
    for layer in ranges.neurons_list:  # set14 is one of the sets the ranges were computed on
        assert np.all(extremes.data[layer]["min"].numpy() >= ranges.minimum[layer])
        assert np.all(extremes.data[layer]["max"].numpy() <= ranges.maximum[layer])
    assert int(histogram.data["layer1_0"].sum()) == 2 * 256 * 56 * 56


def test_shipped_ranges_load_under_their_extractor_name():
    from importlib import resources

    for name in ("efficientnet_lite0", "rand_resnet50"):
        with resources.as_file(resources.files("vdna.extractors").joinpath("data", f"{name}.ranges.json")) as path:
            assert load_activation_ranges(path, name).margin == 0.2


def test_a_copy_of_an_extractor_captures_its_own_activations(processor):
    extractor = processor.get_extractor(device="cpu")
    twin = copy.deepcopy(extractor)
    images = torch.rand((2, 3, *extractor.info.input_size), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ours, theirs = extractor(images), twin(images)
        twin.model.conv_stem.weight.mul_(2)  # the copy has weights of its own
        changed = twin(images)
    assert list(theirs) == list(extractor.info.layers)
    assert all(torch.equal(ours[layer], theirs[layer]) for layer in ours)
    assert not torch.equal(changed["stem"], ours["stem"]) and torch.equal(extractor(images)["stem"], ours["stem"])
