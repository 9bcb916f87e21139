"""Section 5.1 in small, on several tasks: find augmented images of a reference set among images of other sets.

Every task has a reference set, relevant candidates (the held-out images of the same set, each
transformed by two random operations of appendix A.3) and distractors (images of other sets):

- ``urban100`` (the task methods are tuned on), ``bsd100``, ``sunhays80``: reference the first half
  of the set (sorted names), relevant its second half augmented; distractors the other three sets
  of Urban100, BSD100, Sun-Hays 80 and the ImageNet sample.
- ``imagenet-GROUP``: classes of the ImageNet sample (one image per class) grouped by contiguous
  ranges of WordNet ids (``GROUPS`` below), the group's images in WordNet order split alternately
  (even positions reference, odd positions held out and augmented); distractors the rest of the
  ImageNet sample and the three other sets.

Every candidate of every task is ranked by every method of ``vdna.apps.retrieval.METHODS`` on
layer groups (all layers, early, middle, late, head); the table gives the average precision (area
under the precision-recall curve) of each, its mean over the held-out tasks (all but urban100) and
its worst case. The library's default method is the one with the highest held-out mean on its
default layers. Per-image DNAs (``image-histogram-1000`` and ``image-mean``) are cached in --out;
the precision-recall curves of the tuning task go to --out/precision_recall.png.

    python experiments/retrieval.py ../shared/data --out retrieval_out
"""

from __future__ import annotations

import argparse
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _common import cached, image_files
from PIL import Image

from vdna import VDNAProcessor, merge_vdnas
from vdna.apps.augment import random_augmentation
from vdna.apps.retrieval import METHODS, average_precision, precision_recall_curve, retrieval_distances
from vdna.plots import plot_precision_recall

SETS = ("urban100", "bsd100", "sunhays80", "imagenet1k")
GROUPS = {  # inclusive ranges of WordNet ids in the ImageNet sample
    "dogs": [("n02085620", "n02113978")],
    "birds": [("n01514668", "n01622779"), ("n01795545", "n01860187"), ("n02002556", "n02058221")],
    "reptiles-amphibians": [("n01629819", "n01756291")],
    "insects": [("n02165105", "n02281787")],
    "food": [("n07583066", "n07932039")],
}
TUNING_TASK = "urban100"


@dataclass
class Task:
    """A retrieval task: reference images, augmented held-out images (relevant) and distractors."""

    name: str
    reference: list[Path]
    held_out: list[Path]
    distractors: list[Path]


def make_tasks(data: Path) -> list[Task]:
    files = {name: image_files(data / name) for name in SETS}
    tasks = []
    for name in SETS[:-1]:
        half = len(files[name]) // 2
        others = [path for other in SETS if other != name for path in files[other]]
        tasks.append(Task(name, files[name][:half], files[name][half:], others))
    imagenet = files["imagenet1k"]
    for group, ranges in GROUPS.items():
        members = [p for p in imagenet if any(low <= p.name.split("_")[0] <= high for low, high in ranges)]
        others = [p for p in imagenet if p not in set(members)] + [p for s in SETS[:-1] for p in files[s]]
        tasks.append(Task(f"imagenet-{group}", members[0::2], members[1::2], others))
    return tasks


def augmented_files(task: Task, folder: Path, seed: int) -> list[Path]:
    """The task's held-out images, each after two random A.3 operations (seeded by ``seed`` and the task)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, zlib.crc32(task.name.encode())])
    paths = []
    for path in task.held_out:
        target = folder / f"{path.stem}.png"
        with Image.open(path) as image:
            changed, _ = random_augmentation(image, rng)
        changed.save(target)
        paths.append(target)
    return paths


def per_image_dnas(processor: VDNAProcessor, out: Path, name: str, files: list[Path]) -> tuple:
    """The per-image histogram and mean DNAs of ``files``, cached in ``out`` as ``name-*``."""
    options = {"verbose": False}
    hists = cached(out, f"{name}-hist", lambda: processor.make_vdna(files, distribution_name="image-histogram-1000", **options))
    means = cached(out, f"{name}-mean", lambda: processor.make_vdna(files, distribution_name="image-mean", **options))
    return hists, means


def layer_groups(layers: list[str]) -> dict[str, dict[str, None] | None]:
    """Neuron selections: each method's default layers, all layers, thirds of the layers, the last layer."""
    third = len(layers) // 3
    parts = {"early": layers[:third], "middle": layers[third : 2 * third], "late": layers[2 * third :], "head": layers[-1:]}
    return {"default": None, "all": dict.fromkeys(layers), **{name: dict.fromkeys(chosen) for name, chosen in parts.items()}}


