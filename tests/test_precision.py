"""Optional autocast, torch.compile and channels-last images: off by default, close to float32 results, recorded."""

from __future__ import annotations

import pytest
import torch

from vdna import NFD
from vdna.cli import build_parser, run_config
from vdna.extractors import HookExtractor


class _Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.first = torch.nn.Conv2d(3, 8, 3, stride=2)
        self.second = torch.nn.Conv2d(8, 16, 3, stride=2)

    def forward(self, x):
        return self.second(torch.relu(self.first(x)))


def _tiny(pretrained=True, weights=None):
    return HookExtractor(_Tiny(), {"first": "first", "second": "second"}, name="test_tiny_net",
                         input_size=(48, 48), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


@pytest.fixture(scope="module")
def tiny_net(registered_in_module):
    """``test_tiny_net``, registered while this module's tests run."""
    registered_in_module("test_tiny_net", _tiny)


@pytest.fixture(scope="module")
def photos(skimage_photos):
    return list(skimage_photos.values())


def make(processor, photos, **options):
    return processor.make_vdna(photos, feat_extractor_name="test_tiny_net", distribution_name="gaussian",
                               verbose=False, num_workers=0, **options)


@pytest.mark.usefixtures("tiny_net")
def test_bfloat16_autocast_is_close_and_recorded(processor, photos):
    reference = make(processor, photos)
    half = make(processor, photos, precision="bfloat16")
    assert reference.provenance.extraction_settings["precision"] == "float32"
    assert half.provenance.extraction_settings["precision"] == "bfloat16"
    assert not torch.equal(half.data["second"]["mu"], reference.data["second"]["mu"])
    torch.testing.assert_close(half.data["second"]["mu"], reference.data["second"]["mu"], rtol=0.05, atol=0.02)
    assert NFD(half, reference).item() < 1e-3


@pytest.mark.slow
@pytest.mark.usefixtures("tiny_net")
def test_compiled_network_gives_the_same_dna_to_rounding(processor, photos):
    reference = make(processor, photos)
    compiled = make(processor, photos, compile=True)
    assert compiled.provenance.extraction_settings["compile"] is True
    for layer in reference.neurons_list:
        torch.testing.assert_close(compiled.data[layer]["mu"], reference.data[layer]["mu"], rtol=1e-4, atol=1e-5)


@pytest.mark.usefixtures("tiny_net")
def test_unknown_precision(processor, photos):
    with pytest.raises(ValueError, match=r"precision must be one of \('float32', 'bfloat16', 'float16'\), got 'int8'"):
        make(processor, photos, precision="int8")


@pytest.mark.usefixtures("tiny_net")
def test_channels_last_inputs_give_the_same_dna_to_rounding_and_are_recorded(processor, photos, tmp_path):
    reference = make(processor, photos)
    channels_last = make(processor, photos, channels_last=True)
    assert channels_last.provenance.extraction_settings["channels_last"] is True
    assert reference.provenance.extraction_settings["channels_last"] is False
    for layer in reference.neurons_list:
        torch.testing.assert_close(channels_last.data[layer]["mu"], reference.data[layer]["mu"], rtol=1e-5, atol=1e-6)
    args = build_parser().parse_args(["make", "folder", "-o", "out", "--channels-last"])
    assert run_config(args).channels_last is True
