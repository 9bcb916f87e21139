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
a bin boundary). CPU (a compiled single pass, in parallel over neurons, or position by position
for channels-last activations and ViT tokens) and CUDA (``searchsorted`` on the thresholds, then
one ``bincount``) give the same counts as the float64 definition, bit for bit, whatever the batch
split or memory layout.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import numba
import numpy as np
import torch
from llvmlite import ir
from numba.core import cgutils
from numba.extending import intrinsic

from .ranges import ActivationRanges

_BLOCK = 512  # values estimated, then counted, at a time: the estimates stay in the L1 cache
_ROWS_AHEAD = 2  # blocks of short rows ahead whose memory is asked for while a block is counted
_COPIES = 4  # a power of two
_INT32_COUNTS_LIMIT = 2**31 - 1
_SPARSE_LIMIT = 1 << 14  # most values a neuron may have to flush only the bins it marked
_POSITIONS_MAJOR_COUNTS_BYTES = 8 * 2**20  # most int32 counts of every neuron a worker keeps, binning position by position

_WARM_UPS: list[tuple[Callable[[], None], tuple]] = []


def compiled_by(warm_up: Callable[[], None], *functions: Callable) -> None:
    """Register compiled functions that making a DNA calls, and a call that compiles them (tiny inputs, every signature)."""
    _WARM_UPS.append((warm_up, functions))


def _cached(function: Callable) -> bool:
    try:
        return bool(function._cache._cache_file._load_index())
    except AttributeError:  # no on-disk cache to look at: assume nothing to wait for
        return True


def uncached_kernels() -> list[str]:
    """Names of the registered compiled functions whose on-disk cache is missing or out of date."""
    return [function.__name__ for _, functions in _WARM_UPS for function in functions if not _cached(function)]


def compile_kernels() -> bool:
    """Compile (and cache on disk) the registered functions whose cache is missing; returns whether any was."""
    pending = [warm_up for warm_up, functions in _WARM_UPS if not all(_cached(function) for function in functions)]
    for warm_up in pending:
        warm_up()
    return bool(pending)


