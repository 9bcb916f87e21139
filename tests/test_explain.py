"""The images behind a neuron: the crops shown are those of its highest activations, and a box is what a position sees."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import image_files

from vdna import RunConfig, VDNAProcessor
from vdna.engine import run_preprocessor
from vdna.explain import NeuronMaxima, crop_examples, layer_geometry, neuron_examples
from vdna.extractors import HookExtractor
from vdna.extractors.zoo import vit_layers
from vdna.neurons import Neuron
from vdna.plots import plot_neuron_examples
from vdna.preprocess import decode_image

NEURONS = [("stem", 20), ("blocks.3.0", 5), ("head", 1048)]  # stem #20 and head #1048 saturate (ReLU6): ties at 6
PER_SET = 3


@pytest.fixture(scope="module")
def sets(data_dir):
    return [str(path) for path in image_files(data_dir / "urban100", 4)], [str(path) for path in image_files(data_dir / "bsd100", 4)]


@pytest.fixture(scope="module")
def extractor(processor):
    return processor.get_extractor(device="cpu")


@pytest.fixture(scope="module")
def activations(extractor, sets):
    """The activations of set A's images then set B's, computed by hand."""
    return direct_activations(extractor, sets[0] + sets[1])


@pytest.fixture(scope="module")
def examples(sets, processor):
    return neuron_examples(*sets, NEURONS, per_set=PER_SET, processor=processor, verbose=False, num_workers=0)


def direct_activations(extractor, paths) -> list[dict[str, torch.Tensor]]:
    """The extractor's activations of each image, run by hand one image at a time on one thread (as the default
    extractor's plan on the CPU, streams of one image at a time, runs them)."""
    preprocessor = run_preprocessor(extractor.info, RunConfig())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            return [extractor(preprocessor(decode_image(path, path), index)[None]) for index, path in enumerate(paths)]
    finally:
        torch.set_num_threads(threads)


def input_gradient_support(extractor, image: torch.Tensor, layer: str, position: int) -> np.ndarray:
    """Which input pixels the layer's activations at ``position`` depend on, for this image: ``(H, W)`` bool."""
    image = image.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(extractor(image)[layer][0, :, position].sum(), image)
    return (gradient[0].abs().sum(dim=0) != 0).numpy()


def test_the_crops_are_those_of_the_highest_activations(examples, sets, extractor, activations):
    height, width = extractor.info.input_size
    preprocessor = run_preprocessor(extractor.info, RunConfig())
    for paths, side, of_set in zip(sets, ("a", "b"), (activations[: len(sets[0])], activations[len(sets[0]) :])):
        for layer, index in NEURONS:
            per_image = [image[layer][0, index] for image in of_set]
            maxima = [(float(a.max()), float(a.double().mean()), i, int(a.argmax())) for i, a in enumerate(per_image)]
            expected = sorted(maxima, key=lambda m: (-m[0], -m[1], m[2]))[:PER_SET]
            shown = getattr(examples[(layer, index)], side)
            assert [(e.name, e.activation, e.position) for e in shown] == [(paths[i], v, p) for v, _, i, p in expected]
            rows, columns = extractor.info.grids[layer]
            for example in shown:
                row, column = divmod(example.position, columns)
                top, left, bottom, right = example.box
                assert top <= (row + 0.5) * height / rows < bottom and left <= (column + 0.5) * width / columns < right
                assert top <= example.cell[0] < example.cell[2] <= bottom and left <= example.cell[1] < example.cell[3] <= right
                pixels = preprocessor.resized(decode_image(example.name, example.name), example.image)
                assert np.array_equal(example.crop, np.rint(pixels[top:bottom, left:right]).astype(np.uint8))
    assert [e.activation for e in examples[("stem", 20)].a] == [6.0] * PER_SET  # saturated: ranked by their mean
    assert examples[("stem", 20)].a[0].crop.shape == (3, 3, 3)  # the stem sees 3 x 3 pixels
    assert examples[("head", 1048)].a[0].box == (0, 0, height, width)  # the head sees all of the image
    assert examples[("stem", 20)].a[0].outline is None  # its cell is most of what the stem sees: nothing to outline
    head = examples[("head", 1048)].a[0]
    assert head.outline == head.cell and head.cell != head.box  # a small cell in a box at the image's corner
    assert list(examples) == NEURONS


