"""One process of the two-process test of :mod:`vdna.metrics` (run by tests/test_metrics.py, not collected).

``python metric_ranks.py OUTPUT IMAGE...`` with ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT`` set: joins a gloo process group, gives this rank's share of the images (the first
half to rank 0, the rest to rank 1, in batches of different sizes on each rank) to a histogram and
a Gaussian :class:`~vdna.metrics.DNAMetric`, and saves what ``compute()`` returns after the metrics
synchronise as ``OUTPUT-<distribution>-rank<rank>``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image

DISTRIBUTIONS = ("histogram-1000", "gaussian")


def real_photo(path: str | os.PathLike, height: int = 96, width: int = 128) -> np.ndarray:
    """The top-left ``height`` x ``width`` pixels of a real photograph, uint8 ``(H, W, 3)``."""
    return np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB"))[:height, :width])


def as_batch(arrays: list[np.ndarray]) -> torch.Tensor:
    """``(N, 3, H, W)`` from ``(H, W, 3)`` arrays of one size."""
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)


def main(output: str, paths: list[str]) -> None:
    from vdna.metrics import DNAMetric

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    share = np.array_split(np.arange(len(paths)), world)[rank]
    images = as_batch([real_photo(paths[i]) for i in share])
    for name in DISTRIBUTIONS:
        metric = DNAMetric(distribution_name=name)
        cut = 1 if rank else len(images)
        for batch in (images[:cut], images[cut:]):
            metric.update(batch)
        dna = metric.compute()
        print(f"rank {rank}: {name}: images {share.tolist()} updated here, {dna.num_images} in the DNA after sync", flush=True)
        dna.save(Path(f"{output}-{name}-rank{rank}"))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