def bin_edges(bins: int, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    """The float64 bin edges of the rule above."""
    return np.linspace(low, high, bins + 1, dtype=np.float64)


def _reaches(candidate: np.ndarray, centre: np.ndarray, half_width: np.ndarray, edge: np.ndarray) -> np.ndarray:
    return (candidate.astype(np.float64) - centre) / half_width >= edge


def _ordered(values: np.ndarray) -> np.ndarray:
    """float32 values as int64 keys in the same order (adjacent floats get adjacent keys; -0 and 0 share one)."""
    bits = values.astype(np.float32).view(np.int32).astype(np.int64)
    return np.where(bits >= 0, bits, -(bits & 0x7FFFFFFF))


def _unordered(keys: np.ndarray) -> np.ndarray:
    bits = np.where(keys >= 0, keys, -keys | 0x80000000)
    return bits.astype(np.uint32).view(np.float32)


def _first_reaching(centre: np.ndarray, half_width: np.ndarray, edge: np.ndarray) -> np.ndarray:
    """The smallest float32 reaching each edge, by bisection over all float32 values (33 rounds)."""
    low = np.full(edge.shape, _ordered(np.array(-np.inf)), dtype=np.int64)  # never reaches
    high = np.full(edge.shape, _ordered(np.array(np.inf)), dtype=np.int64)  # always reaches
    while np.any(high - low > 1):
        middle = (low + high) // 2
        reaches = _reaches(_unordered(middle), centre, half_width, edge)
        high, low = np.where(reaches, middle, high), np.where(reaches, low, middle)
    return _unordered(high)


def float32_thresholds(
    centre: np.ndarray, half_width: np.ndarray, bins: int, low: float = -1.0, high: float = 1.0
) -> np.ndarray:
    """``(neurons, bins - 1)`` float32: ``T[n, k-1]`` is the smallest float32 ``a`` with ``(a - c_n) / h_n >= e_k``."""
    centre = np.asarray(centre, dtype=np.float64)[:, None]
    half_width = np.asarray(half_width, dtype=np.float64)[:, None]
    edges = bin_edges(bins, low, high)[None, 1:-1]
    with np.errstate(over="ignore"):
        thresholds = (centre + edges * half_width).astype(np.float32)
    # The rounded guess is usually within a float32 step or two of the exact threshold: step there.
    # Near zero, where the guess is a float64 cancellation, it can be millions of steps away: bisect.
    for _ in range(4):
        too_high = _reaches(np.nextafter(thresholds, np.float32(-np.inf)), centre, half_width, edges)
        too_low = ~_reaches(thresholds, centre, half_width, edges)
        if not (too_high.any() or too_low.any()):
            return thresholds
        thresholds = np.where(too_high, np.nextafter(thresholds, np.float32(-np.inf)), thresholds)
        thresholds = np.where(too_low, np.nextafter(thresholds, np.float32(np.inf)), thresholds)
    rows, columns = np.nonzero(too_high | too_low)  # those not yet settled after the last step
    thresholds[rows, columns] = _first_reaching(centre[rows, 0], half_width[rows, 0], edges[0, columns])
    return thresholds


def _guess(activations: np.ndarray, offset: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The kernels' arithmetic estimate of the bin, in float32, before clamping."""
    return (activations - offset[:, None]) * scale[:, None]


def guess_margin(thresholds: np.ndarray, offset: np.ndarray, scale: np.ndarray) -> np.float32:
    """How far (in bins) the arithmetic estimate can stray from an integer boundary of the true bin.

    Bin ``k`` holds ``[T_k, T_{k+1})`` and the estimate is monotone, so over that bin it lies in
    ``[guess(T_k), guess(just below T_{k+1})]``. An estimate further than the margin from an
    integer is therefore certainly in the right bin, as is one below ``1 - margin`` (bin 0) or
    above ``bins - 1 + margin`` (the last bin); others are checked against thresholds. The kernels
    compare estimates with these bounds exactly (as distances from a bin's middle, which float32
    computes without rounding there), so the margin need only exceed the worst stray by the
    rounding of ``0.5 - margin``. An infinite margin trusts no estimate.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        opening = _guess(thresholds[:, 1:-1], offset, scale) - np.arange(1, thresholds.shape[1] - 1, dtype=np.float32)
        below = np.nextafter(thresholds[:, 1:-1], np.float32(-np.inf))
        closing = _guess(below, offset, scale) - np.arange(1, thresholds.shape[1] - 1, dtype=np.float32)
    worst = max(float(np.max(-opening, initial=0.0)), float(np.max(closing, initial=0.0)))
    if not np.isfinite(worst) or worst >= 0.25:
        return np.float32(np.inf)  # no estimate is trusted: every value is checked
    return np.float32(worst + 1e-6)


@dataclass(frozen=True)
class Binning:
    """Everything a kernel needs to bin one layer: per-neuron thresholds and the arithmetic estimate."""

    bins: int
    thresholds: torch.Tensor  # (neurons or 1, bins + 1) float32: -inf, T_1 .. T_{bins-1}, +inf
    offset: torch.Tensor  # (neurons or 1,) float32: activation at the low end of the range
    scale: torch.Tensor  # (neurons or 1,) float32: bins per unit of activation
    margin: float  # estimates within this distance of an integer are checked against thresholds
    zero_bin: torch.Tensor  # (neurons or 1,) int32: the bin of an activation of exactly 0
    _cpu_rows: dict[int, tuple[np.ndarray, ...]] = field(default_factory=dict, init=False, repr=False, compare=False)

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
        interior = float32_thresholds(centre, half_width, bins, low, high)
        thresholds = np.concatenate([-sentinel, interior, sentinel], 1)
        zero_bin = np.count_nonzero(interior <= 0.0, axis=1).astype(np.int32)
        return cls(
            bins,
            torch.from_numpy(thresholds).to(device),
            torch.from_numpy(offset).to(device),
            torch.from_numpy(scale).to(device),
            float(guess_margin(thresholds, offset, scale)),
            torch.from_numpy(zero_bin).to(device),
        )

    def cpu_rows(self, neurons: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Thresholds, offset, scale and zero bin as CPU arrays with a row per neuron (made once per count)."""
        if neurons not in self._cpu_rows:
            tensors = (self.thresholds, self.offset, self.scale, self.zero_bin)
            self._cpu_rows[neurons] = tuple(t.cpu().expand(neurons, *t.shape[1:]).contiguous().numpy() for t in tensors)
        return self._cpu_rows[neurons]

    def to(self, device: torch.device | str) -> Binning:
        """This binning on ``device`` (itself, with the CPU rows it made, when already there)."""
        if self.offset.device == torch.device(device):
            return self
        tensors = (self.thresholds, self.offset, self.scale)
        return Binning(self.bins, *(t.to(device) for t in tensors), self.margin, self.zero_bin.to(device))


@intrinsic
def _prefetch(typingctx, array, position):  # pragma: no cover - compiled
    """Ask for the cache line holding ``array[position]`` (a hint: nothing is read or checked)."""

    def codegen(context, builder, signature, args):
        kind = signature.args[0]
        view = context.make_array(kind)(context, builder, args[0])
        pointer = cgutils.get_item_pointer(context, builder, kind, view, [args[1]], wraparound=False)
        int32 = ir.IntType(32)
        byte_pointer = builder.bitcast(pointer, ir.IntType(8).as_pointer())
        prefetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_pointer.type, int32, int32, int32]), "llvm.prefetch.p0i8"
        )
        read, keep_in_all_caches, data = (ir.Constant(int32, flag) for flag in (0, 3, 1))
        builder.call(prefetch, [byte_pointer, read, keep_in_all_caches, data])
        return context.get_dummy_value()

    return numba.types.void(array, position), codegen