def test_a_map_position_sees_the_input_pixels_that_influence_it(extractor, sets):
    image = run_preprocessor(extractor.info, RunConfig())(decode_image(sets[1][0], "bsd"), 0)[None]
    geometry = layer_geometry(extractor, ["stem", "blocks.2.1", "blocks.3.0"])
    assert geometry["stem"].stride == (2.0, 2.0) and geometry["blocks.3.0"].stride == (16.0, 16.0)
    for layer, cell in (("stem", (40, 70)), ("stem", (0, 111)), ("blocks.2.1", (14, 9)), ("blocks.3.0", (0, 13)), ("blocks.3.0", (7, 7))):
        position = cell[0] * geometry[layer].grid[1] + cell[1]
        support = input_gradient_support(extractor, image, layer, position)
        top, left, bottom, right = geometry[layer].box(position)
        inside = np.zeros_like(support)
        inside[top:bottom, left:right] = True
        assert support.any() and not (support & ~inside).any(), (layer, cell)
        rows, columns = np.flatnonzero(support.any(axis=1)), np.flatnonzero(support.any(axis=0))
        assert (rows[0], columns[0], rows[-1] + 1, columns[-1] + 1) == (top, left, bottom, right), (layer, cell)  # and no more
    assert geometry["stem"].box(0) == (0, 0, 3, 3) and geometry["stem"].box(40 * 112 + 70) == (80, 140, 83, 143)


def _tiny_vit(pretrained=True, weights=None):
    """A ViT of 8 x 8 patches on 32 x 32 images, with a class token and two register tokens."""
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(img_size=32, patch_size=8, embed_dim=12, depth=2, num_heads=2, reg_tokens=2, num_classes=0)
    return HookExtractor(model, vit_layers(model), name="test_tiny_vit", input_size=(32, 32), mean=(0.5,) * 3,
                         std=(0.5,) * 3, tokens=True)


@pytest.fixture(scope="module")
def tiny_vit(registered_in_module):
    """``test_tiny_vit``, registered while this module's tests run."""
    registered_in_module("test_tiny_vit", _tiny_vit)


@pytest.mark.usefixtures("tiny_vit")
def test_a_token_sees_its_patch_and_a_class_token_the_whole_image(sets):
    processor = VDNAProcessor()  # the session's keeps the default extractor
    extractor = processor.get_extractor("test_tiny_vit")
    assert extractor.info.grids == {"block_0": (4, 4), "block_1": (4, 4), "last_norm": (4, 4)}
    geometry = layer_geometry(extractor, ["block_1"])["block_1"]
    assert geometry.positions == 3 + 16
    assert [geometry.box(p) for p in range(3)] == [(0, 0, 32, 32)] * 3  # class and register tokens
    assert geometry.box(3) == (0, 0, 8, 8) and geometry.box(3 + 6) == (8, 16, 16, 24) and geometry.box(18) == (24, 24, 32, 32)
    assert geometry.cell(3 + 6) == geometry.box(3 + 6)
    found = neuron_examples(*sets, [("block_1", 4)], per_set=2, processor=processor, feat_extractor_name="test_tiny_vit",
                            verbose=False, num_workers=0)[("block_1", 4)]
    activations = direct_activations(extractor, sets[0])
    strongest = max(range(len(sets[0])), key=lambda i: float(activations[i]["block_1"][0, 4].max()))
    first = found.a[0]
    assert first.name == sets[0][strongest] and first.position == int(activations[strongest]["block_1"][0, 4].argmax())
    assert first.box == geometry.box(first.position) and first.crop.shape[:2] == (first.box[2] - first.box[0], first.box[3] - first.box[1])


def test_tracking_in_parts_equals_tracking_at_once(extractor, activations):
    whole, first, second = NeuronMaxima(2), NeuronMaxima(2), NeuronMaxima(2)
    for position, batch in enumerate(activations):
        whole.update(batch, [position])
    for position in (5, 1, 7, 3):  # any order, any split
        first.update(activations[position], [position])
    second.update({layer: torch.cat([activations[p][layer] for p in (6, 0, 2, 4)]) for layer in activations[0]}, [6, 0, 2, 4])
    first.merge(second)
    assert first.num_images == whole.num_images == 8
    for layer, count in extractor.info.layers.items():
        for index in (0, count - 1):
            assert first.best(layer, index) == whole.best(layer, index)


