"""The extractor zoo: architectures and neuron counts of the paper's Table 4, weights resolved offline
through the cache and a faked download, checksums, and DNAs made with each extractor on real images."""

from __future__ import annotations

import gc
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
import torch
from conftest import image_files

from vdna import VDNAProcessor
from vdna.extractors import create_extractor, list_extractors
from vdna.extractors import weights as weights_module
from vdna.extractors.zoo import RANDOM_RESNET50_SHA256

RESNET50 = [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3
TABLE_4 = {
    "mugs_vit_base": ([768] * 13, (224, 224)),
    "mugs_vit_large": ([1024] * 25, (224, 224)),
    "dino_vit_base": ([768] * 13, (224, 224)),
    "clip_im_vit_b16": ([768] * 13, (224, 224)),
    "dino_resnet50": (RESNET50, (224, 224)),
    "rand_resnet50": (RESNET50, (224, 224)),
    "resnet50": (RESNET50, (224, 224)),
    "inception": ([64, 192, 768, 2048], (299, 299)),
    "vgg16": ([64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512], (224, 224)),
    "dinov2_vits14": ([384] * 13, (224, 224)),
    "dinov2_vitb14": ([768] * 13, (224, 224)),
    "dinov2_vitl14": ([1024] * 25, (224, 224)),
    "efficientnet_lite0": (None, (224, 224)),
}


# Networks with hundreds of millions of weights: seconds to build and gigabytes to hold, so their tests are slow.
LARGE = {"mugs_vit_large", "dinov2_vitl14"}


def names(chosen, slow) -> list:
    """``chosen`` extractor names, sorted, those in ``slow`` marked slow."""
    return [pytest.param(name, marks=pytest.mark.slow) if name in slow else name for name in sorted(chosen)]


@pytest.fixture(autouse=True)
def networks_freed():
    """Free each test's networks when it ends: their forward hooks hold them in reference cycles that Python's
    collector would otherwise keep, with their gigabytes of weights, until much later."""
    yield
    gc.collect()


def test_every_registered_extractor_is_in_the_table():
    assert set(list_extractors()) == set(TABLE_4)  # tests register test_* extractors only while they run


@pytest.mark.parametrize("name", names(TABLE_4, slow=LARGE))
def test_neurons_and_input_size_of_table_4(name):
    extractor = create_extractor(name, pretrained=name == "rand_resnet50", device="cpu")
    neurons, size = TABLE_4[name]
    if neurons is not None:
        assert list(extractor.info.layers.values()) == neurons
    assert extractor.info.input_size == size
    activations = extractor(torch.zeros(1, 3, *size))
    for layer, count in extractor.info.layers.items():
        assert activations[layer].ndim == 3 and activations[layer].shape[1] == count
    if name.startswith(("mugs", "dino_vit", "clip")):
        assert activations["block_0"].shape[2] == 197  # ViT tokens are positions: 14 x 14 patches + class token
        assert extractor.info.tokens and set(extractor.info.grids.values()) == {(14, 14)}
    if name.startswith("dinov2"):
        assert activations["block_0"].shape[2] == 257
        assert extractor.info.tokens and set(extractor.info.grids.values()) == {(16, 16)}
    if not extractor.info.tokens:  # maps: rows x columns are the positions
        assert all(rows * columns == activations[layer].shape[2] for layer, (rows, columns) in extractor.info.grids.items())
        assert list(extractor.info.grids) == list(extractor.info.layers)


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VDNA_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _fake_downloads(monkeypatch, files: Mapping[str, bytes | Path] | Callable[[str], bytes | Path | None]) -> list[str]:
    """Serve ``files`` (contents or local files, by Hub filename or URL, or a function of it) instead of the
    network; returns the requests."""
    requests = []
    lookup = files.get if isinstance(files, Mapping) else files

    def serve(remote, target):
        key = remote.url or remote.filename
        requests.append(key)
        content = lookup(key)
        if content is None:
            raise OSError("offline")
        if isinstance(content, Path):
            shutil.copyfile(content, target)
        else:
            target.write_bytes(content)

    monkeypatch.setitem(weights_module.DOWNLOAD, "hub", serve)
    monkeypatch.setitem(weights_module.DOWNLOAD, "url", serve)
    return requests


def _saved(state, tmp_path, name="w.pth") -> bytes:
    torch.save(state, tmp_path / name)
    return (tmp_path / name).read_bytes()


def _ranges_json(layers: Mapping[str, int], scale: float = 1.0) -> bytes:
    document = {
        "mins_per_neuron": {layer: {str(i): -scale for i in range(count)} for layer, count in layers.items()},
        "maxs_per_neuron": {layer: {str(i): scale for i in range(count)} for layer, count in layers.items()},
    }
    return json.dumps(document).encode()


@pytest.mark.slow
def test_mugs_weights_and_ranges_come_from_the_hub_once_then_from_the_cache(cache, monkeypatch, tmp_path):
    random_model = create_extractor("mugs_vit_base", pretrained=False)
    layers = random_model.info.layers
    state = {key: torch.randn_like(value) for key, value in random_model.model.state_dict().items()}
    del random_model
    gc.collect()  # its hooks hold it in a reference cycle
    torch.save({"state_dict": {**state, "relation_blocks.0.norm1.weight": torch.ones(768)}}, tmp_path / "w.pth")
    probe = state.pop("blocks.3.attn.qkv.weight")
    del state  # the checkpoint is read from its file; one of its tensors is kept to compare
    published = {"Mugs/mugs_vit_base/weights.pth": tmp_path / "w.pth"}
    ranges = _ranges_json(layers)
    requests = _fake_downloads(monkeypatch, lambda key: published[key].read_bytes() if key in published else ranges)
    extractor = create_extractor("mugs_vit_base")
    assert requests == ["Mugs/mugs_vit_base/weights.pth", "Mugs/mugs_vit_base/activation_ranges.json"]
    assert torch.equal(extractor.model.state_dict()["blocks.3.attn.qkv.weight"], probe)
    assert extractor.info.ranges is not None and extractor.info.ranges.neurons_list == layers
    assert (cache / "Mugs/mugs_vit_base/weights.pth.sha256").read_text().strip() == extractor.info.weights_sha256
    del extractor
    gc.collect()
    create_extractor("mugs_vit_base")
    assert len(requests) == 2  # the second time everything comes from the cache
    # a cached file that changed since its first download is refused, though it is a readable checkpoint
    torch.save({"state_dict": {"blocks.3.attn.qkv.weight": probe}}, cache / "Mugs/mugs_vit_base/weights.pth")
    with pytest.raises(ValueError, match="does not match the expected .* delete the file to download it again"):
        create_extractor("mugs_vit_base")


# How each published checkpoint is laid out: a wrapper key, a key prefix, and the file format.
PUBLISHED_FORMATS = {
    "mugs_vit_base": ("state_dict", "", ".pth"),
    "mugs_vit_large": ("state_dict", "", ".pth"),
    "dino_vit_base": (None, "", ".pth"),
    "dino_resnet50": (None, "module.", ".pth"),
    "clip_im_vit_b16": (None, "", ".safetensors"),
    "dinov2_vits14": (None, "", ".safetensors"),
    "dinov2_vitb14": (None, "", ".safetensors"),
    "dinov2_vitl14": (None, "", ".safetensors"),
    "resnet50": (None, "", ".pth"),
    "vgg16": (None, "", ".pth"),
    "inception": (None, "", ".pth"),
}


def test_every_extractor_with_published_weights_has_its_format_here():
    assert set(PUBLISHED_FORMATS) == set(TABLE_4) - {"efficientnet_lite0", "rand_resnet50"}


# The default run loads a plain .pth (resnet50) and a .safetensors (dinov2_vits14) checkpoint here; the wrapped
# "state_dict" of Mugs is loaded by test_mugs_weights_and_ranges_come_from_the_hub_once_then_from_the_cache and the
# "module." prefix of DINO by test_dino_resnet50_checkpoint_keys_are_mapped. Every extractor's own checkpoint is slow.
SMALL_CHECKPOINTS = {"dinov2_vits14"}


@pytest.mark.parametrize("name", names(PUBLISHED_FORMATS, slow=set(PUBLISHED_FORMATS) - SMALL_CHECKPOINTS))
def test_each_extractor_loads_a_locally_made_checkpoint_served_by_a_faked_download(name, cache, monkeypatch, tmp_path):
    from safetensors.torch import save_file

    from vdna.extractors import zoo
    from vdna.extractors.weights import RemoteFile

    wrapper, prefix, suffix = PUBLISHED_FORMATS[name]
    random_model = create_extractor(name, pretrained=False)
    layers = random_model.info.layers
    state = {key: torch.randn_like(value.float()).to(value.dtype) for key, value in random_model.model.state_dict().items()}
    del random_model
    gc.collect()  # its hooks hold it in a reference cycle: free its weights before the loaded ones come
    published = {prefix + key: value for key, value in state.items()}
    checkpoint = tmp_path / f"checkpoint{suffix}"
    if suffix == ".safetensors":
        save_file(published, str(checkpoint))
    else:
        torch.save({wrapper: published} if wrapper else published, checkpoint)
    # A local file cannot carry the published sha256 prefix; that check has its own test below.
    monkeypatch.setattr(zoo, "RemoteFile", lambda *args, sha256_prefix=None, **known: RemoteFile(*args, **known))
    ranges = _ranges_json(layers, 3.0)
    requests = _fake_downloads(monkeypatch, lambda key: ranges if key.endswith("activation_ranges.json") else checkpoint)
    extractor = create_extractor(name)
    loaded = extractor.model.state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in state.items())
    assert extractor.info.weights_sha256 == weights_module.sha256_of_file(checkpoint)
    ranged = [key for key in requests if key.endswith("activation_ranges.json")]
    assert len(requests) == 1 + len(ranged)
    if ranged:
        assert extractor.info.ranges.neurons_list == layers
        centre, half_width = extractor.info.ranges.normalisation(next(iter(layers)))
        assert float(abs(centre).max()) == 0.0 and float(half_width.min()) > 3.0
    else:
        assert extractor.info.ranges is None
    del extractor, loaded
    gc.collect()
    create_extractor(name)
    assert len(requests) == 1 + len(ranged)  # the second time from the cache


