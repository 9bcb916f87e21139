"""The paper's feature extractors (Tables 4-5) and today's self-supervised backbones, on timm architectures.

Layer names and neuron orders follow vdna 0.1.1, so DNAs made with the same weights and ranges
are interchangeable. Weights and activation ranges are found by :mod:`vdna.extractors.weights`.
With ``pretrained=False`` every extractor is built with random weights and no download.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config import TIMM_PREFIX, option
from ..ranges import ActivationRanges, load_activation_ranges
from .base import HookExtractor
from .weights import HUB_REPO, RemoteFile, packaged_ranges, resolve_file

# timm is imported where a model is built: importing it takes over a second, which commands
# that build no network (comparing saved DNAs, listing extractors) should not pay.

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

Converter = Callable[[Mapping[str, torch.Tensor], nn.Module], Mapping[str, torch.Tensor]]


def load_state(path: Path) -> dict:
    """A checkpoint's tensors, never unpickling code (safetensors, or ``torch.load(weights_only=True)``)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def keep_model_keys(state: Mapping[str, torch.Tensor], model: nn.Module, origin: str = "checkpoint") -> dict:
    """``state`` restricted to the model's keys (heads and training-only parts dropped); every model key must be there."""
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    if missing:
        raise ValueError(f"{origin}: missing tensors {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    return {key: state[key] for key in expected}


def _ranges(remote: RemoteFile | None, name: str) -> ActivationRanges | None:
    if remote is None:
        return None
    try:
        path, _ = resolve_file(remote)
    except (FileNotFoundError, ValueError) as error:
        warnings.warn(f"{name}: no activation ranges, histograms need {option('activation_ranges')}: {error}", stacklevel=3)
        return None
    return load_activation_ranges(path, name)


def _extractor(
    name: str,
    model: nn.Module,
    layers: Mapping[str, str],
    *,
    pretrained: bool,
    weights: str | os.PathLike | None,
    weights_file: RemoteFile | None,
    ranges_file: RemoteFile | None,
    convert: Converter,
    input_size: tuple[int, int] = (224, 224),
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    tokens: bool = False,
    run: Callable | None = None,
) -> HookExtractor:
    """Load the weights (when asked) into ``model`` and wrap it with hooks on ``layers``."""
    source, sha, ranges = "random initialisation", None, None
    if pretrained or weights is not None:
        if weights_file is None and weights is None:
            raise ValueError(f"{name} has no published weights; give {option('weights')} (a weights file) or pretrained=False")
        path, sha = resolve_file(weights_file, weights) if weights_file is not None else resolve_file(
            RemoteFile(Path(weights).name), weights)
        model.load_state_dict(convert(load_state(path), model))
        source = str(path)
        if weights is None:
            ranges = _ranges(ranges_file, name)
    return HookExtractor(
        model, layers, name=name, input_size=input_size, mean=mean, std=std, tokens=tokens, run=run,
        weights_source=source, weights_sha256=sha, ranges=ranges, channels_last=not tokens,
    )


def _hub(path: str, **hashes: str) -> RemoteFile:
    return RemoteFile(path, repo=HUB_REPO, filename=path, **hashes)


# -- vision transformers ---------------------------------------------------------------------------
def vit_layers(model: nn.Module) -> dict[str, str]:
    """``block_i`` -> each transformer block's output, ``last_norm`` -> the final norm (all tokens)."""
    layers = {f"block_{i}": f"blocks.{i}" for i in range(len(model.blocks))}
    layers["last_norm"] = "norm"
    return layers


def _vit(name: str, architecture: str, pretrained: bool, weights, weights_file, ranges_file, convert, **options) -> HookExtractor:
    timm_options = options.pop("timm_options", {})
    import timm
    model = timm.create_model(architecture, pretrained=False, num_classes=0, **timm_options)
    return _extractor(name, model, vit_layers(model), pretrained=pretrained, weights=weights, weights_file=weights_file,
                      ranges_file=ranges_file, convert=convert, tokens=True, **options)


def _mugs_state(state, model):
    return keep_model_keys(state.get("state_dict", state), model, "Mugs checkpoint")


def _plain_state(state, model):
    return keep_model_keys(state, model)


def mugs_vit_base(pretrained: bool = True, weights=None) -> HookExtractor:
    """Mugs ViT-B/16 (the paper's default): 12 blocks + final norm, 13 x 768 = 9984 neurons, 224x224."""
    return _vit("mugs_vit_base", "vit_base_patch16_224", pretrained, weights, _hub("Mugs/mugs_vit_base/weights.pth"),
                _hub("Mugs/mugs_vit_base/activation_ranges.json"), _mugs_state)


def mugs_vit_large(pretrained: bool = True, weights=None) -> HookExtractor:
    """Mugs ViT-L/16: 24 blocks + final norm, 25 x 1024 = 25600 neurons, 224x224."""
    return _vit("mugs_vit_large", "vit_large_patch16_224", pretrained, weights, _hub("Mugs/mugs_vit_large/weights.pth"),
                _hub("Mugs/mugs_vit_large/activation_ranges.json"), _mugs_state)


def dino_vit_base(pretrained: bool = True, weights=None) -> HookExtractor:
    """DINO ViT-B/16: 13 x 768 = 9984 neurons, 224x224; weights from Meta's DINO release."""
    url = "https://dl.fbaipublicfiles.com/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth"
    return _vit("dino_vit_base", "vit_base_patch16_224", pretrained, weights, RemoteFile("dino_vitbase16_pretrain.pth", url=url),
                _hub("DINO/dino_vit_base/activation_ranges.json"), _plain_state)


def clip_im_vit_b16(pretrained: bool = True, weights=None) -> HookExtractor:
    """CLIP image encoder ViT-B/16 (OpenAI, QuickGELU): 13 x 768 = 9984 neurons, 224x224, CLIP's mean/std."""
    weights_file = RemoteFile("vit_base_patch16_clip_quickgelu_224.openai.safetensors",
                              repo="timm/vit_base_patch16_clip_quickgelu_224.openai", filename="model.safetensors")
    return _vit("clip_im_vit_b16", "vit_base_patch16_clip_quickgelu_224", pretrained, weights, weights_file,
                _hub("CLIP/clip_im_vit_b16/activation_ranges.json"), _plain_state, mean=CLIP_MEAN, std=CLIP_STD)


def _dinov2(size: str, pretrained: bool, weights) -> HookExtractor:
    architecture = f"vit_{size}_patch14_dinov2"
    weights_file = RemoteFile(f"{architecture}.lvd142m.safetensors", repo=f"timm/{architecture}.lvd142m", filename="model.safetensors")
    return _vit(f"dinov2_vit{size[0]}14", architecture, pretrained, weights, weights_file, None, _plain_state,
                timm_options={"img_size": 224})


def dinov2_vits14(pretrained: bool = True, weights=None) -> HookExtractor:
    """DINOv2 ViT-S/14 at 224x224 (256 patches + class token): 13 x 384 = 4992 neurons."""
    return _dinov2("small", pretrained, weights)


def dinov2_vitb14(pretrained: bool = True, weights=None) -> HookExtractor:
    """DINOv2 ViT-B/14 at 224x224: 13 x 768 = 9984 neurons."""
    return _dinov2("base", pretrained, weights)


def dinov2_vitl14(pretrained: bool = True, weights=None) -> HookExtractor:
    """DINOv2 ViT-L/14 at 224x224: 25 x 1024 = 25600 neurons."""
    return _dinov2("large", pretrained, weights)


# -- ResNet-50 -----------------------------------------------------------------------------------------
def resnet_layers(model: nn.Module) -> dict[str, str]:
    """``layerS_B`` -> the output of bottleneck B of stage S: 3 x 256, 4 x 512, 6 x 1024, 3 x 2048 for ResNet-50."""
    return {
        f"layer{stage}_{block}": f"layer{stage}.{block}"
        for stage in range(1, 5)
        for block in range(len(getattr(model, f"layer{stage}")))
    }


def _resnet50(name: str, pretrained: bool, weights, weights_file, ranges_file, convert) -> HookExtractor:
    import timm
    model = timm.create_model("resnet50", pretrained=False, num_classes=0)
    return _extractor(name, model, resnet_layers(model), pretrained=pretrained, weights=weights,
                      weights_file=weights_file, ranges_file=ranges_file, convert=convert)


def dino_resnet50(pretrained: bool = True, weights=None) -> HookExtractor:
    """DINO ResNet-50: the 16 bottleneck outputs, 3x256 + 4x512 + 6x1024 + 3x2048 = 15104 neurons, 224x224."""
    url = "https://dl.fbaipublicfiles.com/dino/dino_resnet50_pretrain/dino_resnet50_pretrain.pth"
    return _resnet50("dino_resnet50", pretrained, weights, RemoteFile("dino_resnet50_pretrain.pth", url=url),
                     _hub("DINO/dino_resnet50/activation_ranges.json"),
                     lambda state, model: keep_model_keys({k.removeprefix("module."): v for k, v in state.items()}, model))


def resnet50(pretrained: bool = True, weights=None) -> HookExtractor:
    """ResNet-50 supervised on ImageNet (torchvision's weights): 15104 neurons, 224x224; no published ranges."""
    url = "https://download.pytorch.org/models/resnet50-0676ba61.pth"
    return _resnet50("resnet50", pretrained, weights, RemoteFile("resnet50-0676ba61.pth", url=url, sha256_prefix="0676ba61"),
                     None, _plain_state)


RANDOM_SEED = 0
RANDOM_RESNET50_SHA256 = "af0a7abdf44a409796810951df3c4c460d95a641371d09b2765e5108ec805876"


def seeded_state(model: nn.Module, seed: int = RANDOM_SEED) -> dict[str, torch.Tensor]:
    """Random weights from ``seed`` that are the same on every machine and torch version.

    The stream is PCG64's raw 64-bit output (numpy guarantees it), mapped to uniforms with integer
    and exact float64 operations only: convolutions and linear layers get He-uniform weights
    (bound ``sqrt(6 / fan_in)``), normalisation layers weight 1 and bias 0, running statistics 0 and 1.
    """
    generator = np.random.PCG64(seed)
    state = {}
    for key, tensor in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros_like(tensor)
        elif key.endswith("running_var") or (key.endswith(".weight") and tensor.ndim == 1):
            state[key] = torch.ones_like(tensor)
        elif key.endswith(("running_mean", ".bias")):
            state[key] = torch.zeros_like(tensor)
        else:
            fan_in = int(np.prod(tensor.shape[1:]))
            raw = generator.random_raw(tensor.numel())
            uniform = (raw >> np.uint64(11)).astype(np.float64) * 2.0**-53
            bound = np.sqrt(6.0 / fan_in)
            state[key] = torch.from_numpy(((uniform * 2.0 - 1.0) * bound).astype(np.float32).reshape(tensor.shape))
    return state


def state_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 over the keys in order and each tensor's little-endian bytes."""
    import hashlib

    digest = hashlib.sha256()
    for key, tensor in state.items():
        digest.update(key.encode())
        values = tensor.detach().cpu().numpy()
        digest.update(values.astype(values.dtype.newbyteorder("<")).tobytes())
    return digest.hexdigest()


def rand_resnet50(pretrained: bool = True, weights=None) -> HookExtractor:
    """ResNet-50 with seeded random weights (the paper's random baseline): no download, the same everywhere."""
    import timm
    model = timm.create_model("resnet50", pretrained=False, num_classes=0)
    if weights is not None:
        return _extractor("rand_resnet50", model, resnet_layers(model), pretrained=True, weights=weights,
                          weights_file=None, ranges_file=None, convert=_plain_state)
    state = seeded_state(model)
    sha = state_sha256(state)
    if sha != RANDOM_RESNET50_SHA256:
        raise RuntimeError(f"rand_resnet50: seeded weights have sha256 {sha}, expected {RANDOM_RESNET50_SHA256}")
    model.load_state_dict(state)
    return HookExtractor(model, resnet_layers(model), name="rand_resnet50", input_size=(224, 224), mean=IMAGENET_MEAN,
                         std=IMAGENET_STD, weights_source=f"seeded random weights (PCG64 seed {RANDOM_SEED})",
                         weights_sha256=sha, ranges=packaged_ranges("rand_resnet50"), channels_last=True)


# -- VGG-16 and the FID Inception ----------------------------------------------------------------------
VGG16_RELUS = [1, 3, 6, 8, 11, 13, 15, 18, 20, 22, 25, 27, 29]


def vgg16(pretrained: bool = True, weights=None) -> HookExtractor:
    """VGG-16 (torchvision, ImageNet): the 13 ReLU outputs, 64+64+128+128+3x256+6x512 = 4224 neurons, 224x224."""
    import torchvision

    model = torchvision.models.vgg16(weights=None)
    names = [f"relu_{block}_{index}" for block, count in enumerate((2, 2, 3, 3, 3), 1) for index in range(1, count + 1)]
    layers = {name: f"features.{position}" for name, position in zip(names, VGG16_RELUS)}
    url = "https://download.pytorch.org/models/vgg16-397923af.pth"
    return _extractor("vgg16", model, layers, pretrained=pretrained, weights=weights,
                      weights_file=RemoteFile("vgg16-397923af.pth", url=url, sha256_prefix="397923af"),
                      ranges_file=_hub("VGG/vgg16/activation_ranges.json"), convert=_plain_state,
                      run=lambda net, x: net.features(x))


def inception(pretrained: bool = True, weights=None) -> HookExtractor:
    """The FID Inception-v3 (pytorch-fid's weights): blocks of 64, 192, 768 and 2048 neurons, 299x299, inputs in [-1, 1].

    ``layer-gaussian`` + ``FD`` on ``block_3`` (the 2048 pooled features) is FID.
    """
    from .inception_fid import fid_inception_v3

    model = fid_inception_v3()
    layers = {"block_0": "maxpool1", "block_1": "maxpool2", "block_2": "Mixed_6e", "block_3": "avgpool"}
    url = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
    return _extractor("inception", model, layers, pretrained=pretrained, weights=weights,
                      weights_file=RemoteFile("pt_inception-2015-12-05-6726825d.pth", url=url, sha256_prefix="6726825d"),
                      ranges_file=_hub("Inception/inception_v3/activation_ranges.json"), convert=_plain_state,
                      input_size=(299, 299), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), run=lambda net, x: net(x))


