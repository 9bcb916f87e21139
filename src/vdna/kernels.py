"""Per-neuron histograms of activations, in one pass, with one exact bin rule on every device.

The rule: edges ``e_k = linspace(low, high, bins + 1)`` in float64; a value ``v`` (clamped into
``[low, high]``) falls in bin ``k`` when ``e_k <= v < e_{k+1}``, and the last bin is closed. This is
``numpy.histogram``'s rule, so ``numpy.histogram`` is the reference the kernels are tested against.
Activations may be normalised on the fly, per neuron, as ``v = (a - centre) / half_width`` computed
in float64 from the float32 activation ``a`` (eq. 9-11 of the paper).

Since ``a -> v`` is monotone, bin ``k`` starts at a float32 threshold ``T_k``, the smallest float32
``a`` whose ``v`` reaches ``e_k``. The thresholds are found once per neuron (exactly, by stepping
between adjacent float32 values), after which binning a float32 activation needs no float64
arithmetic at all: its bin is the number of thresholds it reaches, estimated arithmetically and
corrected against the thresholds only where the estimate could be wrong (within a proven margin of
a bin boundary). CPU (a compiled single pass, in parallel over neurons) and CUDA
(``searchsorted`` on the thresholds, then one ``bincount``) give the same counts as the float64
definition, bit for bit, whatever the batch split.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numba
import numpy as np
import torch


def bin_edges(bins: int, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    """The float64 bin edges of the rule above."""
    return np.linspace(low, high, bins + 1, dtype=np.float64)


def _reaches(candidate: np.ndarray, centre: np.ndarray, half_width: np.ndarray, edge: np.ndarray) -> np.ndarray:
    return (candidate.astype(np.float64) - centre) / half_width >= edge


def float32_thresholds(
    centre: np.ndarray, half_width: np.ndarray, bins: int, low: float = -1.0, high: float = 1.0
) -> np.ndarray:
    """``(neurons, bins - 1)`` float32: ``T[n, k-1]`` is the smallest float32 ``a`` with ``(a - c_n) / h_n >= e_k``."""
    centre = np.asarray(centre, dtype=np.float64)[:, None]
    half_width = np.asarray(half_width, dtype=np.float64)[:, None]
    edges = bin_edges(bins, low, high)[None, 1:-1]
    with np.errstate(over="ignore"):
        thresholds = (centre + edges * half_width).astype(np.float32)
    # The rounded guess is within a few float32 steps of the exact threshold: step until exact.
    for _ in range(64):
        too_high = _reaches(np.nextafter(thresholds, np.float32(-np.inf)), centre, half_width, edges)
        too_low = ~_reaches(thresholds, centre, half_width, edges)
        if not (too_high.any() or too_low.any()):
            return thresholds
        thresholds = np.where(too_high, np.nextafter(thresholds, np.float32(-np.inf)), thresholds)
        thresholds = np.where(too_low, np.nextafter(thresholds, np.float32(np.inf)), thresholds)
    raise ArithmeticError("bin thresholds did not converge; are the activation ranges finite?")


def _guess(activations: np.ndarray, offset: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The kernels' arithmetic estimate of the bin, in float32, before clamping."""
    return (activations - offset[:, None]) * scale[:, None]