@numba.njit(inline="always", boundscheck=False)
def _settled_bin(a, thresholds, low, per_unit, last):  # pragma: no cover - compiled
    guess = (a - low) * per_unit
    k = 0 if not guess > 0 else (np.int64(last) if not guess < last else np.int64(guess))
    while a < thresholds[k]:
        k -= 1
    while a >= thresholds[k + 1]:
        k += 1
    return k


@numba.njit(inline="always", boundscheck=False, error_model="numpy")
def _estimate(value, low, per_unit, last, sure, zero_bin):  # pragma: no cover - compiled
    """A value's bin estimate, and whether it is certain (``sure`` is ``0.5 - margin``).

    Certain: estimates further than the margin from a bin boundary, and exact zeros (whose bin is
    known; ReLU networks and dead neurons give many, and they can sit on a boundary). Estimates
    are clamped into the middles of the end bins, ``[0.5, last + 0.5]``, so that values below the
    first boundary or beyond the last by more than the margin are certain too; NaN never is.
    """
    guess = (value - low) * per_unit
    top = last + np.float32(0.5)
    clamped = guess if guess > np.float32(0.5) else np.float32(0.5)
    clamped = clamped if clamped < top else top
    k = np.int32(clamped)
    from_middle = clamped - np.float32(k) - np.float32(0.5)
    zero = value == np.float32(0.0)
    certain = (abs(from_middle) < sure) & (value == value)
    return (zero_bin if zero else k), certain | zero


@numba.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def _estimate_bins(values, low, per_unit, last, sure, zero_bin, index, unsure):  # pragma: no cover
    """Each value's bin estimate into ``index``, or ``unsure`` where it could be wrong (or the value is NaN)."""
    for p in range(values.shape[0]):
        k, certain = _estimate(values[p], low, per_unit, last, sure, zero_bin)
        index[p] = k if certain else unsure


@numba.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def _scatter(index, counts):  # pragma: no cover - compiled
    # Consecutive values rotate over _COPIES copies of the counts, so runs of one bin (common in
    # ReLU networks) do not wait on each other; unsigned indices skip negative-index wraparound.
    for p in range(index.shape[0]):
        counts[p & (_COPIES - 1), index[p]] += 1


@numba.njit(inline="always", boundscheck=False)
def _take_unsure(counts):  # pragma: no cover - compiled
    """How many values the copies of ``counts`` gathered in their extra (unsure) bin, which is emptied."""
    bins = counts.shape[1] - 1
    found = 0
    for copy in range(_COPIES):
        found += counts[copy, bins]
        counts[copy, bins] = 0
    return found


