"""Misuses of the command line and the Python API, and what each gets: a table of exit status, time and first line.

    python scripts/misuse_report.py ../shared/data --work /tmp/misuse [--library src]

Each case runs in a fresh process (the command line, or a few lines of Python) with the library
found first on ``PYTHONPATH=--library``, so the same cases can be run against two versions of
the library side by side. The inputs (a few Set14 and BSD100 images, their saved per-image DNAs,
a bad image, a compact DNA without its checksum) are made once in ``--work``. A case is answered
well when it ends with a clear one-line error (exit status 2) or a right result; the table shows
what each got, and whether it left a partial file behind.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

PREPARE = """
import json, shutil, sys
from pathlib import Path
from vdna import VDNAProcessor
work, data = Path(sys.argv[1]), Path(sys.argv[2])
proc = VDNAProcessor()
for name, folder, count in (("C", "set14", 3), ("S", "bsd100", 3), ("one", "set14", 1)):
    target = work / name
    target.mkdir(parents=True, exist_ok=True)
    for photo in sorted((data / folder).iterdir())[:count]:
        shutil.copy(photo, target / photo.name)
bad = work / "Cbad"
shutil.copytree(work / "C", bad, dirs_exist_ok=True)
(bad / "text.png").write_text("not an image")
(bad / "cut.jpg").write_bytes((work / "C" / sorted(p.name for p in (work / "C").iterdir())[0]).read_bytes()[:2000])
for name in ("C", "S", "one"):
    proc.make_vdna(work / name, distribution_name="image-histogram-1000", verbose=False, num_workers=0).save(work / f"{name}_images")
    proc.make_vdna(work / name, distribution_name="image-mean", verbose=False, num_workers=0).save(work / f"{name}_means")
