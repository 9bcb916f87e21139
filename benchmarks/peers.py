"""Ours against the tools people use today, on the same images and the same weights.

Three jobs, each tool in a fresh process per run, runs alternating between tools, medians of
``--repeats`` (whole runs: building the network from a local weights file, reading and resizing
the images, the forward passes and the statistics; images per second and the process's peak
resident memory):

- ``fid``: FID's statistics (mean and covariance of the Inception's 2048 pooled features) of
  ``--images`` imagenet1k images resized to 256x256 PNGs (pytorch-fid needs equal sizes), by
  pytorch-fid (``calculate_activation_statistics``, its batch of 50 and, as its command line
  does, one loading process per core), torch-fidelity (``fid_input_id_to_statistics``, its
  defaults), clean-fid (``get_folder_features`` in ``legacy_pytorch`` mode, the mode that runs
  pytorch-fid's network; its ``clean`` mode runs a TorchScript file that cannot be given other
  weights) and ours (``make_vdna(..., feat_extractor_name="inception",
  distribution_name="layer-gaussian")`` with its defaults, and with the plans of ``--plans``).
  Every tool reads the same random FID-Inception weights (the real ones cannot be downloaded
  here; the network's cost is the same), and the Fréchet distance of each tool's statistics to
  pytorch-fid's is printed beside its speed.
- ``dna``: the default extractor's histogram DNA of the same images, ours with its defaults and
  with the plans of ``--plans``.
- ``vit``: the DINO ViT-B/16 histogram DNA, ours against vdna 0.1.1 (``--vdna-011``, a folder
  where ``vdna==0.1.1`` is installed), both reading the same random weights and activation ranges.

    python benchmarks/peers.py ../shared/data/imagenet1k --images 200 --repeats 3 \\
        --vdna-011 .ci/vdna-0.1.1 --plans fb8 fb16 fb50 streams2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

IMAGE_SIDE = 256


def prepared_images(folder: Path, count: int, scratch: Path) -> Path:
    """The first ``count`` images of ``folder`` as 256x256 RGB PNGs in ``scratch`` (made once)."""
    from PIL import Image

    out = scratch / f"{folder.name}-{count}-{IMAGE_SIDE}"
    if out.is_dir() and len(list(out.iterdir())) == count:
        return out
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(folder.iterdir())[:count]:
        with Image.open(path) as image:
            image.convert("RGB").resize((IMAGE_SIDE, IMAGE_SIDE), Image.BICUBIC).save(out / f"{path.stem}.png")
    return out


def random_weights(scratch: Path) -> dict[str, str]:
    """Random FID-Inception and DINO ViT-B/16 weight files, and the ViT's activation ranges, made once."""
    import torch

    from vdna import VDNAProcessor
    from vdna.extractors import create_extractor

    files = {"inception": scratch / "fid-inception-random.pth", "vit": scratch / "dino-vitb16-random.pth",
             "vit_ranges": scratch / "dino-vitb16-random-ranges.json"}
    if all(path.exists() for path in files.values()):
        return {name: str(path) for name, path in files.items()}
    torch.manual_seed(0)
    torch.save(create_extractor("inception", pretrained=False).model.state_dict(), files["inception"])
    vit = create_extractor("dino_vit_base", pretrained=False)
    torch.save(vit.model.state_dict(), files["vit"])
    calibration = sorted(Path(scratch).glob("*-256/*.png"))[:16]
    ranges = VDNAProcessor().calibrate(calibration, "dino_vit_base", extractor_weights=str(files["vit"]), verbose=False)
    per_layer = {"mins_per_neuron": {}, "maxs_per_neuron": {}}  # vdna 0.1.1's format, which ours reads too
    for layer in ranges.minimum:
        for key, values in (("mins_per_neuron", ranges.minimum[layer]), ("maxs_per_neuron", ranges.maximum[layer])):
            per_layer[key][layer] = {str(neuron): float(value) for neuron, value in enumerate(values)}
    files["vit_ranges"].write_text(json.dumps(per_layer))
    return {name: str(path) for name, path in files.items()}