@pytest.mark.usefixtures("tiny_vit")
def test_streams_track_what_one_thread_tracks(sets, one_torch_thread):
    processor = VDNAProcessor()
    extractor = processor.get_extractor("test_tiny_vit")
    images = sets[0] + sets[1]
    expected = NeuronMaxima(3)
    for position, batch in enumerate(direct_activations(extractor, images)):
        expected.update(batch, [position])
    tracked = NeuronMaxima(3)
    config = RunConfig(feat_extractor_name="test_tiny_vit", streams=2, batch_size=3, verbose=False)
    assert processor.run(images, config, [], trackers=[tracked]) == []
    assert tracked.num_images == len(images)
    for layer, count in extractor.info.layers.items():
        assert all(tracked.best(layer, index) == expected.best(layer, index) for index in range(count)), layer


def test_the_figure_has_a_row_per_neuron(examples, tmp_path):
    figure = plot_neuron_examples(examples, tmp_path / "examples.png", labels=("urban", "bsd"))
    assert figure.axes[0].images and len(figure.axes) == len(NEURONS) * 2 * PER_SET
    assert (tmp_path / "examples.png").stat().st_size > 10_000


def test_errors_name_the_bad_value(sets, processor, extractor, activations, tmp_path):
    with pytest.raises(ValueError, match="has no layer 'blocks.9'; layers: stem, blocks.0.0"):
        neuron_examples(*sets, [("blocks.9", 0)], processor=processor)
    with pytest.raises(ValueError, match="layer 'head' of efficientnet_lite0 has 1280 neurons; neuron 1280 is not one of them"):
        neuron_examples(*sets, [Neuron("head", 1280, 0.5)], processor=processor)
    with pytest.raises(ValueError, match="a neuron is a \\(layer, index\\) pair, got \\('head',\\)"):
        neuron_examples(*sets, [("head",)], processor=processor)
    with pytest.raises(ValueError, match="no neurons given"):
        neuron_examples(*sets, {}, processor=processor)
    for per_set in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="per_set must be a positive integer"):
            neuron_examples(*sets, NEURONS, per_set=per_set, processor=processor)
    with pytest.raises(TypeError, match=r"unknown settings of neuron_examples \['bins'\]; valid: "):
        neuron_examples(*sets, NEURONS, processor=processor, config=RunConfig(), bins=10)
    with pytest.raises(ValueError, match="give a source that can be read twice"):
        neuron_examples(iter(sets[0]), sets[1], NEURONS, processor=processor)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images found in .*empty"):
        neuron_examples(tmp_path / "empty", sets[1], NEURONS, processor=processor, verbose=False, num_workers=0)
    maxima = NeuronMaxima(2, {"head": [3]})
    with pytest.raises(ValueError, match="no images have been tracked yet"):
        maxima.best("head", 3)
    maxima.update(activations[0], [0])
    with pytest.raises(ValueError, match="neuron 4 of layer 'head' is not tracked; tracked: \\[3\\]"):
        maxima.best("head", 4)
    with pytest.raises(ValueError, match="layer 'stem' is not tracked; tracked layers: head"):
        maxima.best("stem", 0)
    with pytest.raises(ValueError, match="only trackers of the same neurons and per_set can merge"):
        maxima.merge(NeuronMaxima(3, {"head": [3]}))
    with pytest.raises(ValueError, match="has 1280 neurons; indices \\[5000\\] are out of range"):
        NeuronMaxima(2, {"head": [5000]}).update(activations[0], [0])
    with pytest.raises(ValueError, match="does not say where the positions of layer 'x' lie"):
        crop_examples(maxima, [("x", 0)], sets[0], RunConfig(), _no_grid(extractor))


def _no_grid(extractor):
    """An extractor whose facts do not say where its layers' positions lie."""
    from dataclasses import replace

    class Unknown(torch.nn.Module):
        info = replace(extractor.info, layers={"x": 3}, grids={})

    return Unknown()
