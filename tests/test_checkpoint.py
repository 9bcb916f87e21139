"""Resumable runs: a run stopped part-way, or killed, resumes from its checkpoint to the same DNA."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest
import torch
from conftest import image_files

from vdna import load_vdna_from_files
from vdna.checkpoint import Checkpoint


@pytest.fixture(scope="module")
def folder(data_dir, tmp_path_factory):
    """Eight real images: runs stopped part-way through them resume."""
    target = tmp_path_factory.mktemp("images")
    for path in image_files(data_dir / "bsd100", 8):
        shutil.copy(path, target / path.name)
    return target


@pytest.fixture(scope="module")
def reference(processor, folder):
    """The DNA of an uninterrupted run over ``folder``."""
    return processor.make_vdna(folder, verbose=False, num_workers=0)


@pytest.fixture(scope="module")
def one_thread_reference(processor, folder):
    """The DNA of an uninterrupted run over ``folder`` with torch on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return processor.make_vdna(folder, verbose=False, num_workers=0)
    finally:
        torch.set_num_threads(before)


def assert_same_histograms(first, second):
    assert first.num_images == second.num_images
    assert all(torch.equal(first.data[layer], second.data[layer]) for layer in first.neurons_list)


def copy_with_a_broken_image(folder, tmp_path, position: int, content: bytes):
    """A copy of ``folder`` whose image at ``position`` holds ``content``; returns (copy, its files, repair)."""
    files = sorted(folder.iterdir())
    broken = tmp_path / "images"
    shutil.copytree(folder, broken)
    (broken / files[position].name).write_bytes(content)
    return broken, files, lambda: shutil.copy(files[position], broken / files[position].name)


def test_a_run_stopped_by_an_error_resumes_to_the_same_dna(processor, folder, reference, tmp_path):
    broken, files, repair = copy_with_a_broken_image(folder, tmp_path, 5, b"")
    checkpoint = tmp_path / "run.ckpt"
    with pytest.raises(ValueError, match="empty file"):
        processor.make_vdna(broken, verbose=False, num_workers=0, batch_size=2, checkpoint=checkpoint, checkpoint_every=4)
    assert checkpoint.is_file()
    assert Checkpoint(checkpoint, {}).progress() == {"images": 4, "done": 4}  # saved after the 2nd batch of 2
    repair()
    resumed = processor.make_vdna(broken, verbose=False, num_workers=2, batch_size=5, checkpoint=checkpoint, checkpoint_every=4)
    assert_same_histograms(resumed, reference)
    assert resumed.provenance.images == [str(broken / f.name) for f in files]
    assert not checkpoint.exists() and not list(tmp_path.glob("run.ckpt.*"))


def test_a_streams_run_resumes_to_the_dna_of_an_uninterrupted_one_thread_run(
    processor, folder, one_thread_reference, tmp_path, one_torch_thread
):
    broken, files, repair = copy_with_a_broken_image(folder, tmp_path, 7, b"")
    checkpoint = tmp_path / "streams.ckpt"
    with pytest.raises(ValueError, match="empty file"):
        processor.make_vdna(broken, verbose=False, streams=2, batch_size=3, checkpoint=checkpoint, checkpoint_every=4)
    assert Checkpoint(checkpoint, {}).progress() == {"images": 6, "done": 6}  # after the 2nd batch of 3, both streams
    assert len(list(tmp_path.glob("streams.ckpt.state*.npz"))) == 1
    repair()
    torch.set_num_threads(2)  # the default path would round differently on 2 threads
    with pytest.raises(ValueError, match=r"streams.ckpt is the checkpoint of a different run \(torch_threads differ\)"):
        processor.make_vdna(broken, verbose=False, num_workers=0, streams=1, checkpoint=checkpoint, checkpoint_every=4)
    resumed = processor.make_vdna(broken, verbose=False, streams=3, batch_size=5, checkpoint=checkpoint, checkpoint_every=4)
    assert_same_histograms(resumed, one_thread_reference)
    assert resumed.provenance.images == [str(broken / f.name) for f in files]
    assert resumed.provenance.extraction_settings["streams"] == 3
    assert not checkpoint.exists() and not list(tmp_path.glob("streams.ckpt.*"))