proc.make_vdna(work / "C", verbose=False, num_workers=0).save(work / "C_hist", compact=True)
document = json.loads((work / "C_hist.json").read_text())
document.pop("arrays_sha256", None)
(work / "nosha.json").write_text(json.dumps(document))
shutil.copy(work / "C_hist.vdnz", work / "nosha.vdnz")
(work / "a_file.json").write_text("{}")
(work / "a_folder").mkdir(exist_ok=True)
(work / "folder.json").mkdir(exist_ok=True)
(work / "relevant.txt").write_text("nothing\\n")
"""

PY = """
import numpy as np, torch
from vdna import EMD, load_vdna_from_files
A = load_vdna_from_files("C_images"); B = load_vdna_from_files("S_images")
"""

CASES: list[tuple[str, str, list[str] | str]] = [
    # silently wrong results
    ("silent", "EMD neurons={'stem': [1.5]}", PY + "print(float(EMD(A.subset(), B.subset(), neurons={'stem': [1.5]})))"),
    ("silent", "EMD neurons={'stem': [True]}", PY + "print(float(EMD(A.subset(), B.subset(), neurons={'stem': [True]})))"),
    ("silent", "EMD negative weights", PY + "print(float(EMD(A.subset(), B.subset(), weights=-np.ones(3120))))"),
    ("silent", "compare_sets negative weights",
     PY + "from vdna.stats import compare_sets\nprint(compare_sets(A, B, weights=-np.ones(3120), resamples=20, permutations=20).summary())"),
    ("silent", "DNAMetric merge, other ranges",
     ("from vdna.metrics import DNAMetric\nfrom vdna import VDNAProcessor\nr = VDNAProcessor().calibrate('C')\n"
      "a = DNAMetric(); a.merge_state(DNAMetric(activation_ranges=r)); print('merged')")),
    ("silent", "DNAMetric merge, bfloat16 into float32",
     "from vdna.metrics import DNAMetric\na = DNAMetric(); a.merge_state(DNAMetric(precision='bfloat16')); print('merged')"),
    ("silent", "DNAMetric merge, histogram-1000 with histogram-100",
     "from vdna.metrics import DNAMetric\na = DNAMetric(); a.merge_state(DNAMetric(distribution_name='histogram-100')); print('merged')"),
    ("silent", "DNAMetric compute, merge, compute",
     ("import torch\nfrom vdna.metrics import DNAMetric\nx = (torch.rand(2, 3, 64, 64) * 255).to(torch.uint8)\n"
      "a, b = DNAMetric(), DNAMetric(); a.update(x[:1]); b.update(x[1:]); first = a.compute().num_images\n"
      "a.merge_state(b); print('images before and after the merge:', first, a.compute().num_images)")),
    ("silent", "report --skip-bad, bad images", ["report", "Cbad", "S", "-o", "r_skip.html", "--skip-bad", "--quiet", "--workers", "0",
                                                 "--resamples", "20", "--permutations", "20"]),
    # tracebacks
    ("traceback", "compare --stats --permutations 1e9", ["compare", "C_images", "S_images", "--stats", "--permutations", "1000000000"]),
    ("traceback", "compare_sets(permutations=10**9)", PY + "from vdna.stats import compare_sets\ncompare_sets(A, B, permutations=10**9)"),
    ("traceback", "report -o existing folder", ["report", "S_images", "S_images", "-o", "a_folder"]),
    ("traceback", "make -o under a file", ["make", "one", "-o", "a_file.json/sub", "--quiet"]),
    ("traceback", "make -o /proc/x", ["make", "one", "-o", "/proc/x", "--quiet"]),
    ("traceback", "make -o ''", ["make", "one", "-o", "", "--quiet"]),
    ("traceback", "Ctrl-C during make", ["make", "{data}/bsd100", "-o", "interrupted", "--workers", "0", "--quiet", "@sigint"]),
    ("traceback", "Ctrl-C during report", ["report", "{data}/bsd100", "S", "-o", "interrupted.html", "--workers", "0", "--quiet",
                                           "@sigint"]),
    # weak answers
    ("weak", "rank warns", ["rank", "C_images", "C_hist"]),
    ("weak", "rank --method hybrid on saved DNAs", ["rank", "C_images", "S_images", "--method", "hybrid"]),
    ("weak", "rank --relevant missing.txt", ["rank", "C_images", "C_hist", "--method", "emd", "--relevant", "missing.txt"]),
    ("weak", "rank --top -5", ["rank", "C_images", "C_hist", "--method", "emd", "--top", "-5"]),
    ("weak", "neurons --top 0", ["neurons", "C_hist", "C_hist", "--top", "0"]),
    ("weak", "report of a 1-image set", ["report", "one", "S", "-o", "r_one.html", "--quiet", "--workers", "0"]),
    ("weak", "report --top-neurons 0", ["report", "C_images", "S_images", "-o", "r0.html", "--top-neurons", "0"]),
    ("weak", "inspect a folder", ["inspect", "a_folder"]),
    ("weak", "inspect .", ["inspect", "."]),
    ("weak", "inspect a .json that is a folder", ["inspect", "folder.json"]),
    ("weak", "compact DNA without arrays_sha256", ["inspect", "nosha"]),
    ("weak", "transfer with one DNA", ["transfer", "C_hist"]),
    ("weak", "compare --neuron-wise /proc/x.csv", ["compare", "C_hist", "C_hist", "--neuron-wise", "/proc/x.csv"]),
    ("weak", "emd-ratio with a 1-image reference",
     PY + "from vdna.apps.retrieval import rank_images\nrank_images(A, load_vdna_from_files('one_images'), method='emd-ratio')"),
    # ten more
    ("more", "EMD neurons={} (nothing)", PY + "print(float(EMD(A.subset(), B.subset(), neurons={})))"),
    ("more", "EMD neurons as a float tensor", PY + "print(float(EMD(A.subset(), B.subset(), neurons={'head': torch.tensor([0.0, 3.0])})))"),
    ("more", "compare_sets all-zero weights",
     PY + "from vdna.stats import compare_sets\nprint(compare_sets(A, B, weights=np.zeros(3120), resamples=5, permutations=5).value)"),
    ("more", "compare --stats --resamples 1e9", ["compare", "C_images", "S_images", "--stats", "--resamples", "1000000000"]),
    ("more", "make --checkpoint /proc/x.ckpt", ["make", "one", "-o", "ck", "--checkpoint", "/proc/x.ckpt", "--quiet"]),
    ("more", "compare --neuron-weights a folder", ["compare", "C_hist", "C_hist", "--neuron-weights", "a_folder"]),
    ("more", "transfer --performance missing.json", ["transfer", "C_hist", "S_images", "--performance", "missing.json"]),
    ("more", "calibrate --margin 12", ["calibrate", "one", "-o", "ranges.json", "--margin", "12"]),
    ("more", "merge DNAs of bfloat16 and float32",
     ("from vdna import VDNAProcessor\np = VDNAProcessor()\nx = p.make_vdna('one', verbose=False, num_workers=0)\n"
      "y = p.make_vdna('one', verbose=False, num_workers=0, precision='bfloat16')\nprint((x + y).num_images)")),
    ("more", "DNAMetric(streams=2)", "from vdna.metrics import DNAMetric\nDNAMetric(streams=2); print('made')"),
]


def _run(command: list[str], work: Path, env: dict[str, str], interrupt: bool) -> tuple[int, str, float]:
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if interrupt:
        time.sleep(6)
        process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=900)
    elapsed = time.perf_counter() - started
    said = [line for line in err.splitlines() if line.strip() and "it/s]" not in line and "img/s]" not in line]
    printed = [line for line in out.splitlines() if line.strip()]
    if process.returncode in (0, 2, 130):  # a result: what it printed last; an error: its first line
        shown = (printed[-1] if printed else "") if process.returncode == 0 and printed else (said[0] if said else "")
        if process.returncode == 0 and said:
            shown += f" (and on stderr: {said[0]})"
    else:
        shown = f"[{len(err.splitlines())} lines of traceback] {said[-1] if said else ''}"
    return process.returncode, shown[:160], elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="the shared data folder (set14, bsd100)")
    parser.add_argument("--work", type=Path, required=True, help="a folder for the inputs and outputs (made if missing)")
    parser.add_argument("--library", type=Path, default=Path(__file__).resolve().parents[1] / "src",
                        help="the folder holding the vdna package to run (default: this checkout's src)")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(args.library.resolve())}
    vdna = [sys.executable, "-c", "from vdna.cli import main; import sys; sys.exit(main(sys.argv[1:]))"]
    if not (args.work / "C_images.json").is_file():
        args.work.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-c", PREPARE, str(args.work), str(args.data.resolve())], env=env, check=True)
    print("| class | case | exit | time (s) | first line (last line of a traceback) | files left |")
    print("|---|---|---|---|---|---|")
    for kind, name, case in CASES:
        before = set(args.work.rglob("*"))
        if isinstance(case, list):
            interrupt = case[-1] == "@sigint"
            arguments = [part.replace("{data}", str(args.data.resolve())) for part in case[: -1 if interrupt else None]]
            command = [*vdna, *arguments]
        else:
            interrupt, command = False, [sys.executable, "-W", "ignore::DeprecationWarning", "-c", case]
        code, line, elapsed = _run(command, args.work, env, interrupt)
        left = sorted(str(path.relative_to(args.work)) for path in set(args.work.rglob("*")) - before)
        for path in set(args.work.rglob("*")) - before:
            if path.is_file():
                path.unlink()
            elif path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
        print(f"| {kind} | {name} | {code} | {elapsed:.1f} | {line.replace('|', '/')} | {', '.join(left) or '-'} |", flush=True)


if __name__ == "__main__":
    main()