def test_dino_resnet50_checkpoint_keys_are_mapped(cache, monkeypatch, tmp_path):
    random_model = create_extractor("dino_resnet50", pretrained=False)
    state = {f"module.{key}": torch.randn_like(value.float()).to(value.dtype) for key, value in random_model.model.state_dict().items()}
    url = "https://dl.fbaipublicfiles.com/dino/dino_resnet50_pretrain/dino_resnet50_pretrain.pth"
    _fake_downloads(monkeypatch, {url: _saved(state, tmp_path)})
    with pytest.warns(UserWarning, match="dino_resnet50: no activation ranges"):
        extractor = create_extractor("dino_resnet50")
    assert torch.equal(extractor.model.state_dict()["layer3.2.conv2.weight"], state["module.layer3.2.conv2.weight"])


def test_checksum_prefix_in_the_file_name_is_checked(cache, monkeypatch, tmp_path):
    model = create_extractor("resnet50", pretrained=False)
    _fake_downloads(monkeypatch, {"https://download.pytorch.org/models/resnet50-0676ba61.pth": _saved(model.model.state_dict(), tmp_path)})
    with pytest.raises(ValueError, match="does not start with 0676ba61"):
        create_extractor("resnet50")
    assert not list(cache.glob("*.pth")) and not list(cache.glob(".*part"))  # nothing half-written stays