def test_gaussian_runs_resume_to_the_same_dna_bit_for_bit(processor, folder, tmp_path):
    reference = processor.make_vdna(folder, distribution_name="layer-gaussian", verbose=False, num_workers=0)
    checkpoint = tmp_path / "g.ckpt"
    broken, _, repair = copy_with_a_broken_image(folder, tmp_path, 5, b"not an image")
    with pytest.raises(ValueError, match="not an image file"):
        processor.make_vdna(broken, distribution_name="layer-gaussian", verbose=False, num_workers=0,
                            batch_size=4, checkpoint=checkpoint, checkpoint_every=4)
    repair()
    resumed = processor.make_vdna(broken, distribution_name="layer-gaussian", verbose=False, num_workers=0,
                                  checkpoint=checkpoint, checkpoint_every=4)
    for layer in reference.neurons_list:  # the saved state is the running state itself, not a DNA fitted from it
        assert torch.equal(resumed.data[layer]["mu"], reference.data[layer]["mu"])
        assert torch.equal(resumed.data[layer]["sigma"], reference.data[layer]["sigma"])


def test_a_checkpoint_of_another_run_is_refused(processor, folder, tmp_path):
    checkpoint = tmp_path / "other.ckpt"
    broken, files, _ = copy_with_a_broken_image(folder, tmp_path, 6, b"")
    with pytest.raises(ValueError, match="empty file"):
        processor.make_vdna(broken, verbose=False, num_workers=0, batch_size=2, checkpoint=checkpoint, checkpoint_every=2)
    with pytest.raises(ValueError, match=r"other.ckpt is the checkpoint of a different run \(distribution_name, ranges_sha256 differ\)"):
        processor.make_vdna(broken, distribution_name="gaussian", verbose=False, checkpoint=checkpoint)
    with pytest.raises(ValueError, match="checkpoints need a source of known length"):
        processor.make_vdna(iter([files[0]]), verbose=False, checkpoint=checkpoint)


@pytest.mark.slow
def test_a_killed_make_resumes_to_the_dna_of_an_uninterrupted_run(folder, reference, tmp_path):
    vdna_command = shutil.which("vdna")
    assert vdna_command
    common = ["make", str(folder), "--quiet", "--workers", "0", "--batch-size", "1"]
    checkpoint = tmp_path / "killed.ckpt"
    command = [vdna_command, *common, "-o", str(tmp_path / "resumed"), "--checkpoint", str(checkpoint), "--checkpoint-every", "2"]
    run = subprocess.Popen(command)
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert run.poll() is None, "the run finished before it could be killed"
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    assert run.returncode == -signal.SIGKILL
    assert checkpoint.exists() and not (tmp_path / "resumed.json").exists()
    subprocess.run(command, check=True)
    assert_same_histograms(load_vdna_from_files(tmp_path / "resumed"), reference)
    assert not checkpoint.exists()


@pytest.mark.parametrize("distribution", ["image-histogram-1000", "image-mean"])
def test_per_image_runs_resume_to_the_same_images(processor, folder, tmp_path, distribution):
    reference = processor.make_vdna(folder, distribution_name=distribution, verbose=False, num_workers=0)
    checkpoint = tmp_path / "i.ckpt"
    broken, _, repair = copy_with_a_broken_image(folder, tmp_path, 7, b"")
    with pytest.raises(ValueError, match="empty file"):
        processor.make_vdna(broken, distribution_name=distribution, verbose=False, num_workers=0,
                            batch_size=3, checkpoint=checkpoint, checkpoint_every=3)
    repair()
    resumed = processor.make_vdna(broken, distribution_name=distribution, verbose=False, num_workers=0,
                                  checkpoint=checkpoint, checkpoint_every=3)
    assert [name.rsplit("/", 1)[1] for name in resumed.names] == [name.rsplit("/", 1)[1] for name in reference.names]
    for layer in reference.neurons_list:
        mine, theirs = resumed.data[layer], reference.data[layer]
        if distribution == "image-mean":
            assert torch.equal(mine, theirs)
        else:
            assert all(torch.equal(mine[key], theirs[key]) for key in ("offsets", "bins", "counts"))