def task_scores(task: Task, dnas: dict, augmented: tuple) -> tuple[dict, np.ndarray]:
    """``{(method, group): distances}`` of the task's candidates (relevant first) and their relevance."""
    own = "imagenet1k" if task.name.startswith("imagenet-") else task.name
    names = [Path(name).name for name in dnas[own][0].names]
    reference = [dna.select_images([names.index(path.name) for path in task.reference]) for dna in dnas[own]]
    distractors = {path.name for path in task.distractors}
    candidates = [augmented]
    for name in SETS:
        if name == own and not task.name.startswith("imagenet-"):
            continue
        keep = [i for i, image in enumerate(dnas[name][0].names) if Path(image).name in distractors]
        candidates.append(tuple(dna.select_images(keep) for dna in dnas[name]))
    relevant = np.concatenate([np.full(len(c[0]), i == 0) for i, c in enumerate(candidates)])
    merged = [merge_vdnas([c[kind] for c in candidates]) for kind in range(2)]
    scores = {}
    for group, neurons in layer_groups(reference[0].layers).items():
        for method in METHODS:
            scores[method, group] = retrieval_distances(merged, reference, method=method, neurons=neurons).numpy()
    return scores, relevant


def print_table(title: str, rows: dict[str, dict[str, float]], tasks: list[str]) -> None:
    print(f"\n{title}")
    held_out = [name for name in tasks if name != TUNING_TASK]
    short = [name.replace("imagenet-", "in-").replace("reptiles-amphibians", "reptiles") for name in tasks]
    print(f"{'':20s}" + "".join(f"{name:>12s}" for name in short) + f"{'mean*':>8s}{'worst*':>8s}")
    for label, row in rows.items():
        values = [row[name] for name in held_out]
        print(f"{label:20s}" + "".join(f"{row[name]:12.3f}" for name in tasks)
              + f"{np.mean(values):8.3f}{min(values):8.3f}")
    print(f"(* over the held-out tasks: all but {TUNING_TASK})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="folder for augmented images, DNAs and plots")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    processor = VDNAProcessor()
    started = time.perf_counter()
    dnas = {name: per_image_dnas(processor, args.out, name, image_files(args.data / name)) for name in SETS}
    print(f"per-image DNAs of {', '.join(SETS)}: {time.perf_counter() - started:.0f} s", flush=True)
    ap: dict[tuple[str, str], dict[str, float]] = {}
    chance = {}
    tasks = make_tasks(args.data)
    for task in tasks:
        augmented = augmented_files(task, args.out / "augmented" / task.name, args.seed)
        scores, relevant = task_scores(task, dnas, per_image_dnas(processor, args.out, f"{task.name}-augmented", augmented))
        chance[task.name] = relevant.mean()
        for key, distances in scores.items():
            ap.setdefault(key, {})[task.name] = average_precision(distances, relevant)
        print(f"{task.name}: {len(task.reference)} reference, {relevant.sum()} relevant, {(~relevant).sum()} "
              f"distractors; {time.perf_counter() - started:.0f} s", flush=True)
        if task.name == TUNING_TASK:
            curves = {method: precision_recall_curve(scores[method, "default"], relevant)[:2] for method in METHODS}
            plot_precision_recall(curves, args.out / "precision_recall.png")
    names = [task.name for task in tasks]
    for group in layer_groups(dnas[SETS[0]][0].layers):
        print_table(f"average precision, layers: {group}", {method: ap[method, group] for method in METHODS}, names)
    print_table("chance (fraction relevant)", {"chance": chance}, names)


if __name__ == "__main__":
    main()