# -- one run of one tool, in its own process -----------------------------------------------------------
def _pytorch_fid(images: Path, weights: dict, plan: str) -> tuple:
    import torch
    from pytorch_fid import inception
    from pytorch_fid.fid_score import calculate_activation_statistics

    inception.load_state_dict_from_url = lambda *args, **kwargs: torch.load(weights["inception"])
    model = inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    return calculate_activation_statistics(sorted(map(str, images.iterdir())), model, 50, 2048, "cpu", len(os.sched_getaffinity(0)))


def _torch_fidelity(images: Path, weights: dict, plan: str) -> tuple:
    from torch_fidelity.metric_fid import create_feature_extractor, fid_input_id_to_statistics

    settings = {"input1": str(images), "cuda": False, "verbose": False, "cache": False,
                "feature_extractor_weights_path": weights["inception"]}
    extractor = create_feature_extractor("inception-v3-compat", ["2048"], **settings)
    found = fid_input_id_to_statistics(1, extractor, "2048", **settings)
    return found["mu"], found["sigma"]


def _clean_fid(images: Path, weights: dict, plan: str) -> tuple:
    import numpy as np
    import torch
    from cleanfid import inception_pytorch as inception
    from cleanfid.features import build_feature_extractor
    from cleanfid.fid import get_folder_features

    inception.load_state_dict_from_url = lambda *args, **kwargs: torch.load(weights["inception"])
    device = torch.device("cpu")
    model = build_feature_extractor("legacy_pytorch", device, use_dataparallel=False)
    features = get_folder_features(str(images), model, num_workers=len(os.sched_getaffinity(0)), batch_size=50,
                                   device=device, mode="legacy_pytorch", verbose=False)
    return np.mean(features, axis=0), np.cov(features, rowvar=False)


def _plan_settings(plan: str) -> dict:
    """``fb16`` -> forward batches of 16; ``streams2`` -> two streams; ``default`` -> the extractor's plan."""
    if plan == "default":
        return {}
    if plan.startswith("fb"):
        return {"forward_batch_size": int(plan[2:])}
    if plan.startswith("streams"):
        return {"streams": int(plan[7:])}
    raise ValueError(f"unknown plan {plan!r}: default, fbN or streamsN")


def _ours_fid(images: Path, weights: dict, plan: str) -> tuple:
    from vdna import VDNAProcessor

    dna = VDNAProcessor().make_vdna(str(images), feat_extractor_name="inception", distribution_name="layer-gaussian",
                                    extractor_weights=weights["inception"], verbose=False, **_plan_settings(plan))
    return dna.data["block_3"]["mu"].double().numpy(), dna.data["block_3"]["sigma"].double().numpy()


def _ours_dna(images: Path, weights: dict, plan: str) -> None:
    from vdna import VDNAProcessor

    VDNAProcessor().make_vdna(str(images), verbose=False, **_plan_settings(plan))


def _ours_vit(images: Path, weights: dict, plan: str) -> None:
    from vdna import VDNAProcessor

    VDNAProcessor().make_vdna(str(images), feat_extractor_name="dino_vit_base", extractor_weights=weights["vit"],
                              activation_ranges=weights["vit_ranges"], verbose=False, **_plan_settings(plan))


def _vdna_011_vit(images: Path, weights: dict, plan: str) -> None:
    import torch

    sys.path.insert(0, os.environ["VDNA_011"])  # vdna 0.1.1 is imported from there
    from vdna.networks import dino_vit

    from vdna import VDNAProcessor

    dino_vit.hf_hub_download = lambda **kwargs: weights["vit_ranges"]
    dino_vit.load_state_dict_from_url = lambda *args, **kwargs: torch.load(weights["vit"])
    VDNAProcessor().make_vdna(str(images), feat_extractor_name="dino_vit_base", device="cpu", verbose=False,
                              num_workers=len(os.sched_getaffinity(0)))


TOOLS = {
    "fid": {"pytorch-fid": _pytorch_fid, "torch-fidelity": _torch_fidelity, "clean-fid": _clean_fid, "ours": _ours_fid},
    "dna": {"ours": _ours_dna},
    "vit": {"vdna 0.1.1": _vdna_011_vit, "ours": _ours_vit},
}


def run_one(job: str, tool: str, plan: str, images: Path, weights: dict, statistics_out: str | None) -> dict:
    start = time.perf_counter()
    found = TOOLS[job][tool](images, weights, plan)
    seconds = time.perf_counter() - start
    if statistics_out and found is not None:
        import numpy as np

        np.savez(statistics_out, mu=found[0], sigma=found[1])
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"seconds": seconds, "peak_mib": own, "largest_child_mib": children}


