"""Making DNAs of real images with the embedded default extractor."""

from __future__ import annotations

import gc
import threading
import weakref
import zipfile
from collections.abc import Callable

import numpy as np
import pytest
import torch
from conftest import image_files
from helpers import assert_same_dna
from PIL import Image

from vdna import EMD, FD, NFD, VDNAHist, VDNAProcessor, create_extractor, load_vdna_from_files, merge_vdnas
from vdna.extractors import HookExtractor
from vdna.extractors.efficientnet import PACKAGE_WEIGHTS_SHA256
from vdna.kernels import Gathering, accumulate_histograms, bins_in_place, layer_binnings, prefers_neuron_major
from vdna.preprocess import ImageError, Preprocessor

IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope="module")
def mixed_images(data_dir):
    """Sixteen real photographs of different sizes and aspect ratios."""
    return image_files(data_dir / "set14", 8) + image_files(data_dir / "bsd100", 8)


def test_default_extractor_weights_classify_chelsea_as_a_cat(processor, skimage_photos):
    extractor = processor.get_extractor("efficientnet_lite0", device="cpu")
    info = extractor.info
    assert info.weights_sha256 == PACKAGE_WEIGHTS_SHA256
    image = Preprocessor(info.input_size, info.mean, info.std, crop="center")(skimage_photos["chelsea"], 0)
    with torch.inference_mode():
        logits = extractor.model(image[None])
    assert int(logits.argmax()) in IMAGENET_CATS
    coffee = Preprocessor(info.input_size, info.mean, info.std, crop="center")(skimage_photos["coffee"], 0)
    with torch.inference_mode():
        assert int(extractor.model(coffee[None]).argmax()) not in IMAGENET_CATS


def test_default_extractor_layers_and_shipped_ranges(processor):
    info = processor.get_extractor(device="cpu").info
    assert list(info.layers)[:3] == ["stem", "blocks.0.0", "blocks.1.0"] and list(info.layers)[-1] == "head"
    assert len(info.layers) == 18 and info.num_neurons == 3120
    assert info.layers["stem"] == 32 and info.layers["head"] == 1280
    assert info.input_size == (224, 224)
    assert info.ranges is not None and info.ranges.neurons_list == dict(info.layers)
    assert info.ranges.num_images >= 1500


def test_default_extractor_runs_its_stem_channels_first_and_gives_the_activations_of_a_channels_last_run(processor, mixed_images):
    extractor = processor.get_extractor(device="cpu")
    info = extractor.info
    layers = {"stem": "bn1", "blocks.0.0": "blocks.0.0", "blocks.1.0": "blocks.1.0", "head": "bn2"}
    all_channels_last = HookExtractor(
        create_extractor("efficientnet_lite0", device="cpu").model, layers, name="all_channels_last",
        input_size=info.input_size, mean=info.mean, std=info.std, channels_last=True, neuron_major_stem=False,
    )
    with torch.inference_mode():
        for image in network_inputs(info, mixed_images, 4):
            ours, reference = extractor(image), all_channels_last(image)
            for layer in layers:
                torch.testing.assert_close(ours[layer], reference[layer], rtol=0, atol=1e-5)
    assert prefers_neuron_major(ours["stem"].shape[2]) and not prefers_neuron_major(ours["blocks.1.0"].shape[2])
    assert ours["stem"].is_contiguous() and ours["blocks.0.0"].is_contiguous()  # binned neuron by neuron
    assert not reference["stem"].is_contiguous()
    assert bins_in_place(ours["blocks.1.0"], 1000) and bins_in_place(ours["head"], 1000)


def _random_default_network(pretrained=True, weights=None):
    return create_extractor("efficientnet_lite0", pretrained=False)


