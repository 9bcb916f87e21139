"""The running state of an accumulator, declared once: what each piece is, how it starts, how two merge.

An accumulator declares its states as torchmetrics' ``add_state`` does (a name, an initial value
and a reduction), one value per layer. Merging two accumulators, saving and resuming a run's
checkpoint and the training-loop metric's states (:class:`vdna.metrics.DNAMetric`, reduced
across processes) all derive from these declarations:

- :data:`SUM`: tensors added (histogram counts): exact;
- :data:`MIN`, :data:`MAX`: elementwise extremes (activation ranges): exact;
- :data:`CAT`: lists of tensors, concatenated in order (per-image DNAs);
- :class:`Moments`: a float64 vector ``[count, mean, sum of squared deviations (or of cross
  products)]`` per layer, merged with Chan et al.'s formula (Gaussians).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

StateValue = Any
"""A state's value for one layer: a tensor, or a list of tensors for :data:`CAT`."""


class Reduction:
    """How two values of a state merge, and how torchmetrics reduces the values of several processes.

    :meth:`merge` returns the merged value (the first may be updated in place);
    :attr:`across_processes` is torchmetrics' ``dist_reduce_fx``.
    """

    name = ""
    across_processes: str | Callable[[torch.Tensor], torch.Tensor] = ""

    def merge(self, mine: StateValue, theirs: StateValue) -> StateValue:
        raise NotImplementedError

    def stored(self, value: StateValue) -> torch.Tensor:
        """The value as one tensor, for a file."""
        return value

    def restored(self, stored: torch.Tensor) -> StateValue:
        """The value from :meth:`stored`'s tensor."""
        return stored

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class _Elementwise(Reduction):
    def __init__(self, name: str, operation: Callable[..., torch.Tensor]):
        self.name = self.across_processes = name
        self._operation = operation

    def merge(self, mine: torch.Tensor, theirs: torch.Tensor) -> torch.Tensor:
        return self._operation(mine, theirs.to(mine.device), out=mine)


class _Concatenation(Reduction):
    name = across_processes = "cat"

    def merge(self, mine: list[torch.Tensor], theirs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        mine.extend(theirs)
        return mine

    def stored(self, value: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(value) if value else torch.zeros(0)

    def restored(self, stored: torch.Tensor) -> list[torch.Tensor]:
        return [stored] if stored.numel() else []


SUM = _Elementwise("sum", torch.add)
MIN = _Elementwise("min", torch.minimum)
MAX = _Elementwise("max", torch.maximum)
CAT = _Concatenation()


def moments_size(neurons: int, full: bool) -> int:
    """Length of a packed moments vector of ``neurons``: count, mean, then variances or the covariance's cross products."""
    return 1 + neurons + (neurons * neurons if full else neurons)


def unpacked(packed: torch.Tensor, neurons: int, full: bool) -> tuple[int, torch.Tensor, torch.Tensor]:
    """``(count, mean, m2)`` of a packed moments vector; ``mean`` and ``m2`` are views into it."""
    m2 = packed[1 + neurons :]
    return int(packed[0]), packed[1 : 1 + neurons], m2.view(neurons, neurons) if full else m2


def sample_moments(samples: torch.Tensor, full: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and sum of squared deviations (or cross products, if ``full``) of ``(count, neurons)`` float64 samples."""
    mean = samples.mean(dim=0)
    centred = samples - mean
    m2 = centred.T @ centred if full else (centred * centred).sum(dim=0)
    return mean, m2


def combine_moments(
    count_a: int, mean_a: torch.Tensor, m2_a: torch.Tensor, count_b: int, mean_b: torch.Tensor, m2_b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and sum of squared deviations (vector, or matrix of cross products) of two merged samples (new tensors)."""
    mean, m2 = mean_a.clone(), m2_a.clone()
    add_moments(count_a, mean, m2, count_b, mean_b, m2_b)
    return mean, m2


def add_moments(
    count_a: int, mean_a: torch.Tensor, m2_a: torch.Tensor, count_b: int, mean_b: torch.Tensor, m2_b: torch.Tensor
) -> None:
    """Chan et al.'s merge of sample B's moments into sample A's, in place (``mean_a``, ``m2_a``)."""
    if count_b == 0:
        return
    if count_a == 0:
        mean_a.copy_(mean_b)
        m2_a.copy_(m2_b)
        return
    total = count_a + count_b
    delta = mean_b - mean_a
    spread = torch.outer(delta, delta) if m2_a.ndim == 2 else delta * delta
    mean_a.add_(delta * (count_b / total))
    m2_a.add_(m2_b).add_(spread * (count_a * count_b / total))


class Moments(Reduction):
    """Packed ``[count, mean (neurons), m2 (neurons, or neurons² if full)]`` float64 vectors, merged with Chan's formula.

    Counts are exact in float64 up to 2**53 images.
    """

    name = "moments"

    def __init__(self, neurons: int, full: bool):
        self.neurons, self.full = neurons, full
        self.across_processes = self._reduce_stacked

    def merge(self, mine: torch.Tensor, theirs: torch.Tensor) -> torch.Tensor:
        count_a, mean_a, m2_a = unpacked(mine, self.neurons, self.full)
        count_b, mean_b, m2_b = unpacked(theirs.to(mine.device), self.neurons, self.full)
        add_moments(count_a, mean_a, m2_a, count_b, mean_b, m2_b)
        mine[0] = count_a + count_b
        return mine

    def add_samples(self, packed: torch.Tensor, samples: torch.Tensor) -> None:
        """Merge ``(count, neurons)`` float64 samples into the packed vector, in place."""
        count, mean, m2 = unpacked(packed, self.neurons, self.full)
        batch_mean, batch_m2 = sample_moments(samples, self.full)
        add_moments(count, mean, m2, samples.shape[0], batch_mean, batch_m2)
        packed[0] = count + samples.shape[0]

    def _reduce_stacked(self, stacked: torch.Tensor) -> torch.Tensor:
        rows = stacked.reshape(-1, stacked.shape[-1])
        merged = rows[0].clone()
        for row in rows[1:]:
            self.merge(merged, row)
        return merged


@dataclass(frozen=True)
class State:
    """One running state of an accumulator: one value per layer, made by ``initial(neurons, parameters, device)``
    (``parameters``: the distribution's, e.g. its bins), merged by ``reduction``.

    ``reduction`` may depend on the layer's neurons (:class:`Moments`): then it is a function of them.
    """

    name: str
    initial: Callable[[int, dict[str, Any], torch.device], StateValue]
    reduction: Reduction | Callable[[int], Reduction]

    def reduction_for(self, neurons: int) -> Reduction:
        """The reduction of a layer of ``neurons`` neurons."""
        return self.reduction if isinstance(self.reduction, Reduction) else self.reduction(neurons)


def state_key(state: str, layer_index: int) -> str:
    """The name of a state's value for the layer at ``layer_index`` (in files and in a metric's states)."""
    return f"{state}_{layer_index}"


__all__ = [
    "CAT",
    "MAX",
    "MIN",
    "SUM",
    "Moments",
    "Reduction",
    "State",
    "add_moments",
    "combine_moments",
    "moments_size",
    "sample_moments",
    "state_key",
    "unpacked",
]
