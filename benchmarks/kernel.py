"""Histogram kernel: vdna.kernels.histogram_per_neuron against vdna 0.1.1 and against one read pass.

Shapes: (64, 768, 197), a ViT-B/16 layer at batch 64 (Gaussian activations), neuron-major and
as a ViT gives it (tokens, each token's 768 values side by side in memory), and the default
extractor's largest layer at batch 64, the stem (64, 32, 12544), with its real normalised
activations on the first 64 images of a folder. 1000 bins. Besides one read pass (``x.sum()``),
the least any kernel can take, "counting alone" adds one to a count per value, neuron by neuron,
from bin numbers computed beforehand: the least any counting histogram does beyond the read.
vdna 0.1.1's ``histogram_per_channel`` is loaded from a folder where ``vdna==0.1.1`` is
installed, e.g.

    pip install --no-deps --target /tmp/vdna-0.1.1 vdna==0.1.1
    python benchmarks/kernel.py --vdna-011 /tmp/vdna-0.1.1 --images ../shared/data/imagenet1k

Times are medians of ``--repeats`` runs, measured in turn in the same process. Before each run a
buffer larger than the processor's caches is written, so that every function reads its tensor from
memory: a tensor of this size (39 MB) otherwise stays partly in the last-level cache from one run to
the next, by an amount that varies from run to run and from one function to another. With
``--keep-caches``, runs follow each other with nothing in between.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import statistics
import time
from pathlib import Path

import numba
import numpy as np
import torch

from vdna import create_extractor
from vdna.kernels import histogram_per_neuron, torch_threads
from vdna.preprocess import Preprocessor, decode_image
from vdna.sources import list_image_files


def load_vdna_011_histogram(folder: Path):
    spec = importlib.util.spec_from_file_location("vdna_011_stats", folder / "vdna" / "utils" / "stats.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.histogram_per_channel


def stem_activations(folder: Path, count: int = 64) -> torch.Tensor:
    """The default extractor's stem activations on ``count`` images, normalised with its ranges."""
    extractor = create_extractor("efficientnet_lite0", device="cpu")
    info = extractor.info
    preprocess = Preprocessor(info.input_size, info.mean, info.std)
    batches = []
    with torch.inference_mode():
        for index, path in enumerate(list_image_files(folder)[:count]):
            image = preprocess(decode_image(path, str(path)), index)
            batches.append(extractor(image[None])["stem"].clone())
    centre, half_width = (torch.from_numpy(v).view(1, -1, 1) for v in info.ranges.normalisation("stem"))
    return ((torch.cat(batches).double() - centre) / half_width).float()


@numba.njit(parallel=True, boundscheck=False)
def count_bin_numbers(bin_numbers: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    batch, neurons, positions = bin_numbers.shape
    for n in numba.prange(neurons):
        counts = np.zeros(out.shape[1], dtype=np.int32)
        for b in range(batch):
            row = bin_numbers[b, n]
            for p in range(positions):
                counts[row[p]] += 1
        out[n] += counts


def bin_numbers(activations: torch.Tensor, bins: int) -> np.ndarray:
    """Each value's bin (uniform bins over [-1, 1]), uint16, neuron-major: the input of counting alone."""
    scaled = ((activations.clamp(-1.0, 1.0) + 1.0) * (bins / 2.0)).floor().clamp(max=bins - 1)
    return scaled.to(torch.int32).contiguous().numpy().astype(np.uint16)


_CACHE_FLUSH = np.zeros(2**27 // 8)  # 128 MiB, larger than common last-level caches


def median_seconds(function, repeats: int, flush_caches: bool = True) -> float:
    function()
    times = []
    for _ in range(repeats):
        if flush_caches:
            _CACHE_FLUSH.fill(len(times))
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vdna-011", type=Path, required=True, help="folder where vdna==0.1.1 is installed")
    parser.add_argument("--images", type=Path, required=True, help="folder of images for the real stem activations")
    parser.add_argument("--bins", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--keep-caches", action="store_true", help="do not write a large buffer before each run")
    args = parser.parse_args()

    reference = load_vdna_011_histogram(args.vdna_011)
    torch.manual_seed(0)
    cases = {
        "ViT-B/16 layer (64, 768, 197)": (torch.randn(64, 768, 197) * 0.4),
        "the same as ViT tokens (64, 197, 768)": (torch.randn(64, 197, 768) * 0.4).transpose(1, 2),
        "efficientnet_lite0 stem (64, 32, 12544)": stem_activations(args.images),
    }
    print(
        f"{'shape':42s} {'ours ms':>9s} {'0.1.1 ms':>9s} {'sum ms':>8s} {'count ms':>9s} "
        f"{'0.1.1/ours':>11s} {'ours/sum':>9s} {'count/sum':>10s}"
    )
    timed = functools.partial(median_seconds, repeats=args.repeats, flush_caches=not args.keep_caches)
    for label, activations in cases.items():
        ours = timed(lambda a=activations: histogram_per_neuron(a, args.bins))
        theirs = timed(lambda a=activations: reference(a.unsqueeze(-1), args.bins, [-1.0, 1.0]), repeats=max(3, args.repeats // 2))
        read = timed(lambda a=activations: a.sum())
        numbers = bin_numbers(activations, args.bins)
        floor_counts = np.zeros((activations.shape[1], args.bins), dtype=np.int64)
        with torch_threads():
            count = timed(lambda n=numbers, c=floor_counts: count_bin_numbers(n, c))
        print(
            f"{label:42s} {ours * 1e3:9.1f} {theirs * 1e3:9.1f} {read * 1e3:8.2f} {count * 1e3:9.2f} "
            f"{theirs / ours:10.1f}x {ours / read:8.1f}x {count / read:9.1f}x"
        )
        counts = histogram_per_neuron(activations, args.bins)
        assert int(counts.sum()) == activations.numel()
        np.testing.assert_array_equal(counts.sum(dim=1).numpy(), activations.shape[0] * activations.shape[2])


if __name__ == "__main__":
    main()
