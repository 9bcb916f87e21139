"""Agreement of the metrics on per-image embeddings with their reference implementations, as a table.

Makes ``image-mean`` DNAs of two real image sets with the default extractor, takes the embeddings of
its last layer, and prints, for each metric, the reference it is checked against and the largest
relative difference found. The same comparisons are asserted in ``tests/test_embedding_metrics.py``.

    python scripts/metric_agreement.py [--first DIR] [--second DIR] [--images N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

import numpy as np
import torch

REPOSITORY = Path(__file__).resolve().parents[1]
SHARED = REPOSITORY.parent / "shared" / "data"
sys.path.insert(0, str(REPOSITORY / "tests"))  # the references the tests check against, written once

from helpers import cmmd_reference, fd_infinity_reference


def relative(ours: float, theirs: float) -> float:
    """``|ours - theirs| / max(|theirs|, tiny)``."""
    return abs(float(ours) - float(theirs)) / max(abs(float(theirs)), 1e-300)


def kid_rows(x: torch.Tensor, y: torch.Tensor) -> list[tuple[str, str, float]]:
    from torch_fidelity.metric_kid import kid_features_to_metric
    from torchmetrics.image.kid import KernelInceptionDistance

    from vdna.distances import kid

    size = min(len(x), len(y)) // 2
    ours = kid(x, y, subsets=100, subset_size=size, return_std=True)
    theirs = kid_features_to_metric(x, y, kid_subsets=100, kid_subset_size=size, rng_seed=2020, verbose=False)
    whole = min(len(x), len(y))
    metric = KernelInceptionDistance(feature=torch.nn.Identity(), subsets=1, subset_size=whole)
    metric.update(x[:whole], real=True)
    metric.update(y[:whole], real=False)
    torchmetrics_mean, _ = metric.compute()
    ours_whole = kid(x[:whole], y[:whole], subsets=1)
    return [
        ("kid (mean, 100 subsets)", "torch-fidelity kid_features_to_metric", relative(ours.mean, theirs["kernel_inception_distance_mean"])),
        ("kid (std over subsets)", "torch-fidelity kid_features_to_metric", relative(ours.std, theirs["kernel_inception_distance_std"])),
        ("kid (one subset = whole sets)", "torchmetrics KernelInceptionDistance", relative(ours_whole, torchmetrics_mean)),
    ]


def prdc_rows(x: torch.Tensor, y: torch.Tensor) -> list[tuple[str, str, float]]:
    from prdc import compute_prdc
    from torch_fidelity.metric_prc import prc_features_to_metric

    from vdna.distances import prdc

    ours = prdc(real=x, fake=y, k=5)
    with contextlib.redirect_stdout(io.StringIO()):
        theirs = compute_prdc(real_features=x.numpy(), fake_features=y.numpy(), nearest_k=5)
    rows = [(name, "prdc compute_prdc (k=5)", relative(getattr(ours, name), theirs[name]))
            for name in ("precision", "recall", "density", "coverage")]
    ours3 = prdc(real=x, fake=y, k=3)
    fidelity = prc_features_to_metric(y, x, prc_neighborhood=3, prc_batch_size=10000, save_cpu_ram=False, verbose=False)
    rows += [(f"{name} (k=3)", "torch-fidelity prc_features_to_metric", relative(getattr(ours3, name), fidelity[name]))
             for name in ("precision", "recall")]
    return rows


def other_rows(x: torch.Tensor, y: torch.Tensor) -> list[tuple[str, str, float]]:
    import scipy.stats
    from vendi_score import vendi

    from vdna.distances import (
        fd_infinity,
        mmd_rbf,
        random_directions,
        sliced_wasserstein,
        vendi_score,
    )

    rows = [("mmd-rbf (CMMD formula)", "hand-written numpy cmmd distance.py", relative(mmd_rbf(x, y), cmmd_reference(x.numpy(), y.numpy())))]
    for q in (1, 2):
        rows.append((f"vendi q={q}", "vendi_score score_dual", relative(vendi_score(x, q), vendi.score_dual(x.numpy(), q=q))))
    rows.append(("vendi q=1", "vendi_score score_X", relative(vendi_score(x), vendi.score_X(x.numpy()))))
    rows.append(("fd-infinity", "np.polyfit of frechet_distance", relative(fd_infinity(x, y), fd_infinity_reference(x.numpy(), y.numpy()))))
    directions = random_directions(x.shape[1], 200, 0).numpy()
    reference = np.mean([scipy.stats.wasserstein_distance(x.numpy() @ d, y.numpy() @ d) for d in directions.T])
    rows.append(("sliced-wasserstein", "scipy.stats.wasserstein_distance", relative(sliced_wasserstein(x, y, directions=200), reference)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first", default=str(SHARED / "bsd100"), help="folder of the first (real) set's images")
    parser.add_argument("--second", default=str(SHARED / "urban100"), help="folder of the second (fake) set's images")
    parser.add_argument("--images", type=int, default=100, help="images of each set")
    args = parser.parse_args()
    from vdna import VDNAProcessor

    processor = VDNAProcessor()
    x, y = (processor.make_vdna(folder, distribution_name="image-mean", num_images=args.images, verbose=False)
            for folder in (args.first, args.second))
    layer = x.layers[-1]
    x, y = x.data[layer], y.data[layer]
    print(f"{len(x)} and {len(y)} images, layer {layer} ({x.shape[1]} dimensions), float64")
    rows = kid_rows(x, y) + prdc_rows(x, y) + other_rows(x, y)
    width = max(len(row[0]) for row in rows)
    reference_width = max(len(row[1]) for row in rows)
    print(f"{'metric':<{width}}  {'reference':<{reference_width}}  max relative difference")
    for metric, reference, difference in rows:
        print(f"{metric:<{width}}  {reference:<{reference_width}}  {difference:.2e}")


if __name__ == "__main__":
    main()
