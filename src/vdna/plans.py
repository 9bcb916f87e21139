"""Forward plans: how many images go through the network at once, and in how many streams.

A run that sets neither ``forward_batch_size`` nor ``streams`` takes its extractor's plan: on the
CPU the fastest measured here (``vdna plan IMAGES --extractor NAME --save`` measures it on this machine and
keeps it in the cache folder, which runs then prefer); on CUDA batches of ``batch_size``. Every
plan is exact: DNAs made with one plan are identical, bit for bit, whatever the batch size, the
number of images and the number of streams (each stream runs images one at a time).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from .config import RunConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ForwardPlan:
    """Images per forward pass, and streams running the network side by side (one thread each, CPU)."""

    forward_batch_size: int = 1
    streams: int = 1

    def __str__(self) -> str:
        if self.streams > 1:
            return f"{self.streams} streams of one image at a time"
        return "one image at a time" if self.forward_batch_size == 1 else f"forward batches of {self.forward_batch_size}"


_STREAMS = ForwardPlan(streams=2)
RECORDED_CPU_PLANS: dict[str, ForwardPlan] = {
    name: _STREAMS
    for name in ("efficientnet_lite0", "inception", "resnet50", "rand_resnet50", "dino_resnet50", "vgg16",
                 "dino_vit_base", "mugs_vit_base", "clip_im_vit_b16", "dinov2_vits14", "dinov2_vitb14")
}
"""The fastest plans measured on a 2-core CPU (``benchmarks/plans.py``, ``benchmarks/peers.py``): one stream per
core for every network measured (each family by one of its members: the ResNet-50s, the ViT-B/16s), capped by
the cores a run may use. The ViT-Ls, not measured, run one image at a time until ``vdna plan`` measures them on
the machine at hand."""

PLANS_FILE = "plans.json"


def plan_key(extractor: str, device: torch.device, cores: int) -> str:
    """What a measured plan holds for: the extractor, the device, the cores and torch's version."""
    import torch

    return f"{extractor} on {device.type} with {cores} cores, torch {torch.__version__}"


def _plans_path() -> Path:
    from .extractors.weights import cache_dir

    return cache_dir() / PLANS_FILE


def _document(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def saved_plans() -> dict[str, ForwardPlan]:
    """The plans measured on this machine (``vdna plan --save``), by :func:`plan_key`."""
    path = _plans_path()
    try:
        return {key: ForwardPlan(**value["plan"]) for key, value in _document(path).items()}
    except FileNotFoundError:
        return {}
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        logger.warning("ignoring %s: not a file of measured plans (%s)", path, error)
        return {}


def save_plan(key: str, plan: ForwardPlan, timings: Sequence[tuple[ForwardPlan, float]]) -> Path:
    """Keep ``plan`` (and what was measured) for runs of ``key``; returns the file written."""
    from ._files import atomic_write_bytes

    path = _plans_path()
    try:
        document = _document(path)
    except (FileNotFoundError, ValueError):
        document = {}
    document[key] = {
        "plan": asdict(plan),
        "images_per_second": {str(candidate): round(speed, 3) for candidate, speed in timings},
    }
    atomic_write_bytes(path, json.dumps(document, indent=1, sort_keys=True).encode())
    return path


def resolve_plan(config: RunConfig, extractor: str, device: torch.device, cores: int) -> ForwardPlan:
    """The plan a run of ``config`` uses: the settings given, else the extractor's (measured here, else recorded)."""
    if device.type != "cpu":
        return ForwardPlan(config.forward_batch_size or config.batch_size, 1)
    if config.forward_batch_size is not None or config.streams is not None:
        return ForwardPlan(config.forward_batch_size or 1, config.streams or 1)
    plan = saved_plans().get(plan_key(extractor, device, cores)) or RECORDED_CPU_PLANS.get(extractor, ForwardPlan())
    return ForwardPlan(plan.forward_batch_size, max(1, min(plan.streams, cores)))


def candidate_plans(cores: int, batches: Sequence[int] = (1, 4, 8, 16)) -> list[ForwardPlan]:
    """The plans :meth:`vdna.VDNAProcessor.measure_plans` tries: forward batches on all cores, and one stream per core."""
    return [ForwardPlan(size) for size in batches] + ([ForwardPlan(1, cores)] if cores > 1 else [])


__all__ = [
    "RECORDED_CPU_PLANS",
    "ForwardPlan",
    "candidate_plans",
    "plan_key",
    "resolve_plan",
    "save_plan",
    "saved_plans",
]
