"""Tar shards (WebDataset layout) as sources, local and through fsspec, read without extracting."""

from __future__ import annotations

import io
import tarfile

import fsspec
import pytest
import torch
from conftest import image_files

from vdna.sources import TarMembers, open_source


def write_shard(path_or_buffer, images) -> None:
    where = {"fileobj": path_or_buffer} if hasattr(path_or_buffer, "write") else {"name": path_or_buffer}
    with tarfile.open(mode="w", **where) as shard:
        for index, image in enumerate(images):
            for name, data in ((f"{index:06d}.jpg", image.read_bytes()), (f"{index:06d}.cls", b"3")):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                shard.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def images(data_dir):
    return image_files(data_dir / "set14", 6)


def test_local_shards_give_the_dna_of_their_images(processor, images, tmp_path):
    (tmp_path / "shards").mkdir()
    write_shard(tmp_path / "shards" / "a.tar", images[:4])
    write_shard(tmp_path / "shards" / "b.tar", images[4:])
    collection = open_source(tmp_path / "shards")
    assert isinstance(collection, TarMembers) and len(collection) == 6
    assert collection.names[0].endswith("a.tar:000000.jpg")
    reference = processor.make_vdna(images, verbose=False, num_workers=0)
    for source in (tmp_path / "shards", [tmp_path / "shards" / "a.tar", tmp_path / "shards" / "b.tar"]):
        other = processor.make_vdna(source, verbose=False, num_workers=2)
        assert all(torch.equal(reference.data[layer], other.data[layer]) for layer in reference.neurons_list)
    assert sorted((tmp_path / "shards").iterdir()) == [tmp_path / "shards" / "a.tar", tmp_path / "shards" / "b.tar"]


def test_fsspec_urls_are_read_through_fsspec(processor, images):
    buffer = io.BytesIO()
    write_shard(buffer, images[:3])
    with fsspec.open("memory://vdna-test/shard-0.tar", "wb") as out:
        out.write(buffer.getvalue())
    vdna = processor.make_vdna("memory://vdna-test/shard-0.tar", verbose=False, num_workers=0)
    reference = processor.make_vdna(images[:3], verbose=False, num_workers=0)
    assert vdna.num_images == 3 and vdna.provenance.images[0] == "memory://vdna-test/shard-0.tar:000000.jpg"
    assert all(torch.equal(reference.data[layer], vdna.data[layer]) for layer in reference.neurons_list)


def test_unreadable_and_empty_shards(tmp_path):
    (tmp_path / "bad.tar").write_bytes(b"this is not a tar archive at all" * 20)
    with pytest.raises(ValueError, match="bad.tar: not a readable tar archive"):
        open_source(tmp_path / "bad.tar")
    with tarfile.open(tmp_path / "empty.tar", "w"):
        pass
    with pytest.raises(ValueError, match="no images found in .*empty.tar"):
        open_source(tmp_path / "empty.tar")