def frechet_to(reference: str, other: str) -> float:
    import numpy as np
    import torch

    from vdna.distances.fd_distance import frechet_distance

    a, b = np.load(reference), np.load(other)
    return float(frechet_distance(*(torch.from_numpy(np.asarray(x, dtype=np.float64)) for x in (a["mu"], a["sigma"], b["mu"], b["sigma"]))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="images (e.g. ../shared/data/imagenet1k)")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jobs", nargs="+", default=list(TOOLS), choices=list(TOOLS))
    parser.add_argument("--plans", nargs="*", default=[], help="our hand-set plans to time too: fbN, streamsN")
    parser.add_argument("--vdna-011", type=Path, help="folder where vdna==0.1.1 is installed (the vit job)")
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/vdna-peers"))
    parser.add_argument("--one", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        (args.scratch / "weights.json").write_text(json.dumps(random_weights(args.scratch)))
        return
    if args.one:
        job, tool, plan, images, out = args.one
        weights = json.loads((args.scratch / "weights.json").read_text())
        print(json.dumps(run_one(job, tool, plan, Path(images), weights, out if out != "-" else None)))
        return

    args.scratch.mkdir(parents=True, exist_ok=True)
    images = prepared_images(args.folder, args.images, args.scratch)
    # In a process of its own: a process started later would report this one's peak memory as its own.
    subprocess.run([sys.executable, __file__, str(args.folder), "--scratch", str(args.scratch), "--prepare"], check=True)
    env = dict(os.environ, VDNA_011=str(args.vdna_011.resolve()) if args.vdna_011 else "")
    runs = [(job, tool, plan) for job in args.jobs for tool in TOOLS[job]
            for plan in (["default", *args.plans] if tool == "ours" else ["default"])]
    if "vit" in args.jobs and not args.vdna_011:
        runs = [run for run in runs if run[:2] != ("vit", "vdna 0.1.1")]
    results: dict[tuple, list[dict]] = {run: [] for run in runs}
    for repeat in range(args.repeats):  # preparing the images has read them all: the file cache is warm
        for run in runs:
            out = str(args.scratch / f"{run[0]}-{run[1]}-{run[2]}.npz".replace(" ", "_")) if run[0] == "fid" else "-"
            done = subprocess.run([sys.executable, __file__, str(args.folder), "--scratch", str(args.scratch),
                                   "--one", *run[:2], run[2], str(images), out], capture_output=True, text=True, env=env, check=False)
            if done.returncode != 0:
                sys.exit(f"{run} failed:\n{done.stderr[-3000:]}")
            results[run].append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"round {repeat} done", file=sys.stderr, flush=True)
    print(f"{args.images} images of {args.folder} at {IMAGE_SIDE}x{IMAGE_SIDE}, CPU, {len(os.sched_getaffinity(0))} cores, "
          f"medians of {args.repeats} runs alternating")
    for job in args.jobs:
        rows = [run for run in runs if run[0] == job]
        reference = next((run for run in rows if run[1] in ("pytorch-fid", "vdna 0.1.1")), None)
        base = statistics.median(r["seconds"] for r in results[reference]) if reference else None
        print(f"\n{job}: | tool | plan | images/s | x {reference[1] if reference else '-'} | peak MiB (main, largest child) |"
              + (" FD to pytorch-fid's statistics |" if job == "fid" else ""))
        for run in rows:
            seconds = statistics.median(r["seconds"] for r in results[run])
            peak = statistics.median(r["peak_mib"] for r in results[run])
            child = statistics.median(r["largest_child_mib"] for r in results[run])
            line = (f"| {run[1]} | {run[2]} | {args.images / seconds:.2f} | {base / seconds if base else float('nan'):.2f} | "
                    f"{peak:.0f}, {child:.0f} |")
            if job == "fid":
                own = args.scratch / f"fid-{run[1]}-{run[2]}.npz".replace(" ", "_")
                line += f" {frechet_to(str(args.scratch / 'fid-pytorch-fid-default.npz'), str(own)):.3g} |"
            print(line, flush=True)


if __name__ == "__main__":
    main()