def test_offline_error_names_the_file_where_to_get_it_and_where_to_put_it(cache, monkeypatch):
    _fake_downloads(monkeypatch, {})
    with pytest.raises(FileNotFoundError, match=(
        r"dino_vitbase16_pretrain.pth is not in the cache and could not be downloaded \(OSError: offline\)\. "
        r"Download it from https://dl.fbaipublicfiles.com/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth "
        r"and put it at .*cache/dino_vitbase16_pretrain.pth")):
        create_extractor("dino_vit_base")


def test_explicit_weights_file_is_used_as_is(tmp_path):
    model = create_extractor("resnet50", pretrained=False)
    state = {key: torch.randn_like(value.float()).to(value.dtype) for key, value in model.model.state_dict().items()}
    torch.save(state, tmp_path / "mine.pth")
    extractor = create_extractor("resnet50", weights=tmp_path / "mine.pth")
    assert extractor.info.weights_source == str(tmp_path / "mine.pth") and extractor.info.ranges is None
    assert torch.equal(extractor.model.state_dict()["layer3.2.conv2.weight"], state["layer3.2.conv2.weight"])
    with pytest.raises(FileNotFoundError, match="weights file .*missing.pth does not exist"):
        create_extractor("resnet50", weights=tmp_path / "missing.pth")
    torch.save({"conv1.weight": state["conv1.weight"]}, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="missing tensors"):
        create_extractor("resnet50", weights=tmp_path / "partial.pth")