@numba.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def _settle(values, index, unsure, found, thresholds, low, per_unit, last, counts):  # pragma: no cover
    """Bin the ``found`` values marked ``unsure`` against the thresholds (their marks become their bins).

    Returns how many were NaN (their marks stay ``unsure``), and how many of ``found`` lie beyond these values.
    """
    missing = 0
    for p in range(values.shape[0]):
        if found == 0:
            break
        if index[p] == unsure:
            a = values[p]
            if a != a:
                missing += 1
            else:
                k = _settled_bin(a, thresholds, low, per_unit, last)
                counts[k] += 1
                index[p] = k
            found -= 1
    return missing, found


@numba.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def _count_row(values, thresholds, low, per_unit, last, sure, zero_bin, index, counts):  # pragma: no cover
    """Add one run of a neuron's values into ``counts`` ``(copies, bins + 1)``; the extra bin gathers the unsure."""
    bins = counts.shape[1] - 1
    unsure = index.dtype.type(bins)
    block = index.shape[0]
    missing = 0
    for start in range(0, values.shape[0], block):
        chunk = values[start : start + block]
        marks = index[: chunk.shape[0]]
        _estimate_bins(chunk, low, per_unit, last, sure, zero_bin, marks, unsure)
        _scatter(marks, counts)
        found = _take_unsure(counts)
        if found:
            missing += _settle(chunk, marks, unsure, found, thresholds, low, per_unit, last, counts[0])[0]
    return missing