# -- any timm model ------------------------------------------------------------------------------------
def timm_extractor(
    model_name: str, pretrained: bool = True, weights: str | os.PathLike | None = None, layers=None
) -> HookExtractor:
    """Any timm model as ``timm:<model_name>``: ViTs give their blocks and final norm, other models the
    modules of timm's ``feature_info``, unless ``layers`` (module paths, or ``{name: module path}``) says.

    Pretrained weights are the timm release on the Hugging Face Hub (``model.safetensors``), through
    the same cache and offline errors as every extractor; mean, std and input size come from timm.
    """
    import timm
    from timm.models.vision_transformer import VisionTransformer

    try:
        model = timm.create_model(model_name, pretrained=False, num_classes=0)
    except RuntimeError as error:
        raise ValueError(f"timm has no model {model_name!r} ({error})") from None
    tokens = isinstance(model, VisionTransformer)
    if layers is None:
        layers = vit_layers(model) if tokens else {info["module"]: info["module"] for info in model.feature_info}
    elif not isinstance(layers, Mapping):
        layers = {path: path for path in layers}
    config = model.pretrained_cfg or {}
    hub_id = config.get("hf_hub_id")
    weights_file = RemoteFile(f"{hub_id}.safetensors", repo=hub_id, filename="model.safetensors") if hub_id else None
    return _extractor(
        TIMM_PREFIX + model_name, model, layers, pretrained=pretrained, weights=weights, weights_file=weights_file,
        ranges_file=None, convert=_plain_state, input_size=tuple(config.get("input_size", (3, 224, 224))[1:]),
        mean=tuple(config.get("mean", IMAGENET_MEAN)), std=tuple(config.get("std", IMAGENET_STD)), tokens=tokens,
    )


__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "RANDOM_RESNET50_SHA256",
    "clip_im_vit_b16",
    "dino_resnet50",
    "dino_vit_base",
    "dinov2_vitb14",
    "dinov2_vitl14",
    "dinov2_vits14",
    "inception",
    "mugs_vit_base",
    "mugs_vit_large",
    "rand_resnet50",
    "resnet50",
    "timm_extractor",
    "vgg16",
    "vit_layers",
]