def test_fid_inception_matches_pytorch_fid_on_the_same_weights():
    fid = pytest.importorskip("pytorch_fid.inception")
    ours = create_extractor("inception", pretrained=False)
    reference = fid._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    reference.Mixed_5b = fid.FIDInceptionA(192, pool_features=32)
    reference.Mixed_5c = fid.FIDInceptionA(256, pool_features=64)
    reference.Mixed_5d = fid.FIDInceptionA(288, pool_features=64)
    reference.Mixed_6b = fid.FIDInceptionC(768, channels_7x7=128)
    reference.Mixed_6c = fid.FIDInceptionC(768, channels_7x7=160)
    reference.Mixed_6d = fid.FIDInceptionC(768, channels_7x7=160)
    reference.Mixed_6e = fid.FIDInceptionC(768, channels_7x7=192)
    reference.Mixed_7b = fid.FIDInceptionE_1(1280)
    reference.Mixed_7c = fid.FIDInceptionE_2(2048)
    reference.load_state_dict(ours.model.state_dict())  # pytorch-fid's key names are ours
    reference.eval()
    x = torch.randn(2, 3, 299, 299)
    order = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3", "maxpool2",
             "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a",
             "Mixed_7b", "Mixed_7c", "avgpool"]
    with torch.inference_mode():
        expected = x
        for module in order:
            expected = getattr(reference, module)(expected)
        got = ours(x)["block_3"]
    torch.testing.assert_close(got, expected.flatten(2), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_rand_resnet50_is_the_same_in_a_fresh_process_and_after_other_random_draws():
    code = "from vdna.extractors import create_extractor; print(create_extractor('rand_resnet50', device='cpu').info.weights_sha256)"
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    torch.manual_seed(12345)
    torch.randn(1000)  # the global generator's state is not the network's
    here = create_extractor("rand_resnet50", device="cpu").info.weights_sha256
    assert fresh == here == RANDOM_RESNET50_SHA256


def test_timm_models_with_chosen_layers(data_dir, processor):
    extractor = create_extractor("timm:resnet18", pretrained=False, layers={"early": "layer1", "late": "layer4.1"})
    assert dict(extractor.info.layers) == {"early": 64, "late": 512}
    assert extractor.info.name == "timm:resnet18"
    with pytest.raises(ValueError, match="timm has no model 'no_such_net'"):
        create_extractor("timm:no_such_net", pretrained=False)
    with pytest.raises(ValueError, match="layers= chooses the layers of timm: models"):
        create_extractor("vgg16", pretrained=False, layers=["features.1"])
    with pytest.raises(ValueError, match="unknown feature extractor 'vgg19'.*timm:<any timm model>"):
        create_extractor("vgg19")


@pytest.fixture(scope="module")
def three_images(data_dir):
    return image_files(data_dir / "set14", 3)


def _random_weights(name: str) -> Callable:
    """The factory of extractor ``name`` with random weights (its published ones are not here)."""
    return lambda pretrained=True, weights=None: create_extractor(name, pretrained=False)


@pytest.mark.parametrize("name", names(set(TABLE_4) - {"efficientnet_lite0"}, slow=set(TABLE_4) - {"dinov2_vits14"}))
def test_each_extractor_makes_dnas_of_real_images(name, three_images, tmp_path, registered):
    processor = VDNAProcessor()
    random_name = f"test_random_{name}"
    registered(random_name, _random_weights(name))
    ranges = processor.calibrate(three_images, random_name, tmp_path / "ranges.json", verbose=False)
    random_extractor = processor.get_extractor(random_name, device="cpu")
    assert random_extractor.info.name == name and ranges.neurons_list == dict(random_extractor.info.layers)
    histogram = processor.make_vdna(three_images, feat_extractor_name=random_name, activation_ranges=tmp_path / "ranges.json", verbose=False)
    assert histogram.num_images == 3 and histogram.neurons_list == dict(random_extractor.info.layers)
    assert histogram.provenance.ranges_sha256 == ranges.digest
    for layer, counts in histogram.data.items():
        positions = random_extractor(torch.zeros(1, 3, *random_extractor.info.input_size))[layer].shape[2]
        assert torch.all(counts.sum(dim=1) == 3 * positions)
    gaussian = processor.make_vdna(three_images, feat_extractor_name=random_name, distribution_name="gaussian", verbose=False)
    assert all(torch.isfinite(gaussian.data[layer]["mu"]).all() for layer in gaussian.neurons_list)
    # A forward batch of 2: each image's activations are the same whatever batches and images surround it.
    alone, together = (
        processor.make_vdna(images, feat_extractor_name=random_name, distribution_name="image-mean", forward_batch_size=2,
                            batch_size=batch_size, num_workers=0, verbose=False)
        for images, batch_size in ((three_images[:1], 1), (three_images, 3))
    )
    assert all(torch.equal(alone.data[layer][0], together.data[layer][0]) for layer in together.neurons_list)