@numba.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def _count_rows(x, n, first, stop, thresholds, low, per_unit, last, sure, zero_bin, index, counts):  # pragma: no cover
    """Add rows ``first`` to ``stop`` of neuron ``n`` of ``x`` ``(batch, neurons, positions)`` into ``counts``.

    The estimates of as many rows as ``index`` holds are made, then counted, together. Rows lie
    apart in memory, where the processor cannot foresee them, so later rows are asked for early.
    """
    positions = x.shape[2]
    bins = counts.shape[1] - 1
    unsure = index.dtype.type(bins)
    rows_per_block = max(1, index.shape[0] // positions)
    missing = 0
    for start in range(first, stop, rows_per_block):
        end = min(stop, start + rows_per_block)
        ahead = start + _ROWS_AHEAD * rows_per_block
        for b in range(ahead, min(stop, ahead + rows_per_block)):
            for p in range(0, positions, 16):  # a 64-byte cache line of float32
                _prefetch(x[b, n], p)
        for b in range(start, end):
            marks = index[(b - start) * positions : (b - start + 1) * positions]
            _estimate_bins(x[b, n], low, per_unit, last, sure, zero_bin, marks, unsure)
        _scatter(index[: (end - start) * positions], counts)
        found = _take_unsure(counts)
        for b in range(start, end):
            if found == 0:
                break
            marks = index[(b - start) * positions : (b - start + 1) * positions]
            nans, found = _settle(x[b, n], marks, unsure, found, thresholds, low, per_unit, last, counts[0])
            missing += nans
    return missing


@numba.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def _flush_marked(index, counts, out):  # pragma: no cover - compiled
    """Move the counts of the bins in ``index`` into ``out``, leaving ``counts`` zero: few values, many bins."""
    bins = out.shape[0]
    for p in range(index.shape[0]):
        k = index[p]
        if k < bins:
            total = 0
            for copy in range(_COPIES):
                total += counts[copy, k]
                counts[copy, k] = 0
            out[k] += total


@numba.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def _flush_all(counts, out):  # pragma: no cover - compiled
    """Move every bin's counts into ``out``, leaving ``counts`` zero: many values."""
    for copy in range(_COPIES):
        for k in range(out.shape[0]):
            out[k] += counts[copy, k]
            counts[copy, k] = 0


@numba.njit(parallel=True, cache=True, nogil=True, boundscheck=False, error_model="numpy")
def _histogram_cpu(x, thresholds, offset, scale, zero_bins, margin, workers, out, index_kind, counts_limit):  # pragma: no cover
    batch, neurons, positions = x.shape
    bins = out.shape[1]
    last = np.float32(bins - 1)
    sure = np.float32(0.5) - np.float32(margin)  # how near its bin's middle an estimate is certain
    row_step = 0 if thresholds.shape[0] == 1 else 1
    nans = np.zeros(neurons, dtype=np.int64)
    workers = max(1, min(workers, neurons))
    share = (neurons + workers - 1) // workers
    rows_per_flush = max(1, counts_limit // max(1, positions))  # int32 counts never overflow
    # A neuron with fewer values than bins keeps all its marks and flushes only the bins they name.
    marked = 0 < batch * positions < min(bins, _SPARSE_LIMIT)
    index_size = batch * positions if marked else max(1, min(batch * positions, _BLOCK))
    several_rows = not marked and 0 < 2 * positions <= index_size  # short rows are estimated, then counted, several at a time
    for worker in numba.prange(workers):
        index = np.empty(index_size, dtype=index_kind.dtype)
        counts = np.zeros((_COPIES, bins + 1), dtype=np.int32)
        for n in range(worker * share, min(neurons, (worker + 1) * share)):
            row = n * row_step
            missing = 0
            for first in range(0, batch, rows_per_flush):
                stop = min(batch, first + rows_per_flush)
                if several_rows:
                    missing += _count_rows(
                        x, n, first, stop, thresholds[row], offset[row], scale[row], last, sure,
                        zero_bins[row], index, counts,
                    )
                else:
                    for b in range(first, stop):
                        marks = index[b * positions : (b + 1) * positions] if marked else index
                        missing += _count_row(
                            x[b, n], thresholds[row], offset[row], scale[row], last, sure,
                            zero_bins[row], marks, counts,
                        )
                if marked:
                    _flush_marked(index, counts, out[n])
                else:
                    _flush_all(counts, out[n])
            nans[n] = missing
    return nans


@numba.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def _count_positions(x, thresholds, offset, scale, zero_bins, margin, counts):  # pragma: no cover - compiled
    """Add ``x`` ``(rows, neurons)`` into ``counts`` ``(neurons * (bins + 1))``; the extra bin of each neuron gathers the unsure.

    Each row's estimates are made together (they vectorise across neurons), then counted.
    Returns how many values were NaN.
    """
    rows, neurons = x.shape
    width = counts.shape[0] // neurons
    bins = width - 1
    last = np.float32(bins - 1)
    sure = np.float32(0.5) - np.float32(margin)  # how near its bin's middle an estimate is certain
    first_bin = np.arange(neurons).astype(np.uint32) * np.uint32(width)
    unsure_bin = first_bin + np.uint32(bins)
    index = np.empty(neurons, dtype=np.uint32)
    missing = 0
    for r in range(rows):
        row = x[r]
        unsure = 0
        for n in range(neurons):
            k, certain = _estimate(row[n], offset[n], scale[n], last, sure, zero_bins[n])
            index[n] = first_bin[n] + np.uint32(k) if certain else unsure_bin[n]
            unsure += not certain
        for n in range(neurons):
            counts[index[n]] += 1
        if unsure:
            for n in range(neurons):
                if index[n] == unsure_bin[n]:
                    a = row[n]
                    if a != a:
                        missing += 1
                    else:
                        counts[first_bin[n] + _settled_bin(a, thresholds[n], offset[n], scale[n], last)] += 1
    return missing


@numba.njit(parallel=True, cache=True, nogil=True, boundscheck=False, error_model="numpy")
def _histogram_positions_cpu(x, thresholds, offset, scale, zero_bins, margin, workers, out):  # pragma: no cover
    """Bin ``x`` ``(rows, neurons)``: every neuron's value at one position after another.

    Each worker counts a share of the rows into its own int32 counts of every neuron (the caller
    keeps a call within their range), summed into ``out`` at the end. Returns how many were NaN.
    """
    rows, neurons = x.shape
    bins = out.shape[1]
    workers = max(1, min(workers, rows // bins))  # each worker's counts are worth their zeroing and summing
    share = (rows + workers - 1) // workers
    counts = np.zeros((workers, neurons * (bins + 1)), dtype=np.int32)
    missing = np.zeros(workers, dtype=np.int64)
    for worker in numba.prange(workers):
        part = x[worker * share : min(rows, (worker + 1) * share)]
        missing[worker] = _count_positions(part, thresholds, offset, scale, zero_bins, margin, counts[worker])
    for worker in range(workers):
        for n in range(neurons):
            for k in range(bins):
                out[n, k] += counts[worker, n * (bins + 1) + k]
    return missing.sum()


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
    wanted = max(1, min(threads, numba.config.NUMBA_NUM_THREADS))
    if numba.get_num_threads() != wanted:  # setting it costs more than a small kernel call
        numba.set_num_threads(wanted)
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
    if values.device.type != "cpu":
        return _histogram_searchsorted(values, binning.to(values.device), out)
    if bins_in_place(values, bins):
        return _histogram_positions(values.transpose(1, 2).reshape(-1, neurons), binning, out)
    return _histogram_compiled(values.contiguous(), binning, out)  # each neuron's positions in one run


def bins_in_place(activations: torch.Tensor, bins: int) -> bool:
    """Whether CPU ``activations`` ``(batch, neurons, positions)`` are binned where they lie, without a copy.

    So they are when each position's neurons lie together (channels-last memory, or ViT tokens)
    and the counts of all neurons stay small (8 MiB of int32); otherwise they are copied to
    neuron-major memory first.
    """
    neurons = activations.shape[1]
    return (
        activations.device.type == "cpu"
        and activations.dtype == torch.float32
        and neurons * bins * 4 <= _POSITIONS_MAJOR_COUNTS_BYTES
        and activations.transpose(1, 2).is_contiguous()
        and not activations.is_contiguous()
    )


def _histogram_positions(values: torch.Tensor, binning: Binning, out: torch.Tensor, counts_limit: int = _INT32_COUNTS_LIMIT) -> int:
    """Bin ``values`` ``(rows, neurons)``, position-major, in parts that never overflow int32 counts."""
    thresholds, offset, scale, zero_bin = binning.cpu_rows(values.shape[1])
    nans = 0
    with torch_threads():
        for part in values.split(counts_limit):
            nans += int(
                _histogram_positions_cpu(
                    part.numpy(), thresholds, offset, scale, zero_bin, binning.margin, numba.get_num_threads(), out.numpy()
                )
            )
    return nans


def _histogram_compiled(values: torch.Tensor, binning: Binning, out: torch.Tensor, counts_limit: int = _INT32_COUNTS_LIMIT) -> int:
    thresholds, offset, scale, zero_bin = binning.cpu_rows(binning.offset.shape[0])
    index_kind = np.empty(0, dtype=np.uint16 if binning.bins < 2**16 else np.uint32)
    nans = 0
    with torch_threads():
        for part in values.split(counts_limit, dim=2):  # a run of positions never overflows int32 counts
            nans += int(
                _histogram_cpu(
                    part.contiguous().numpy(), thresholds, offset, scale, zero_bin, binning.margin,
                    numba.get_num_threads(), out.numpy(), index_kind, counts_limit,
                ).sum()
            )
    return nans


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


def _warm_up() -> None:
    binning = Binning.create(np.zeros(3), np.ones(3), 1000)
    counts = torch.zeros((3, 1000), dtype=torch.int64)
    accumulate_histograms(torch.zeros((1, 3, 5)), counts, binning)  # neuron by neuron
    accumulate_histograms(torch.zeros((1, 5, 3)).transpose(1, 2), counts, binning)  # position by position


compiled_by(_warm_up, _histogram_cpu, _histogram_positions_cpu)


# -- memory layouts chosen for the kernels -----------------------------------------------------------------
NEURON_MAJOR_POSITIONS = 112 * 112
"""Layers with at least this many positions per image are binned faster neuron by neuron (channels-first)."""


def prefers_neuron_major(positions: int) -> bool:
    """Whether activations with ``positions`` positions per image are best laid out neuron by neuron.

    Channels-last networks run the layers before such activations in the channels-first format
    (:class:`vdna.extractors.HookExtractor`): the compiled pass then reads each neuron's long run
    of values in order, which beats binning them position by position.
    """
    return positions >= NEURON_MAJOR_POSITIONS


class Gathering:
    """Activations of a few images per layer, gathered into buffers laid out as the kernels bin them, then binned together.

    Binning several images in one kernel call amortises its start; each layer gathers about
    ``values_per_neuron`` values per neuron (up to 64 images), all layers within ``buffer_bytes``.
    Buffers keep the layout the network gives (channels-last activations stay position-major when
    :func:`bins_in_place`), so gathering is one copy. ``bin_layer(layer, activations)`` bins a
    gathered batch. CPU only: activations elsewhere are binned as they come.
    """

    buffer_bytes = 64 * 2**20
    values_per_neuron = 2**14

    def __init__(self, bins: int, bin_layer: Callable[[str, torch.Tensor], None]):
        self.bins = bins
        self.bin_layer = bin_layer
        self._buffers: dict[str, torch.Tensor] = {}
        self._filled: dict[str, int] = {}
        self._capacity: dict[str, int] | None = None

    def images_per_layer(self, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, int]:
        """Images gathered per layer of activations shaped ``(batch, neurons, positions)``."""
        wanted = {layer: min(64, -(-self.values_per_neuron // max(1, shape[2]))) for layer, shape in shapes.items()}
        total = sum(count * 4 * math.prod(shapes[layer][1:]) for layer, count in wanted.items())
        shrink = min(1.0, self.buffer_bytes / total) if total else 1.0
        return {layer: max(1, int(count * shrink)) for layer, count in wanted.items()}

    def plan(self, activations: Mapping[str, torch.Tensor]) -> None:
        """Size the buffers from the first batch of every layer (once)."""
        if self._capacity is None:
            self._capacity = self.images_per_layer({layer: tuple(values.shape) for layer, values in activations.items()})

    def _new_buffer(self, layer: str, activations: torch.Tensor) -> torch.Tensor:
        images = (self._capacity or {}).get(layer, 1)
        neurons, positions = activations.shape[1:]
        if bins_in_place(activations, self.bins):  # gathered as the network lays them out
            return torch.empty((images, positions, neurons), dtype=torch.float32).transpose(1, 2)
        return torch.empty((images, neurons, positions), dtype=torch.float32)

    def add(self, layer: str, activations: torch.Tensor) -> None:
        """Gather ``(batch, neurons, positions)`` activations of ``layer``, binning what a full buffer holds."""
        if activations.device.type != "cpu":
            self.bin_layer(layer, activations)
            return
        buffer = self._buffers.get(layer)
        if buffer is None or buffer.shape[2] != activations.shape[2]:
            self.flush(layer)
            buffer = self._buffers[layer] = self._new_buffer(layer, activations)
            self._filled[layer] = 0
        filled = self._filled[layer]
        if filled + activations.shape[0] > buffer.shape[0]:
            self.flush(layer)
            filled = 0
        if activations.shape[0] >= buffer.shape[0]:
            self.bin_layer(layer, activations)
            return
        buffer[filled : filled + activations.shape[0]].copy_(activations)
        self._filled[layer] = filled + activations.shape[0]

    def flush(self, layer: str | None = None) -> None:
        """Bin what is gathered (of ``layer``, or of every layer)."""
        for name in [layer] if layer is not None else list(self._buffers):
            filled = self._filled.get(name, 0)
            if filled:
                self._filled[name] = 0
                self.bin_layer(name, self._buffers[name][:filled])

    def discard(self) -> None:
        """Forget what is gathered, unbinned."""
        self._filled = dict.fromkeys(self._filled, 0)


_last_binnings: dict[tuple, dict[str, Binning]] = {}


def layer_binnings(ranges: ActivationRanges, layers: Mapping[str, int], bins: int, device: torch.device) -> dict[str, Binning]:
    """Each layer's binning of activations normalised with ``ranges``.

    The last binnings made are kept: the streams of a run, and runs with the same ranges, share them.
    """
    key = (ranges.digest, tuple(layers), bins, str(device))
    if key not in _last_binnings:
        _last_binnings.clear()
        _last_binnings[key] = {layer: Binning.create(*ranges.normalisation(layer), bins, device=device) for layer in layers}
    return dict(_last_binnings[key])


__all__ = [
    "Binning",
    "Gathering",
    "accumulate_histograms",
    "bin_edges",
    "bins_in_place",
    "compile_kernels",
    "compiled_by",
    "float32_thresholds",
    "histogram_per_neuron",
    "layer_binnings",
    "prefers_neuron_major",
    "torch_threads",
    "uncached_kernels",
]