def test_random_weights_have_no_ranges_and_histograms_say_so(processor, skimage_photos, registered):
    registered("test_random_efficientnet_lite0", _random_default_network)
    extractor = create_extractor("efficientnet_lite0", pretrained=False, device="cpu")
    assert extractor.info.ranges is None and extractor.info.weights_sha256 is None
    photos = list(skimage_photos.values())[:1]
    fresh = VDNAProcessor()
    with pytest.raises(ValueError, match="histogram DNAs need per-neuron activation ranges, and this extractor has none: "
                                         "give activation_ranges"):
        fresh.make_vdna(photos, feat_extractor_name="test_random_efficientnet_lite0", verbose=False, num_workers=0)
    ranges = processor.get_extractor(device="cpu").info.ranges  # the same layers: the shipped ranges fit
    given = fresh.make_vdna(photos, feat_extractor_name="test_random_efficientnet_lite0", activation_ranges=ranges,
                            verbose=False, num_workers=0)
    assert given.num_images == 1 and given.provenance.ranges_sha256 == ranges.digest
    with pytest.raises(ValueError, match="unknown feature extractor 'nope'; registered: .*efficientnet_lite0"):
        create_extractor("nope")


def test_histograms_are_bit_identical_for_batch_sizes_1_7_64_and_workers_0_2(processor, mixed_images):
    images = mixed_images[3:13]  # ten images of both sets: batches of 7 leave a last batch of 3
    reference = processor.make_vdna(images, batch_size=64, num_workers=0, verbose=False)
    assert reference.num_images == 10
    for batch_size, workers in ((1, 0), (7, 2), (64, 2)):
        other = processor.make_vdna(images, batch_size=batch_size, num_workers=workers, verbose=False)
        for layer in reference.neurons_list:
            assert torch.equal(reference.data[layer], other.data[layer]), (batch_size, workers, layer)
    counts = reference.data["head"]
    assert counts.sum(dim=1).eq(10 * 7 * 7).all()  # every position of every image, once
    assert reference.data["stem"].sum(dim=1).eq(10 * 112 * 112).all()


def test_merging_two_halves_equals_the_whole(processor, mixed_images):
    images = mixed_images[4:12]  # four images of each set
    first, second = images[:5], images[5:]
    distributions = ("histogram-1000", "gaussian", "layer-gaussian", "activation-ranges")
    wholes = processor.make_vdnas(images, distributions, verbose=False)
    halves = [processor.make_vdnas(half, distributions, verbose=False) for half in (first, second)]
    for distribution in distributions:
        whole = wholes[distribution]
        parts = [half[distribution] for half in halves]
        merged = parts[0] + parts[1]
        assert merged.num_images == whole.num_images == 8
        assert merged.provenance.images == whole.provenance.images
        assert merge_vdnas(parts).num_images == 8
        for layer in whole.neurons_list:
            mine, theirs = merged.data[layer], whole.data[layer]
            if distribution.startswith("histogram"):
                assert torch.equal(mine, theirs)
            else:
                for key in theirs:
                    if distribution == "activation-ranges":
                        assert torch.equal(mine[key], theirs[key])
                    else:
                        torch.testing.assert_close(mine[key], theirs[key], rtol=1e-9, atol=1e-12)


def test_a_dna_against_itself_gives_exactly_zero(processor, mixed_images):
    hist = processor.make_vdna(mixed_images[6:10], verbose=False)
    gauss = processor.make_vdna(mixed_images[6:10], distribution_name="gaussian", verbose=False)
    layer_gauss = processor.make_vdna(mixed_images[6:10], distribution_name="layer-gaussian", verbose=False)
    assert EMD(hist, hist).item() == 0.0
    assert NFD(gauss, gauss).item() == 0.0
    assert FD(layer_gauss, layer_gauss).item() == 0.0
    assert NFD(layer_gauss, gauss).item() == pytest.approx(0.0, abs=1e-9)


def test_the_same_images_from_every_kind_of_source_give_the_same_dna(processor, mixed_images, tmp_path):
    files = mixed_images[6:9]
    reference = processor.make_vdna(files, verbose=False)
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in files:
            handle.write(path, f"sub/{path.name}")
    index = tmp_path / "index.txt"
    index.write_text("\n".join(str(path) for path in files))
    pil_images = [Image.open(path) for path in files]
    arrays = [np.asarray(Image.open(path).convert("RGB")) for path in files]
    for source in (archive, index, pil_images, arrays, iter(arrays)):
        other = processor.make_vdna(source, verbose=False)
        assert all(torch.equal(reference.data[layer], other.data[layer]) for layer in reference.neurons_list), source


