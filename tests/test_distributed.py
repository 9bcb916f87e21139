"""The Ray backend: the same DNA as a single process, from files and tar shards, with skipped images."""

from __future__ import annotations

import builtins
import shutil
import tarfile

import pytest
import torch
from conftest import image_files

from vdna import ImageError
from vdna.cli import main

ray = pytest.importorskip("ray")
from vdna.distributed import make_vdna_ray


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def files(data_dir):
    return image_files(data_dir / "bsd100", 16)


def _same(first, second, exact=True):
    assert first.provenance.images == second.provenance.images and first.num_images == second.num_images
    for layer in first.neurons_list:
        if exact:
            assert torch.equal(first.data[layer], second.data[layer]), layer
        else:
            for key in first.data[layer]:
                torch.testing.assert_close(first.data[layer][key], second.data[layer][key], rtol=1e-10, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("actors", [1, 2])
def test_ray_histograms_are_bit_identical_to_one_process_with_one_or_two_actors(local_ray, dna_of, files, actors):
    local = dna_of(files[:8], streams=1)  # actors run the network on all their threads, as one process without streams
    distributed = make_vdna_ray(files[:8], verbose=False, num_actors=actors)
    _same(distributed, local)
    assert distributed.provenance.extraction_settings["backend"] == "ray"
    assert distributed.provenance.extraction_settings["torch_threads"] == torch.get_num_threads()
    assert distributed.provenance.ranges_sha256 == local.provenance.ranges_sha256


@pytest.mark.slow
def test_one_thread_actors_equal_a_one_thread_process(local_ray, processor, files, one_torch_thread):
    local = processor.make_vdna(files, verbose=False)
    assert torch.get_num_threads() == 1
    distributed = make_vdna_ray(files, verbose=False, num_actors=2, threads_per_actor=1)
    _same(distributed, local)
    assert distributed.provenance.extraction_settings["torch_threads"] == 1


@pytest.mark.slow
def test_ray_gaussians_equal_to_round_off(local_ray, processor, files):
    local = processor.make_vdna(files, distribution_name="layer-gaussian", verbose=False, streams=1)
    _same(make_vdna_ray(files, distribution_name="layer-gaussian", verbose=False, num_actors=2), local, exact=False)


@pytest.mark.slow
def test_ray_reads_tar_shards(local_ray, processor, files, tmp_path):
    for number, chunk in enumerate((files[:9], files[9:])):
        with tarfile.open(tmp_path / f"shard-{number}.tar", "w") as shard:
            for path in chunk:
                shard.add(path, arcname=f"{path.stem}.jpg")
    distributed = make_vdna_ray(tmp_path, verbose=False, num_actors=2)
    local = processor.make_vdna(tmp_path, verbose=False, streams=1)
    _same(distributed, local)
    assert distributed.num_images == 16


@pytest.mark.slow
def test_ray_skips_and_reports_bad_images_as_the_local_path(local_ray, processor, files, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for path in files[:6]:
        shutil.copy(path, folder / path.name)
    (folder / "broken.jpg").write_bytes(b"not an image at all")
    local = processor.make_vdna(folder, verbose=False, on_error="skip", streams=1)
    distributed = make_vdna_ray(folder, verbose=False, on_error="skip")
    _same(distributed, local)
    assert distributed.provenance.skipped == local.provenance.skipped and len(local.provenance.skipped) == 1
    with pytest.raises(ImageError, match="broken.jpg"):
        make_vdna_ray(folder, verbose=False)


@pytest.mark.slow
def test_ray_from_the_command_line(local_ray, processor, files, tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    for path in files[:5]:
        shutil.copy(path, folder / path.name)
    assert main(["make", str(folder), "-o", str(tmp_path / "dna"), "--ray", "--ray-actors", "2", "--quiet"]) == 0
    from vdna import load_vdna_from_files

    _same(load_vdna_from_files(tmp_path / "dna"), processor.make_vdna(folder, verbose=False, streams=1))
    assert main(["make", str(folder), "-o", str(tmp_path / "x"), "--ray", "--checkpoint", str(tmp_path / "c")]) == 2
    assert "--checkpoint is an option of local runs, not of Ray runs" in capsys.readouterr().err


def test_ray_errors(files):  # refused before a Ray cluster is started
    with pytest.raises(ValueError, match="per-image DNAs .* make them with VDNAProcessor.make_vdna"):
        make_vdna_ray(files, distribution_name="image-histogram-1000", verbose=False)
    with pytest.raises(ValueError, match="needs a source of known length"):
        make_vdna_ray(iter([str(files[0])]), verbose=False)
    for num_actors in (0, True):
        with pytest.raises(ValueError, match="num_actors must be a positive integer"):
            make_vdna_ray(files, num_actors=num_actors)
    with pytest.raises(ValueError, match="num_gpus_per_actor must be a non-negative number"):
        make_vdna_ray(files, num_gpus_per_actor=-1)


def test_a_clear_error_without_ray(monkeypatch, files):
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ImportError, match=r'pip install "vdna\[ray\]"'):
        make_vdna_ray(files)
