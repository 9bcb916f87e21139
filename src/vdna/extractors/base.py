"""The extractor contract: a frozen network plus the facts about it.

``forward(images)`` returns one tensor per layer, shaped ``(batch, neurons, positions)``: spatial
maps are flattened, ViT tokens are positions (appendix A.1.2 of the paper).
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from ..config import option
from ..kernels import prefers_neuron_major
from ..ranges import ActivationRanges


@dataclass(frozen=True)
class ExtractorInfo:
    """Facts about an extractor: its input, its layers and where its weights and ranges come from."""

    name: str
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    layers: Mapping[str, int]
    interpolation: str = "bicubic"
    weights_source: str = "random initialisation"
    weights_sha256: str | None = None
    ranges: ActivationRanges | None = field(default=None, repr=False)
    grids: Mapping[str, tuple[int, int]] = field(default_factory=dict, repr=False)
    """Where each layer's positions lie on the input: ``(rows, columns)`` of its spatial map, or of a ViT's
    patches (then the positions are any class or register tokens first, then the patches row by row);
    a layer missing here has positions that are not known to lie on a grid."""
    tokens: bool = False
    """Whether positions are ViT tokens (each a patch of the input) rather than cells of convolutional maps."""

    @property
    def num_neurons(self) -> int:
        """Neurons over all layers."""
        return sum(self.layers.values())


class Extractor(nn.Module):
    """A frozen network returning ``{layer: (batch, neurons, positions)}`` activations.

    ``concurrent_calls``: whether several threads may call one instance at once (streams then
    share it; otherwise each stream gets its own copy).
    """

    info: ExtractorInfo
    concurrent_calls: bool = False

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:  # pragma: no cover - interface
        raise NotImplementedError


def _calling_thread() -> int:
    # torch.compile cannot trace get_ident; streams give each compiled extractor a copy of its own.
    return 0 if torch.compiler.is_compiling() else threading.get_ident()


def _as_neurons_by_positions(output: torch.Tensor, tokens: bool) -> torch.Tensor:
    if tokens:
        return output.transpose(1, 2)
    return output.flatten(2) if output.ndim > 3 else output.reshape(output.shape[0], output.shape[1], -1)


def _map_grids(outputs: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, int]]:
    """Rows and columns of the positions of ``(batch, channels, rows, columns)`` maps; pooled ``(batch, channels)`` is one cell."""
    return {
        layer: (int(output.shape[2]), int(output.shape[3])) if output.ndim == 4 else (1, 1)
        for layer, output in outputs.items() if output.ndim in (2, 4)
    }


class HookExtractor(Extractor):
    """Activations of named submodules of a model, captured with forward hooks.

    ``layers`` maps each layer name to a submodule path of ``model``. ``run`` calls the model
    (by default ``model.forward_features`` where it exists) far enough to reach every hooked module.
    ``tokens=True`` marks ``(batch, tokens, channels)`` outputs (ViT); otherwise outputs are
    ``(batch, channels, ...)``. ``channels_last=True`` runs a convolutional model in the
    channels-last memory format (faster on CPUs); the outputs keep their logical shapes.
    Where the first hooked layers have so many positions that the histogram kernels bin them
    faster neuron by neuron (:func:`vdna.kernels.prefers_neuron_major`), the part of the network
    up to them runs in the default (channels-first) format instead, unless ``neuron_major_stem``
    is False. Each calling thread's activations are captured apart, so threads may share one
    instance.
    """

    concurrent_calls = True

    def __init__(
        self,
        model: nn.Module,
        layers: Mapping[str, str],
        *,
        name: str,
        input_size: tuple[int, int],
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        tokens: bool = False,
        run: Callable[[nn.Module, torch.Tensor], object] | None = None,
        weights_source: str = "random initialisation",
        weights_sha256: str | None = None,
        ranges: ActivationRanges | None = None,
        interpolation: str = "bicubic",
        channels_last: bool = False,
        neuron_major_stem: bool = True,
    ):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        modules = dict(self.model.named_modules())
        self._memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self._module_paths = dict(layers)
        self._tokens = tokens
        self._run = run or (lambda net, x: net.forward_features(x) if hasattr(net, "forward_features") else net(x))
        self._captured: dict[int, dict[str, torch.Tensor]] = {}  # by calling thread
        for layer, path in self._module_paths.items():
            if path not in modules:
                raise ValueError(f"extractor {name}: model has no submodule {path!r} for layer {layer!r}")
            modules[path].register_forward_hook(functools.partial(self._capture, layer))  # copies hook their copy
        if channels_last and neuron_major_stem:
            self._run_stem_channels_first(input_size)
        neurons, grids = self._probe_layers(input_size)
        self.info = ExtractorInfo(
            name=name,
            input_size=tuple(input_size),
            mean=tuple(mean),
            std=tuple(std),
            layers=neurons,
            interpolation=interpolation,
            weights_source=weights_source,
            weights_sha256=weights_sha256,
            ranges=ranges,
            grids=grids,
            tokens=tokens,
        )
        if ranges is not None:
            check_ranges_match(ranges, self.info)

    def _capture(self, layer: str, module: nn.Module, inputs: object, output: object) -> None:
        captured = self._captured.get(_calling_thread())
        if captured is not None:  # the model may also be called by itself, outside forward
            captured[layer] = output[0] if isinstance(output, (tuple, list)) else output

    @torch.inference_mode()
    def _probe(self, input_size: tuple[int, int]) -> dict[str, torch.Tensor]:
        """The layers' outputs for one blank image, as the model gives them (not flattened)."""
        parameter = next(self.model.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        return self._outputs(torch.zeros((1, 3, *input_size), device=device))

    def _probe_layers(self, input_size: tuple[int, int]) -> tuple[dict[str, int], dict[str, tuple[int, int]]]:
        """Neurons per layer, and the grid each layer's positions lie on."""
        outputs = self._probe(input_size)
        neurons = {layer: int(_as_neurons_by_positions(outputs[layer], self._tokens).shape[1]) for layer in self._module_paths}
        if self._tokens:  # the patch grid of a timm ViT; other token models leave it unknown
            grid = getattr(getattr(self.model, "patch_embed", None), "grid_size", None)
            grids = {} if grid is None else {
                layer: (int(grid[0]), int(grid[1])) for layer in self._module_paths if outputs[layer].shape[1] >= grid[0] * grid[1]
            }
        else:
            grids = _map_grids({layer: outputs[layer] for layer in self._module_paths})
        return neurons, grids

    def _run_stem_channels_first(self, input_size: tuple[int, int]) -> None:
        """Run channels-first the modules up to the last of the leading layers the kernels bin neuron by neuron."""
        started: list[nn.Module] = []  # modules without submodules, in the order they run
        ends: dict[str, int] = {}  # hooked layer -> modules started when its output came

        def starts(module: nn.Module, inputs: object) -> None:
            started.append(module)

        def ended(layer: str) -> Callable:
            def hook(module: nn.Module, inputs: object, output: object) -> None:
                ends.setdefault(layer, len(started))

            return hook

        modules = dict(self.model.named_modules())
        handles = [
            module.register_forward_pre_hook(starts) for module in modules.values() if next(module.children(), None) is None
        ]
        handles += [modules[path].register_forward_hook(ended(layer)) for layer, path in self._module_paths.items()]
        try:
            outputs = self._probe(input_size)
        finally:
            for handle in handles:
                handle.remove()
        positions = {layer: _as_neurons_by_positions(output, self._tokens).shape[2] for layer, output in outputs.items()}
        stem = list(itertools.takewhile(
            lambda layer: prefers_neuron_major(positions[layer]), sorted(ends, key=ends.__getitem__)
        ))
        if stem:
            for module in started[: ends[stem[-1]]]:
                module.to(memory_format=torch.contiguous_format)
            self._memory_format = torch.contiguous_format

    def _outputs(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The hooked modules' outputs for ``images``, as the model gives them."""
        thread = _calling_thread()
        self._captured[thread] = {}
        try:
            self._run(self.model, images.contiguous(memory_format=self._memory_format))
        finally:
            captured = self._captured.pop(thread)
        missing = [layer for layer in self._module_paths if layer not in captured]
        if missing:
            raise RuntimeError(f"extractor {getattr(self, 'info', None) and self.info.name}: layers not reached: {missing}")
        return captured

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        captured = self._outputs(images)
        return {
            layer: _as_neurons_by_positions(captured[layer], self._tokens) for layer in self._module_paths
        }


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The device to run on: ``None`` means CUDA when available, else the CPU; a device that is not here is refused."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"{option('device')} {device!r} is not a device; use e.g. cpu, cuda or cuda:1") from None
    if resolved.type == "cuda":
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if available == 0:
            raise ValueError(f"{option('device')} {device!r}: CUDA is not available here (no GPU, or a torch without CUDA); use cpu")
        if resolved.index is not None and resolved.index >= available:
            raise ValueError(f"{option('device')} {device!r}: this machine has {available} CUDA device(s)")
    elif resolved.type not in ("cpu", "mps", "xpu", "meta"):
        raise ValueError(f"{option('device')} {device!r}: DNAs are made on cpu or cuda")
    return resolved


def check_ranges_match(ranges: ActivationRanges, info: ExtractorInfo) -> None:
    """Raise ``ValueError`` unless ``ranges`` cover exactly the extractor's layers and neurons."""
    if dict(ranges.neurons_list) != dict(info.layers):
        theirs = ", ".join(f"{k}: {v}" for k, v in ranges.neurons_list.items())
        ours = ", ".join(f"{k}: {v}" for k, v in info.layers.items())
        raise ValueError(
            f"activation ranges do not match extractor {info.name}: ranges have layers {{{theirs}}}, "
            f"the extractor {{{ours}}}"
        )


__all__ = [
    "Extractor",
    "ExtractorInfo",
    "HookExtractor",
    "check_ranges_match",
    "resolve_device",
]
