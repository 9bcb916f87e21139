"""Resolving sources: folders, files, lists, indexes, zips, arrays, PIL images, datasets, iterables."""

from __future__ import annotations

import os
import random
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vdna.sources import ItemStream, ZipMembers, open_source


def write_image(path: Path, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    write_image(root / "b" / "2.png")
    write_image(root / "a" / "1.JPG")
    write_image(root / "a" / "deep" / "0.jpeg")
    write_image(root / "3.Tiff")
    (root / "notes.txt").write_text("not an image")
    np.save(root / "x.npy", np.zeros(3))
    return root


def test_folder_is_searched_recursively_sorted_with_case_insensitive_extensions(tree):
    collection = open_source(tree)
    relative = [Path(name).relative_to(tree).as_posix() for name in collection.names]
    assert relative == ["3.Tiff", "a/1.JPG", "a/deep/0.jpeg", "b/2.png"]
    assert collection.load(0) == tree / "3.Tiff"


def test_symlink_loops_are_listed_once(tree):
    os.symlink(tree, tree / "a" / "loop")
    collection = open_source(tree)
    assert len(collection) == 4


def test_single_image_list_of_paths_and_missing_files(tree):
    assert open_source(tree / "b" / "2.png").names == [str(tree / "b" / "2.png")]
    assert len(open_source([tree / "3.Tiff", str(tree / "b" / "2.png")])) == 2
    with pytest.raises(FileNotFoundError, match=r"the list of images names 1 missing file\(s\): .*nope.jpg"):
        open_source([tree / "3.Tiff", tree / "nope.jpg"])
    with pytest.raises(ValueError, match="is not a folder, an image"):
        open_source(tree / "x.npy")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_source(tree / "absent")


def test_index_file_relative_paths_comments_and_blank_lines(tree):
    index = tree / "list.txt"
    index.write_text(f"# images\n\nb/2.png\n  a/1.JPG  \n{tree / '3.Tiff'}\n# a/deep/0.jpeg\n")
    collection = open_source(index)
    assert collection.names == [str(tree / "b/2.png"), str(tree / "a/1.JPG"), str(tree / "3.Tiff")]


def test_index_naming_missing_files_lists_them(tree):
    index = tree / "list.txt"
    index.write_text("b/2.png\nmissing1.jpg\nsub/missing2.png\n")
    with pytest.raises(FileNotFoundError, match=r"names 2 missing file\(s\): .*missing1.jpg, .*missing2.png"):
        open_source(index)


def test_zip_members_are_read_in_place(tmp_path, tree):
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.write(tree / "b" / "2.png", "z/2.png")
        handle.write(tree / "3.Tiff", "1.TIFF")
        handle.writestr("readme.md", "text")
        handle.writestr("folder/", "")
    collection = open_source(archive)
    assert isinstance(collection, ZipMembers)
    assert collection.members == ["1.TIFF", "z/2.png"]
    assert collection.load(1) == (tree / "b" / "2.png").read_bytes()


def test_empty_sources_are_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images found in .*empty"):
        open_source(tmp_path / "empty")
    with zipfile.ZipFile(tmp_path / "empty.zip", "w"):
        pass
    with pytest.raises(ValueError, match="no images found in .*empty.zip"):
        open_source(tmp_path / "empty.zip")
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    with pytest.raises(ValueError, match="no images found in .*empty.txt"):
        open_source(tmp_path / "empty.txt")
    with pytest.raises(ValueError, match="no images found in an empty list"):
        open_source([])


def test_in_memory_images_datasets_and_iterables():
    arrays = [np.zeros((4, 4, 3), np.uint8), Image.new("RGB", (4, 4))]
    collection = open_source(arrays)
    assert collection.names == ["image[0]", "image[1]"] and collection.load(1) is arrays[1]

    class Pairs:
        def __len__(self):
            return 3

        def __getitem__(self, index):
            return np.full((4, 4), index, np.uint8), index

    dataset = open_source(Pairs())
    assert dataset.names == ["Pairs[0]", "Pairs[1]", "Pairs[2]"] and dataset.load(2)[1] == 2
    stream = open_source((np.zeros((4, 4), np.uint8) for _ in range(10)), num_images=3)
    assert isinstance(stream, ItemStream) and [name for name, _ in stream] == ["generator[0]", "generator[1]", "generator[2]"]
    with pytest.raises(ValueError, match="shuffle_files needs a source of known length"):
        open_source(iter([1]), shuffle_files=True)
    with pytest.raises(TypeError, match="unsupported source of type int"):
        open_source(3)


def test_num_images_and_shuffle_pick_the_subset_vdna_011_picks(tmp_path):
    for index in range(10):
        write_image(tmp_path / f"{index}.png")
    everything = open_source(tmp_path).names
    assert open_source(tmp_path, num_images=3).names == everything[:3]
    order = list(range(10))
    random.Random(7).shuffle(order)
    assert open_source(tmp_path, num_images=4, shuffle_files=True, seed=7).names == [everything[i] for i in order[:4]]
    assert open_source(tmp_path, num_images=50).names == everything
    with pytest.raises(ValueError, match="num_images must be -1 .* got 0"):
        open_source(tmp_path, num_images=0)
