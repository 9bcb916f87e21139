"""What several benchmarks share: an extractor of the zoo as built here, with its real weights where they are here."""

from __future__ import annotations


def extractor_as_built(name: str) -> tuple[str, object, str]:
    """``(registered name, extractor, weights)``: ``name`` with its real weights, else random ones (the network's
    cost is the same), registered under a name of its own so that runs use this very extractor."""
    from vdna.extractors import create_extractor, register_extractor

    try:
        extractor = create_extractor(name, device="cpu")
        weights = extractor.info.weights_source
    except (FileNotFoundError, ValueError) as error:
        extractor = create_extractor(name, pretrained=False, device="cpu")
        weights = f"random (real weights not downloadable here: {str(error).split('(')[0].strip()})"
    built = f"{name}-as-built"
    register_extractor(built)(lambda pretrained=True, weights=None: extractor)
    return built, extractor, weights


def run_in_fresh_process(script: str, folder: str, images: int, name: str) -> tuple[dict | None, str]:
    """``(result, error)`` of ``script --one name`` on ``folder``'s first ``images`` images, in a process of its
    own (so its peak memory and its threads are its own): the JSON its last line prints, or the last line of
    its errors."""
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, script, str(folder), "--images", str(images), "--one", name],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return None, (done.stderr.strip().splitlines() or ["no output"])[-1]
    return json.loads(done.stdout.strip().splitlines()[-1]), ""