def guess_margin(thresholds: np.ndarray, offset: np.ndarray, scale: np.ndarray) -> np.float32:
    """How far (in bins) the arithmetic estimate can stray from an integer boundary of the true bin.

    Bin ``k`` holds ``[T_k, T_{k+1})`` and the estimate is monotone, so over that bin it lies in
    ``[guess(T_k), guess(just below T_{k+1})]``. An estimate further than the margin from an
    integer is therefore certainly in the right bin; closer ones are checked against thresholds.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        opening = _guess(thresholds[:, 1:-1], offset, scale) - np.arange(1, thresholds.shape[1] - 1, dtype=np.float32)
        below = np.nextafter(thresholds[:, 1:-1], np.float32(-np.inf))
        closing = _guess(below, offset, scale) - np.arange(1, thresholds.shape[1] - 1, dtype=np.float32)
    worst = max(float(np.max(-opening, initial=0.0)), float(np.max(closing, initial=0.0)))
    if not np.isfinite(worst) or worst >= 0.25:
        return np.float32(0.5)  # no estimate is trusted: every value is checked
    return np.float32(worst * 2 + 1e-4)


@dataclass(frozen=True)
class Binning:
    """Everything a kernel needs to bin one layer: per-neuron thresholds and the arithmetic estimate."""

    bins: int
    thresholds: torch.Tensor  # (neurons or 1, bins + 1) float32: -inf, T_1 .. T_{bins-1}, +inf
    offset: torch.Tensor  # (neurons or 1,) float32: activation at the low end of the range
    scale: torch.Tensor  # (neurons or 1,) float32: bins per unit of activation
    margin: float  # estimates within this distance of an integer are checked against thresholds

    @classmethod
    def create(
        cls,
        centre: np.ndarray,
        half_width: np.ndarray,
        bins: int,
        low: float = -1.0,
        high: float = 1.0,
        device: torch.device | str = "cpu",
    ) -> Binning:
        """Binning of activations normalised by ``(a - centre) / half_width`` (float64 arrays, one per neuron)."""
        if bins < 2:
            raise ValueError(f"a histogram needs at least 2 bins, got {bins}")
        centre = np.asarray(centre, dtype=np.float64)
        half_width = np.asarray(half_width, dtype=np.float64)
        if np.any(half_width <= 0) or not np.all(np.isfinite(centre)) or not np.all(np.isfinite(half_width)):
            raise ValueError("normalisation needs finite centres and positive, finite half widths")
        offset = (centre + low * half_width).astype(np.float32)
        with np.errstate(over="ignore"):
            scale = np.minimum(bins / ((high - low) * half_width), np.finfo(np.float32).max).astype(np.float32)
        sentinel = np.full((len(centre), 1), np.inf, dtype=np.float32)
        thresholds = np.concatenate([-sentinel, float32_thresholds(centre, half_width, bins, low, high), sentinel], 1)
        return cls(
            bins,
            torch.from_numpy(thresholds).to(device),
            torch.from_numpy(offset).to(device),
            torch.from_numpy(scale).to(device),
            float(guess_margin(thresholds, offset, scale)),
        )

    def to(self, device: torch.device | str) -> Binning:
        """This binning on ``device``."""
        return Binning(self.bins, self.thresholds.to(device), self.offset.to(device), self.scale.to(device), self.margin)


@numba.njit(inline="always", boundscheck=False)
def _settled_bin(a, thresholds, low, per_unit, last):  # pragma: no cover - compiled
    guess = (a - low) * per_unit
    k = 0 if not guess > 0 else (np.int64(last) if not guess < last else np.int64(guess))
    while a < thresholds[k]:
        k -= 1
    while a >= thresholds[k + 1]:
        k += 1
    return k


@numba.njit(parallel=True, cache=True, nogil=True, boundscheck=False, error_model="numpy")
def _histogram_cpu(x, thresholds, offset, scale, margin, workers, out):  # pragma: no cover - compiled
    batch, neurons, positions = x.shape
    bins = out.shape[1]
    last = np.float32(bins - 1)
    near_low = np.float32(margin)
    near_high = np.float32(1.0) - np.float32(margin)
    row_step = 0 if thresholds.shape[0] == 1 else 1
    nans = np.zeros(neurons, dtype=np.int64)
    workers = max(1, min(workers, neurons))
    share = (neurons + workers - 1) // workers
    for worker in numba.prange(workers):
        certain = np.empty(positions, dtype=np.int32)  # one buffer per worker, not per neuron
        for n in range(worker * share, min(neurons, (worker + 1) * share)):
            row = n * row_step
            t = thresholds[row]
            low = offset[row]
            per_unit = scale[row]
            counts = out[n]
            missing = 0
            for b in range(batch):
                values = x[b, n]
                for p in range(positions):  # branch-free, vectorised: the estimate, or -1 where unsure
                    guess = (values[p] - low) * per_unit
                    guess = guess if guess > np.float32(0.0) else np.float32(0.0)
                    guess = guess if guess < last else last
                    k = np.int32(guess)
                    fraction = guess - np.float32(k)
                    certain[p] = k if (fraction > near_low and fraction < near_high) else -1
                for p in range(positions):
                    k = certain[p]
                    if k < 0:
                        a = values[p]
                        if a != a:
                            missing += 1
                            continue
                        k = _settled_bin(a, t, low, per_unit, last)
                    counts[k] += 1
            nans[n] = missing
    return nans


@numba.njit(parallel=True, cache=True, nogil=True)
def _histogram_float64_cpu(x, edges, out):  # pragma: no cover - compiled
    batch, neurons, positions = x.shape
    bins = out.shape[1]
    low, high = edges[0], edges[bins]
    scale = bins / (high - low)
    nans = np.zeros(neurons, dtype=np.int64)
    for n in numba.prange(neurons):
        for b in range(batch):
            for p in range(positions):
                v = x[b, n, p]
                if v != v:
                    nans[n] += 1
                    continue
                v = min(max(v, low), high)
                k = min(int((v - low) * scale), bins - 1)
                if v < edges[k]:
                    k -= 1
                elif k < bins - 1 and v >= edges[k + 1]:
                    k += 1
                out[n, k] += 1
    return nans


def _histogram_searchsorted(x: torch.Tensor, binning: Binning, out: torch.Tensor) -> int:
    nan_count = int(torch.isnan(x).sum())
    if nan_count:
        return nan_count
    neurons = x.shape[1]
    values = x.transpose(0, 1).reshape(neurons, -1)
    thresholds = binning.thresholds[:, 1:-1].expand(neurons, -1).contiguous()
    index = torch.searchsorted(thresholds, values.contiguous(), right=True)
    offsets = torch.arange(neurons, device=x.device, dtype=torch.int64).view(-1, 1) * binning.bins
    out += torch.bincount((index + offsets).flatten(), minlength=out.numel()).view_as(out)
    return 0


@contextlib.contextmanager
def torch_threads() -> Iterator[None]:
    """Run compiled (numba) code on as many threads as torch uses, and leave torch's thread count as it was.

    numba's OpenMP pool can be the OpenMP runtime torch uses: launching it on more threads than
    torch's would raise torch's thread count, and CPU convolutions round differently with
    different thread counts.
    """
    threads = torch.get_num_threads()
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def accumulate_histograms(activations: torch.Tensor, out: torch.Tensor, binning: Binning) -> int:
    """Add the per-neuron histograms of ``activations`` ``(batch, neurons, positions)`` into ``out``.

    ``out`` is an int64 ``(neurons, bins)`` tensor on the activations' device. Activations of other
    floating types are binned as float32. Returns the number of NaN values met (NaNs are not
    counted in any bin).
    """
    if activations.ndim != 3:
        raise ValueError(f"activations must be (batch, neurons, positions), got shape {tuple(activations.shape)}")
    neurons, bins = out.shape
    if activations.shape[1] != neurons:
        raise ValueError(f"activations have {activations.shape[1]} neurons, the histograms {neurons}")
    if out.dtype != torch.int64:
        raise TypeError(f"histograms must be int64, got {out.dtype}")
    if bins != binning.bins:
        raise ValueError(f"histograms have {bins} bins, the binning {binning.bins}")
    values = activations.detach().to(torch.float32)  # the rule bins float32 activations
    if values.device.type == "cpu":
        values = values.contiguous()  # each neuron's positions in one run of memory
        thresholds, offset, scale = (t.numpy() for t in (binning.thresholds, binning.offset, binning.scale))
        with torch_threads():
            nans = _histogram_cpu(values.numpy(), thresholds, offset, scale, binning.margin, numba.get_num_threads(), out.numpy())
        return int(nans.sum())
    return _histogram_searchsorted(values, binning.to(values.device), out)


@functools.lru_cache(maxsize=16)
def _shared_binning(bins: int, low: float, high: float) -> Binning:
    return Binning.create(np.zeros(1), np.ones(1), bins, low, high)


def histogram_per_neuron(
    activations: torch.Tensor, bins: int, low: float = -1.0, high: float = 1.0
) -> torch.Tensor:
    """Histograms ``(neurons, bins)`` int64 of already-normalised ``(batch, neurons, positions)`` activations.

    Values are clamped into ``[low, high]``; bins are ``[b_k, b_{k+1})`` with the last bin closed.
    Float64 activations are binned in float64, others as float32. NaN values raise ``ValueError``.
    """
    if not isinstance(bins, int) or bins < 2:
        raise ValueError(f"bins must be an integer >= 2, got {bins!r}")
    if not low < high:
        raise ValueError(f"low must be below high, got low={low}, high={high}")
    if activations.ndim != 3:
        raise ValueError(f"activations must be (batch, neurons, positions), got shape {tuple(activations.shape)}")
    out = torch.zeros((activations.shape[1], bins), dtype=torch.int64, device=activations.device)
    if activations.dtype == torch.float64:
        if activations.device.type != "cpu":
            raise TypeError("float64 activations are binned on the CPU only; pass float32 on CUDA")
        with torch_threads():
            nans = int(_histogram_float64_cpu(activations.detach().numpy(), bin_edges(bins, low, high), out.numpy()).sum())
    else:
        nans = accumulate_histograms(activations, out, _shared_binning(bins, low, high).to(activations.device))
    if nans:
        raise ValueError(f"activations contain {nans} NaN value(s)")
    return out