def test_gaussian_dna_is_the_moments_of_spatially_averaged_activations(processor, mixed_images, one_torch_thread):
    files = mixed_images[:4]
    gauss = processor.make_vdna(files, distribution_name="gaussian", verbose=False)
    extractor = processor.get_extractor(device="cpu")
    with torch.inference_mode():
        means = torch.stack(
            [extractor(image)["blocks.3.1"][0].double().mean(1) for image in network_inputs(extractor.info, files, len(files))]
        )
    torch.testing.assert_close(gauss.data["blocks.3.1"]["mu"], means.mean(0), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(gauss.data["blocks.3.1"]["var"], means.var(0, correction=1), rtol=1e-9, atol=1e-12)


def test_provenance_recorded_and_saved(processor, mixed_images, tmp_path):
    vdna = processor.make_vdna(mixed_images[:3], verbose=False, num_workers=None)
    assert vdna.provenance.weights_sha256 == PACKAGE_WEIGHTS_SHA256
    assert vdna.provenance.ranges_sha256 == vdna.provenance.ranges_sha256.lower() and len(vdna.provenance.ranges_sha256) == 64
    assert vdna.provenance.images == [str(path) for path in mixed_images[:3]]
    vdna.save(tmp_path / "dna")
    loaded = load_vdna_from_files(tmp_path / "dna")
    assert isinstance(loaded, VDNAHist) and loaded.provenance.ranges_sha256 == vdna.provenance.ranges_sha256
    assert EMD(loaded, vdna).item() == 0.0


def test_bad_image_raises_with_its_name_or_is_skipped_and_recorded(processor, mixed_images, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_text("not a picture")
    with pytest.raises(ImageError, match="broken.jpg: not an image file Pillow can identify"):
        processor.make_vdna([mixed_images[0], broken], verbose=False, num_workers=0)
    vdna = processor.make_vdna([mixed_images[0], broken], verbose=False, num_workers=2, on_error="skip")
    assert vdna.num_images == 1
    assert vdna.provenance.skipped == [{"name": str(broken), "reason": "not an image file Pillow can identify"}]
    with pytest.raises(ValueError, match="none of the 1 images of list of 1 items could be used"):
        processor.make_vdna([broken], verbose=False, on_error="skip")


def test_sample_images_are_saved(processor, mixed_images, tmp_path):
    processor.make_vdna(mixed_images[:4], verbose=False, save_sample_images=tmp_path / "samples", n_sample_images=2)
    saved = sorted((tmp_path / "samples").iterdir())
    assert [path.name for path in saved] == ["0.png", "1.png"]
    assert Image.open(saved[0]).size == (224, 224)


def test_argument_errors(processor, mixed_images):
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        processor.make_vdna(mixed_images[:1], batch_size=0)
    with pytest.raises(ValueError, match="on_error must be one of"):
        processor.make_vdna(mixed_images[:1], on_error="ignore")
    with pytest.raises(ValueError, match="unknown distribution 'hist'"):
        processor.make_vdna(mixed_images[:1], distribution_name="hist")
    with pytest.raises(ValueError, match="a histogram needs at least 2 bins"):
        processor.make_vdna(mixed_images[:1], distribution_name="histogram-1")
    with pytest.raises(ValueError, match="num_workers must be a non-negative integer"):
        processor.make_vdna(mixed_images[:1], num_workers=-1)


def test_datasets_halves_are_closer_to_each_other_than_to_other_datasets(processor, data_dir):
    halves = {}
    for name in ("urban100", "bsd100"):
        files = image_files(data_dir / name, 16)
        halves[name] = [processor.make_vdna(part, verbose=False) for part in (files[:8], files[8:])]
    within = [EMD(*halves[name]).item() for name in halves]
    across = EMD(halves["urban100"][0], halves["bsd100"][1]).item()
    assert max(within) < across


def test_sample_images_need_a_source_readable_twice(processor, skimage_photos, tmp_path):
    photos = list(skimage_photos.values())[:2]
    with pytest.raises(ValueError, match="save_sample_images needs a source that can be read twice"):
        processor.make_vdna(iter(photos), verbose=False, save_sample_images=tmp_path / "s")
    processor.make_vdna(photos, verbose=False, num_workers=0, save_sample_images=tmp_path / "s", n_sample_images=2)
    assert len(list((tmp_path / "s").iterdir())) == 2


def test_float64_activations_are_binned_as_float32():
    from vdna.kernels import Binning, accumulate_histograms

    values = torch.tensor([[[0.1, -0.3, 0.7]]], dtype=torch.float64)
    binning = Binning.create(np.zeros(1), np.ones(1), 10)
    as_float64, as_float32 = (torch.zeros((1, 10), dtype=torch.int64) for _ in range(2))
    accumulate_histograms(values, as_float64, binning)
    accumulate_histograms(values.float(), as_float32, binning)
    assert torch.equal(as_float64, as_float32) and int(as_float64.sum()) == 3


def network_inputs(info, mixed_images, count: int) -> list[torch.Tensor]:
    """The first ``count`` real images, preprocessed for the extractor of ``info``, each as a batch of one."""
    preprocess = Preprocessor(info.input_size, info.mean, info.std)
    return [preprocess(np.asarray(Image.open(path).convert("RGB")), i)[None] for i, path in enumerate(mixed_images[:count])]


def real_activations(processor, mixed_images, count: int) -> list[dict[str, torch.Tensor]]:
    """The default extractor's activations (in the memory formats the network gives them) of real images."""
    extractor = processor.get_extractor(device="cpu")
    with torch.inference_mode():
        return [extractor(image) for image in network_inputs(extractor.info, mixed_images, count)]


def gathered_counts(info, batches, **sizes) -> dict[str, torch.Tensor]:
    """Counts of ``batches`` of activations binned through a :class:`Gathering` of the given sizes."""
    binning = layer_binnings(info.ranges, info.layers, 1000, torch.device("cpu"))
    counts = {layer: torch.zeros((neurons, 1000), dtype=torch.int64) for layer, neurons in info.layers.items()}
    gathering = Gathering(1000, lambda layer, values: accumulate_histograms(values, counts[layer], binning[layer]))
    for name, value in sizes.items():
        setattr(gathering, name, value)
    for batch in batches:
        gathering.plan(batch)
        for layer, values in batch.items():
            gathering.add(layer, values)
    gathering.flush()
    return counts


def test_gathering_activations_before_binning_changes_no_count(processor, mixed_images):
    info = processor.get_extractor(device="cpu").info
    images = real_activations(processor, mixed_images, 8)
    assert images[0]["stem"].is_contiguous() and not images[0]["head"].is_contiguous()  # the network's own memory formats
    batches = [images[0], images[1], {k: torch.cat([images[2][k], images[3][k]]) for k in images[0]}]
    batches += [{k: torch.cat([image[k] for image in images[4:8]]) for k in images[0]}, images[0]]  # more than fit, then one waiting
    expected = gathered_counts(info, batches, buffer_bytes=0)  # every image binned as it comes
    assert int(expected["stem"].sum()) == 9 * 32 * 112 * 112
    three_of_each_7x7 = {"values_per_neuron": 3 * 49, "buffer_bytes": 2**30}
    sized = Gathering(1000, None)
    sized.values_per_neuron, sized.buffer_bytes = three_of_each_7x7.values()
    capacity = sized.images_per_layer({layer: values.shape for layer, values in images[0].items()})
    assert capacity["stem"] == 1 and capacity["head"] == 3
    neuron_major = [{layer: values.contiguous() for layer, values in batch.items()} for batch in batches]
    accumulator = VDNAHist.accumulator({"bins": 1000}, info.layers, info.ranges, torch.device("cpu"))
    for batch in batches:
        accumulator.update(batch)
    for found in (gathered_counts(info, batches, **three_of_each_7x7), gathered_counts(info, neuron_major, **three_of_each_7x7),
                  accumulator.result("efficientnet_lite0").data):
        for layer in info.layers:
            assert torch.equal(found[layer], expected[layer]), layer


def test_gathering_keeps_within_its_memory_budget(processor, mixed_images):
    shapes = {layer: values.shape for layer, values in real_activations(processor, mixed_images, 1)[0].items()}
    gathering = Gathering(1000, None)
    per_image = {layer: 4 * shape[1] * shape[2] for layer, shape in shapes.items()}
    for budget in (2**20, 10 * sum(per_image.values()), 64 * 2**20):
        gathering.buffer_bytes = budget
        capacity = gathering.images_per_layer(shapes)
        assert sum(capacity[layer] * per_image[layer] for layer in shapes) <= max(budget, sum(per_image.values()))
        assert min(capacity.values()) >= 1 and capacity["head"] >= capacity["blocks.3.0"] >= capacity["stem"]
    assert capacity["head"] * 49 >= 2 * 1000  # the 7x7 layers bin more values per neuron than there are bins
    gathering.buffer_bytes = 0
    assert set(gathering.images_per_layer(shapes).values()) == {1}


def test_gathered_activations_merge_resume_and_report_nans(processor, mixed_images):
    info = processor.get_extractor(device="cpu").info
    images = real_activations(processor, mixed_images, 4)

    def accumulator(*batches):
        made = VDNAHist.accumulator({"bins": 100}, info.layers, info.ranges, torch.device("cpu"))
        for batch in batches:
            made.update(batch)
        return made

    whole = accumulator(*images).result("efficientnet_lite0")
    first, second = accumulator(images[0]), accumulator(images[1], images[2])
    first.merge(second)
    first.update(images[3])
    merged = first.result("efficientnet_lite0")
    resumed = accumulator(images[3])  # its state, gathered images included, is replaced
    stopped = accumulator(images[0], images[1])
    resumed.load_state_tensors(stopped.state_tensors(), stopped.num_images)
    for image in images[2:]:
        resumed.update(image)
    for other in (merged, resumed.result("efficientnet_lite0")):
        assert all(torch.equal(other.data[layer], whole.data[layer]) for layer in info.layers)
    broken = {k: v.clone() for k, v in images[0].items()}
    broken["head"][0, 5, 3] = float("nan")
    with_nan = accumulator(images[1], broken)
    with pytest.raises(ValueError, match="layer 'head': the extractor produced 1 NaN activation"):
        with_nan.result("efficientnet_lite0")


@pytest.mark.parametrize(
    "distribution",
    ["histogram-1000", "activation-ranges", "gaussian", "layer-gaussian", "image-histogram-1000", "image-mean"],
)
def test_streams_give_the_dna_of_a_one_thread_run_bit_for_bit(distribution, processor, mixed_images, one_torch_thread, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    images = [*mixed_images[5:8], bad, *mixed_images[8:11]]
    one_thread = processor.make_vdna(images, distribution_name=distribution, on_error="skip", verbose=False)
    torch.set_num_threads(2)
    for streams, batch_size in ((2, 64), (3, 2)):
        streamed = processor.make_vdna(images, distribution_name=distribution, on_error="skip", streams=streams,
                                       batch_size=batch_size, verbose=False)
        assert torch.get_num_threads() == 2  # given back
        assert streamed.num_images == 6
        assert streamed.provenance.images == one_thread.provenance.images
        assert streamed.provenance.skipped == one_thread.provenance.skipped == [
            {"name": str(bad), "reason": "not an image file Pillow can identify"}
        ]
        settings = streamed.provenance.extraction_settings
        assert settings["torch_threads"] == 1 and settings["streams"] == streams
        assert_same_dna(streamed, one_thread)  # Gaussians and per-image DNAs merged image by image, in order
    torch.set_num_threads(1)


@pytest.mark.parametrize("distribution", ["histogram-1000", "gaussian", "layer-gaussian", "image-mean"])
def test_a_forward_batch_gives_each_image_the_same_computation_whatever_the_batches(distribution, processor, mixed_images):
    images = mixed_images[:7]
    options = {"distribution_name": distribution, "forward_batch_size": 3, "num_workers": 0, "verbose": False}
    whole = processor.make_vdna(images, batch_size=64, **options)  # forward passes of images 0-2, 3-5, 6 and 2 blanks
    for batch_size in (1, 2, 5):
        assert_same_dna(processor.make_vdna(images, batch_size=batch_size, **options), whole)
    if distribution == "image-mean":  # and whatever the number of images: 3-4 beside 2 blanks, then beside image 5
        fewer = processor.make_vdna(images[:5], batch_size=64, **options)
        assert all(torch.equal(fewer.data[layer], whole.data[layer][:5]) for layer in whole.neurons_list)
    with pytest.raises(ValueError, match="streams run images one at a time; forward_batch_size does not apply"):
        processor.make_vdna(images[:2], streams=2, **options)


def test_a_failing_stream_stops_the_others_and_its_error_is_raised(processor, mixed_images, one_torch_thread, monkeypatch):
    import vdna.engine

    prepare = vdna.engine.prepare_image

    def failing_on_the_third(raw, name, position, *args):
        if position == 2:
            raise RuntimeError(f"cannot prepare {name}")
        return prepare(raw, name, position, *args)

    monkeypatch.setattr(vdna.engine, "prepare_image", failing_on_the_third)
    for distribution in ("gaussian", "histogram-1000"):  # images merged in order, and images in chunks
        with pytest.raises(RuntimeError, match="cannot prepare"):
            processor.make_vdna(mixed_images[:8], distribution_name=distribution, streams=2, batch_size=8, verbose=False)


def test_streams_decode_their_own_images_from_any_source_in_any_batch_size(processor, mixed_images, one_torch_thread, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    images = [*mixed_images[5:8], bad, *mixed_images[8:11]]
    options = {"on_error": "skip", "crop_to_square_pre_resize": "random", "verbose": False}  # crops seeded by position
    one_thread = processor.make_vdna(images, **options)
    torch.set_num_threads(2)
    for source, names in ((images, [str(path) for path in images]), (iter(images), [f"list_iterator[{i}]" for i in range(7)])):
        streamed = processor.make_vdna(source, streams=2, batch_size=3, **options)  # a list, and an iterable read once
        assert streamed.provenance.images == names[:3] + names[4:]
        assert streamed.provenance.skipped == [{"name": names[3], "reason": "not an image file Pillow can identify"}]
        assert streamed.provenance.extraction_settings["num_workers"] == 0  # no decoding workers
        assert all(torch.equal(streamed.data[layer], one_thread.data[layer]) for layer in one_thread.neurons_list)
    with pytest.raises(ImageError, match=r"broken\.jpg: not an image file Pillow can identify"):
        processor.make_vdna(images, streams=2, batch_size=3, verbose=False)
    archive = tmp_path / "images.zip"  # read in the main process, decoded in the streams
    with zipfile.ZipFile(archive, "w") as handle:
        for index, path in enumerate(images):
            handle.write(path, f"{index:02d}_{path.name}")
    zipped = processor.make_vdna(archive, streams=2, batch_size=3, **options)
    assert zipped.provenance.images == [f"{archive}:{i:02d}_{p.name}" for i, p in enumerate(images) if p != bad]
    assert all(torch.equal(zipped.data[layer], one_thread.data[layer]) for layer in one_thread.neurons_list)


class _TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 6, 5, stride=4)

    def forward(self, x):
        return torch.relu(self.conv(x))


class _OneCallAtATime(HookExtractor):
    concurrent_calls = False


BUILT: list[tuple[str, str | None]] = []  # (extractor, weights) of each extractor the factories below build


def _counted(name: str, extractor_class: type[HookExtractor]) -> Callable[..., HookExtractor]:
    """The factory of ``name``: a tiny network whose every build is recorded in ``BUILT``."""

    def factory(pretrained=True, weights=None):
        BUILT.append((name, None if weights is None else str(weights)))
        return extractor_class(_TinyNet(), {"conv": "conv"}, name=name, input_size=(32, 32), mean=(0.5,) * 3, std=(0.5,) * 3)

    return factory


def test_streams_share_one_extractor_or_reuse_their_copies_until_the_extractor_changes(
    mixed_images, one_torch_thread, tmp_path, registered
):
    registered("test_counted_shared", _counted("test_counted_shared", HookExtractor))
    registered("test_counted_copied", _counted("test_counted_copied", _OneCallAtATime))
    fresh, images = VDNAProcessor(), mixed_images[:5]
    options = {"distribution_name": "activation-ranges", "verbose": False, "num_workers": 0}
    BUILT.clear()
    shared = fresh.make_vdna(images, feat_extractor_name="test_counted_shared", streams=3, **options)
    assert BUILT == [("test_counted_shared", None)]  # the streams call the one extractor at once
    one_thread = fresh.make_vdna(images, feat_extractor_name="test_counted_shared", **options)
    assert len(BUILT) == 1
    name = "test_counted_copied"
    copied = fresh.make_vdna(images, feat_extractor_name=name, streams=3, **options)
    assert BUILT[1:] == [(name, None)] * 3  # the extractor, then two copies
    again = fresh.make_vdna(images, feat_extractor_name=name, streams=2, **options)
    assert len(BUILT) == 4  # reused
    for dna in (shared, copied, again):
        assert all(torch.equal(dna.data["conv"][key], one_thread.data["conv"][key]) for key in ("min", "max"))
    weights = tmp_path / "weights.pth"  # another key: another extractor, and new copies
    fresh.make_vdna(images, feat_extractor_name=name, streams=2, extractor_weights=weights, **options)
    assert BUILT[4:] == [(name, str(weights))] * 2


def test_histograms_of_the_same_ranges_share_their_binnings(processor):
    info = processor.get_extractor(device="cpu").info
    ours, theirs = (layer_binnings(info.ranges, info.layers, 10, torch.device("cpu")) for _ in range(2))
    assert all(ours[layer] is theirs[layer] for layer in info.layers)  # made once
    other = layer_binnings(info.ranges, info.layers, 11, torch.device("cpu"))
    assert other["stem"].bins == 11 and other["stem"] is not ours["stem"]


def test_threads_calling_one_extractor_at_once_each_get_their_own_activations(processor, mixed_images, one_torch_thread):
    extractor = processor.get_extractor(device="cpu")
    info = extractor.info
    images = network_inputs(info, mixed_images, 6)
    with torch.inference_mode():
        alone = [extractor(image) for image in images]
    found: list[dict | None] = [None] * len(images)

    def run(stream: int) -> None:
        with torch.inference_mode():
            for index in range(stream, len(images), 2):
                found[index] = extractor(images[index])

    threads = [threading.Thread(target=run, args=(stream,)) for stream in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for expected, got in zip(alone, found):
        assert all(torch.equal(got[layer], expected[layer]) for layer in info.layers)
    # nothing is kept between calls: once the caller lets go of a layer's output, it is freed
    outputs = []
    watch = extractor.model.get_submodule("bn2").register_forward_hook(lambda module, inputs, output: outputs.append(weakref.ref(output)))
    try:
        with torch.inference_mode():
            activations = extractor(images[0])
            logits = extractor.model(images[0])  # the model called by itself: its hooks keep nothing either
    finally:
        watch.remove()
    assert logits.shape == (1, 1000) and len(outputs) == 2
    del activations, logits
    gc.collect()
    assert [output() for output in outputs] == [None, None]


def test_streams_errors(processor, mixed_images):
    with pytest.raises(ValueError, match="streams must be a positive integer, got 0"):
        processor.make_vdna(mixed_images[:2], streams=0, verbose=False)
    with pytest.raises(ValueError, match="streams run the network on CPU threads; the device is meta"):
        processor.make_vdna(mixed_images[:2], streams=2, device="meta", verbose=False)
