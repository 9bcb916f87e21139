"""Per-neuron histograms of activations, in one pass, with one exact bin rule on every device.

The rule: edges ``b_k = linspace(low, high, bins + 1)`` in float64; a value ``v`` (clamped into
``[low, high]``) falls in bin ``k`` when ``b_k <= v < b_{k+1}``, and the last bin is closed. This is
``numpy.histogram``'s rule, so ``numpy.histogram`` is the reference the kernels are tested against.
The bin index is estimated arithmetically, then corrected against the edges, so a value lying on
an edge lands in the same single bin on every path and for every batch split.

Activations may be normalised on the fly, per neuron, as ``(a - centre) / half_width`` in float64
(eq. 9-11 of the paper), which fuses the normalisation into the histogram pass.
"""

from __future__ import annotations

import numba
import numpy as np
import torch


def bin_edges(bins: int, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    """The float64 bin edges of the rule above."""
    return np.linspace(low, high, bins + 1, dtype=np.float64)


@numba.njit(parallel=True, cache=True, nogil=True)
def _histogram_cpu(x, centre, half_width, edges, out):  # pragma: no cover - compiled
    batch, neurons, positions = x.shape
    bins = out.shape[1]
    low = edges[0]
    high = edges[bins]
    scale = bins / (high - low)
    nans = np.zeros(neurons, dtype=np.int64)
    for n in numba.prange(neurons):
        c = centre[n]
        h = half_width[n]
        row = out[n]
        for b in range(batch):
            for p in range(positions):
                v = (np.float64(x[b, n, p]) - c) / h
                if v != v:
                    nans[n] += 1
                    continue
                if v < low:
                    v = low
                elif v > high:
                    v = high
                k = int((v - low) * scale)
                if k >= bins:
                    k = bins - 1
                if v < edges[k]:
                    k -= 1
                elif k < bins - 1 and v >= edges[k + 1]:
                    k += 1
                row[k] += 1
    return nans


def _histogram_torch(
    x: torch.Tensor, centre: torch.Tensor, half_width: torch.Tensor, edges: torch.Tensor, out: torch.Tensor
) -> int:
    bins = out.shape[1]
    low, high = float(edges[0]), float(edges[-1])
    values = (x.to(torch.float64) - centre.view(1, -1, 1)) / half_width.view(1, -1, 1)
    nan_count = int(torch.isnan(values).sum())
    if nan_count:
        return nan_count
    values.clamp_(low, high)
    index = ((values - low) * (bins / (high - low))).to(torch.int64).clamp_(max=bins - 1)
    index -= (values < edges[index]).to(torch.int64)
    index += ((values >= edges[(index + 1).clamp_(max=bins)]) & (index < bins - 1)).to(torch.int64)
    offsets = torch.arange(out.shape[0], device=x.device, dtype=torch.int64).view(1, -1, 1) * bins
    out += torch.bincount((index + offsets).flatten(), minlength=out.numel()).view_as(out)
    return 0


def accumulate_histograms(
    activations: torch.Tensor,
    out: torch.Tensor,
    centre: torch.Tensor | None = None,
    half_width: torch.Tensor | None = None,
    low: float = -1.0,
    high: float = 1.0,
) -> int:
    """Add the per-neuron histograms of ``activations`` ``(batch, neurons, positions)`` into ``out``.

    ``out`` is an int64 ``(neurons, bins)`` tensor on the activations' device. With ``centre`` and
    ``half_width`` (float64, one per neuron) the activations are normalised first. Returns the
    number of NaN values met (NaNs are not counted in any bin).
    """
    if activations.ndim != 3:
        raise ValueError(f"activations must be (batch, neurons, positions), got shape {tuple(activations.shape)}")
    neurons, bins = out.shape
    if activations.shape[1] != neurons:
        raise ValueError(f"activations have {activations.shape[1]} neurons, the histograms {neurons}")
    if out.dtype != torch.int64:
        raise TypeError(f"histograms must be int64, got {out.dtype}")
    if centre is None or half_width is None:
        centre = torch.zeros(neurons, dtype=torch.float64, device=activations.device)
        half_width = torch.ones(neurons, dtype=torch.float64, device=activations.device)
    edges = bin_edges(bins, low, high)
    if activations.device.type == "cpu":
        values = activations.detach()
        if values.dtype not in (torch.float32, torch.float64):
            values = values.to(torch.float32)
        nans = _histogram_cpu(values.numpy(), centre.numpy(), half_width.numpy(), edges, out.numpy())
        return int(nans.sum())
    return _histogram_torch(
        activations.detach(), centre, half_width, torch.from_numpy(edges).to(activations.device), out
    )


def histogram_per_neuron(
    activations: torch.Tensor, bins: int, low: float = -1.0, high: float = 1.0
) -> torch.Tensor:
    """Histograms ``(neurons, bins)`` int64 of already-normalised ``(batch, neurons, positions)`` activations.

    Values are clamped into ``[low, high]``; bins are ``[b_k, b_{k+1})`` with the last bin closed.
    NaN values raise ``ValueError``.
    """
    if bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins}")
    if not low < high:
        raise ValueError(f"low must be below high, got low={low}, high={high}")
    out = torch.zeros((activations.shape[1], bins), dtype=torch.int64, device=activations.device)
    nans = accumulate_histograms(activations, out, low=low, high=high)
    if nans:
        raise ValueError(f"activations contain {nans} NaN value(s)")
    return out
