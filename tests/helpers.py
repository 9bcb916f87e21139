"""Small DNAs built directly from arrays, for tests of distances, merging and files; and pytest run on
generated test files, for tests of the suite's own fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import torch

from vdna.distributions import VDNAGauss, VDNAHist, VDNALayerGauss
from vdna.dna import Provenance


def assert_same_dna(made, expected, exact: bool = True):
    """Same kind, images, layers, weights and ranges, and every array equal (``exact``) or equal to round-off."""
    assert type(made) is type(expected) and made.name == expected.name
    assert made.num_images == expected.num_images and made.neurons_list == expected.neurons_list
    assert made.provenance.weights_sha256 == expected.provenance.weights_sha256
    if made.needs_ranges:
        assert made.provenance.ranges_sha256 == expected.provenance.ranges_sha256
    for layer in expected.neurons_list:
        mine, theirs = made.data[layer], expected.data[layer]
        pairs = [(mine[key], theirs[key]) for key in theirs] if isinstance(theirs, dict) else [(mine, theirs)]
        for a, b in pairs:
            assert a.dtype == b.dtype, layer
            if exact:
                assert torch.equal(a, b), layer
            else:
                torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def hist_dna(counts: dict[str, list] | dict[str, np.ndarray], extractor: str = "test_net", **provenance) -> VDNAHist:
    """A histogram DNA from per-layer count arrays ``(neurons, bins)``."""
    data = {layer: torch.as_tensor(np.asarray(values), dtype=torch.int64) for layer, values in counts.items()}
    bins = next(iter(data.values())).shape[1]
    neurons = {layer: values.shape[0] for layer, values in data.items()}
    return VDNAHist.create({"bins": bins}, extractor, neurons, data, 10, Provenance(**provenance))


def gauss_dna(mu: dict[str, np.ndarray], var: dict[str, np.ndarray], num_images: int = 10) -> VDNAGauss:
    """A per-neuron Gaussian DNA."""
    data = {
        layer: {"mu": torch.as_tensor(mu[layer], dtype=torch.float64), "var": torch.as_tensor(var[layer], dtype=torch.float64)}
        for layer in mu
    }
    neurons = {layer: len(mu[layer]) for layer in mu}
    return VDNAGauss.create({}, "test_net", neurons, data, num_images)


def layer_gauss_dna(samples: dict[str, np.ndarray]) -> VDNALayerGauss:
    """A layer-Gaussian DNA fitted to per-layer samples ``(images, neurons)``."""
    data = {
        layer: {
            "mu": torch.as_tensor(values.mean(axis=0), dtype=torch.float64),
            "sigma": torch.as_tensor(np.cov(values, rowvar=False).reshape(values.shape[1], values.shape[1]), dtype=torch.float64),
        }
        for layer, values in samples.items()
    }
    neurons = {layer: values.shape[1] for layer, values in samples.items()}
    count = next(iter(samples.values())).shape[0]
    return VDNALayerGauss.create({}, "test_net", neurons, data, count)


def random_spd(size: int, rng: np.random.Generator, rank: int | None = None) -> np.ndarray:
    """A random symmetric positive (semi-)definite matrix of the given rank."""
    factor = rng.normal(size=(size, rank or size + 3))
    return factor @ factor.T / factor.shape[1]


def cmmd_reference(x: np.ndarray, y: np.ndarray, sigma: float = 10.0, scale: float = 1000.0) -> float:
    """google-research cmmd's ``distance.mmd`` (Gaussian RBF kernel, biased estimator), written again in float64 numpy."""
    gamma = 1 / (2 * sigma**2)
    xx, yy = (x * x).sum(1), (y * y).sum(1)
    k_xx = np.mean(np.exp(-gamma * (-2 * x @ x.T + xx[:, None] + xx[None, :])))
    k_yy = np.mean(np.exp(-gamma * (-2 * y @ y.T + yy[:, None] + yy[None, :])))
    k_xy = np.mean(np.exp(-gamma * (-2 * x @ y.T + xx[:, None] + yy[None, :])))
    return scale * (k_xx + k_yy - 2 * k_xy)


def fd_infinity_reference(x: np.ndarray, y: np.ndarray, seed: int = 0) -> float:
    """FD-infinity by hand, as dgm-eval's ``compute_FD_infinity``: ``x`` whole, 15 subsets of ``y`` drawn with
    ``np.random.default_rng(seed)``, FD of each (``frechet_distance`` of ``np.mean``, ``np.cov``), ``np.polyfit`` on 1/size."""
    from vdna.distances import frechet_distance

    sizes = np.linspace(min(5000, max(len(y) // 10, 2)), len(y), 15).astype(np.int32)
    rng = np.random.default_rng(seed)
    mean, covariance = torch.from_numpy(x.mean(0)), torch.from_numpy(np.cov(x, rowvar=False))
    fds = []
    for size in sizes.tolist():
        part = y[rng.choice(len(y), size, replace=False)]
        fds.append(float(frechet_distance(mean, covariance, torch.from_numpy(part.mean(0)), torch.from_numpy(np.cov(part, rowvar=False)))))
    return float(np.polyfit(1 / sizes, fds, 1)[1])


TESTS = Path(__file__).resolve().parent


def run_pytest(folder: Path, files: dict[str, str], **environment: str | None) -> dict[str, tuple[str, str]]:
    """Run pytest in a new process on ``files`` (name -> source) written to ``folder``, where their
    ``from conftest import`` imports this suite's conftest; ``environment`` sets variables (``None`` unsets).

    Returns each test's outcome (``passed``, ``skipped``, ``failure`` or ``error``) and message.
    """
    (folder / "pytest.ini").write_text("[pytest]\n")  # not the repository's settings
    for name, source in files.items():
        (folder / name).write_text(textwrap.dedent(source))
    variables = dict(os.environ)
    variables["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    variables["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # no plugins: quick to start, tests in file order
    for name, value in environment.items():
        if value is None:
            variables.pop(name, None)
        else:
            variables[name] = value
    report = folder / "report.xml"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml", str(report)]
    run = subprocess.run([*command, *files], check=False, cwd=folder, env=variables, capture_output=True,
                         text=True, timeout=120)
    if not report.exists():
        raise AssertionError(f"pytest wrote no report:\n{run.stdout}\n{run.stderr}")
    outcomes, ends = {}, ("skipped", "failure", "error")
    for case in ElementTree.parse(report).iter("testcase"):
        found = [(end.tag, end.get("message", "")) for end in case if end.tag in ends]
        outcomes[case.get("name")] = found[0] if found else ("passed", "")
    return outcomes
