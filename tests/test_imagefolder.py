"""The ``imagefolder`` dataset on small PNG / JPEG files written here; the shared CIFAR-10 JPEGs if there."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinyevo.arch import Architecture
from tinyevo.data import imagefolder, load_dataset
from tinyevo.data.imagefolder import find_splits
from tinyevo.errors import TinyevoError
from tinyevo.runs.results import load_results
from tinyevo.store import Store

ROOT = Path(__file__).resolve().parents[1]
CIFAR10_JPG = ROOT / ".." / "shared" / "datasets" / "cifar10-jpg"


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    """The loader's disk cache goes to a folder of the test, never to the user's."""
    monkeypatch.setenv("TINYEVO_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def images(tmp_path) -> Path:
    """The data folder of a test (beside, not around, the cache folder)."""
    return tmp_path / "images"


def write_image(path: Path, pixels: np.ndarray) -> np.ndarray:
    """Writes (H, W) grayscale or (H, W, 3) RGB uint8 pixels; the format follows the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return pixels


def write_folder(root: Path, classes=("cat", "dog", "emu"), per_class=4, shape=(6, 5, 3), seed=0,
                 suffix=".png") -> dict[str, list[np.ndarray]]:
    """root/<class>/<i>.png of random pixels; returns the pixels by class, in file order."""
    rng = np.random.default_rng(seed)
    return {name: [write_image(root / name / f"{i:03d}{suffix}", rng.integers(0, 256, shape, dtype=np.uint8))
                   for i in range(per_class)] for name in classes}


def as_hwc(pixels: np.ndarray) -> np.ndarray:
    return pixels[..., None] if pixels.ndim == 2 else pixels


def label_of_rows(data, written: dict[str, list[np.ndarray]]) -> dict[bytes, int]:
    return {as_hwc(p).tobytes(): label for label, name in enumerate(sorted(written)) for p in written[name]}


# --- layouts ------------------------------------------------------------------------------------
def test_train_test_folders_are_the_splits_pixels_and_labels_exact(images):
    train = write_folder(images / "train", per_class=5, seed=1)
    test = write_folder(images / "test", per_class=2, seed=2)
    data = load_dataset("imagefolder", data_dir=images, val_size=3, seed=0)
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (12, 3, 6)
    assert data.input_shape == (6, 5, 3) and data.num_classes == 3 and data.x_train.dtype == np.uint8
    assert data.scale == pytest.approx(1 / 255)
    assert data.meta["classes"] == ["cat", "dog", "emu"] and data.meta["test_split"] == "folder"
    # the test split in file order: classes sorted, files sorted
    expected_test = np.stack([p for name in sorted(test) for p in test[name]])
    assert np.array_equal(data.x_test, expected_test) and data.y_test.tolist() == [0, 0, 1, 1, 2, 2]
    labels = label_of_rows(data, train)
    rows = np.concatenate([data.x_train, data.x_val])
    assert sorted(labels[r.tobytes()] for r in rows) == sorted(labels.values())  # each image once
    assert all(labels[r.tobytes()] == y for r, y in zip(rows, np.concatenate([data.y_train, data.y_val])))


def test_class_folders_alone_get_a_seeded_test_split(images):
    written = write_folder(images, per_class=10)
    data = load_dataset("imagefolder", data_dir=images, seed=4, test_size=6, val_size=3)
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (21, 3, 6)
    assert data.meta["test_split"] == "seeded" and data.meta["split_seed"] == 4
    labels = label_of_rows(data, written)
    rows = np.concatenate([data.x_train, data.x_val, data.x_test])
    assert sorted(labels[r.tobytes()] for r in rows) == sorted(labels.values())
    again = load_dataset("imagefolder", data_dir=images, seed=4, test_size=6, val_size=3, cache=False)
    other = load_dataset("imagefolder", data_dir=images, seed=5, test_size=6, val_size=3)
    for part in ("train", "val", "test"):
        assert all(np.array_equal(a, b) for a, b in zip(data.split(part), again.split(part)))
    assert not np.array_equal(data.x_test, other.x_test)


def test_color_modes_and_grayscale_files(images):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        for i in range(2):
            write_image(images / "gray" / name / f"{i}.png", rng.integers(0, 256, (4, 4), dtype=np.uint8))
    gray = load_dataset("imagefolder", data_dir=images / "gray", test_size=1, val_size=1)
    assert gray.input_shape == (4, 4, 1)
    assert load_dataset("imagefolder", data_dir=images / "gray", color_mode="rgb", test_size=1,
                        val_size=1).input_shape == (4, 4, 3)
    colour = write_image(images / "gray" / "b" / "9.png", rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    mixed = load_dataset("imagefolder", data_dir=images / "gray", test_size=1, val_size=0, cache=False)
    rows = np.concatenate([mixed.x_train, mixed.x_test])
    assert mixed.input_shape == (4, 4, 3)  # one colour image: all in RGB, grayscale ones repeated
    assert any(np.array_equal(r, colour) for r in rows)
    assert all(np.array_equal(r, colour) or (r == r[..., :1]).all() for r in rows)
    as_gray = load_dataset("imagefolder", data_dir=images / "gray", color_mode="grayscale", test_size=1,
                           val_size=0)
    expected = np.asarray(Image.fromarray(colour).convert("L"))[..., None]
    assert as_gray.input_shape == (4, 4, 1)
    assert any(np.array_equal(r, expected) for r in np.concatenate([as_gray.x_train, as_gray.x_test]))


def test_image_size_resizes_every_image_as_pillow_does(images):
    write_folder(images, per_class=2, shape=(8, 8, 3))
    odd = write_image(images / "dog" / "big.png", np.random.default_rng(1).integers(0, 256, (12, 10, 3),
                                                                                          dtype=np.uint8))
    data = load_dataset("imagefolder", data_dir=images, image_size=[4, 6], test_size=1, val_size=0)
    assert data.input_shape == (4, 6, 3)
    expected = np.asarray(Image.fromarray(odd).resize((6, 4), Image.Resampling.BILINEAR))
    assert any(np.array_equal(r, expected) for r in np.concatenate([data.x_train, data.x_test]))
    assert load_dataset("imagefolder", data_dir=images, image_size=8, test_size=1).input_shape == (8, 8, 3)


def test_jpeg_files_decode_close_to_what_was_written(images):
    smooth = np.broadcast_to(np.linspace(0, 255, 16, dtype=np.uint8)[None, :, None], (16, 16, 3)).copy()
    for name in ("a", "b"):
        write_image(images / "train" / name / "0.jpg", smooth)
        write_image(images / "test" / name / "0.jpg", smooth)
    data = load_dataset("imagefolder", data_dir=images, val_size=0)
    assert data.input_shape == (16, 16, 3) and len(data.y_test) == 2
    assert np.abs(data.x_test.astype(int) - smooth).max() <= 8  # JPEG is lossy


def test_hidden_files_and_folders_are_skipped_and_limit_per_class(images):
    write_folder(images, per_class=5)
    (images / "cat" / ".DS_Store").write_bytes(b"\0\1junk")
    (images / ".thumbnails").mkdir()
    (images / "notes.txt").write_text("a file beside the class folders is ignored")
    data = load_dataset("imagefolder", data_dir=images, test_size=3, val_size=0)
    assert data.num_classes == 3 and len(data.y_train) + len(data.y_test) == 15
    small = load_dataset("imagefolder", data_dir=images, test_size=1, val_size=0, limit_per_class=2)
    assert len(small.y_train) + len(small.y_test) == 6


# --- bad input ------------------------------------------------------------------------------------
def bad_image(root):
    write_folder(root)
    (root / "dog" / "readme.txt").write_text("not a picture")


def other_size(root):
    write_folder(root)
    write_image(root / "emu" / "zz.png", np.zeros((7, 5, 3), np.uint8))


def different_classes(root):
    write_folder(root / "train", classes=("cat", "dog"))
    write_folder(root / "test", classes=("cat", "emu"))


@pytest.mark.parametrize("make, options, message", [
    (None, {}, "does not exist"),
    (lambda r: r.mkdir(), {}, "has no class folders"),
    (lambda r: write_image(r / "a.png", np.zeros((4, 4), np.uint8)), {}, "has no class folders"),
    (lambda r: (write_folder(r), (r / "empty").mkdir()), {}, "class folder '.*empty' has no images"),
    (bad_image, {}, r"dog/readme.txt is not an image Pillow can read"),
    (lambda r: (write_folder(r), (r / "dog" / "001.png").write_bytes(b"\x89PNG broken")), {},
     r"dog/001.png is not an image"),
    (other_size, {}, r"emu/zz.png is 7x5 pixels \(height x width\) but .*cat/000.png is 6x5; "
                     r"give image_size"),
    (different_classes, {}, r"train and test have different classes \(only in train: \['dog'\]; "
                            r"only in test: \['emu'\]\)"),
    (lambda r: write_folder(r, classes=("cat",)), {}, r"has one class folder \('cat'\)"),
    (lambda r: write_folder(r / "train"), {}, r"train/cat is a folder inside class folder"),
    (lambda r: write_image(r, np.zeros((4, 4), np.uint8)), {}, "is not a folder"),
    (write_folder, {"image_size": [0, 4]}, "image_size must be"),
    (write_folder, {"image_size": "big"}, "image_size must be"),
    (write_folder, {"color_mode": "cmyk"}, "color_mode must be one of rgb, grayscale"),
    (write_folder, {"limit_per_class": 0}, "limit_per_class must be"),
])
def test_bad_input_is_one_clear_line(tmp_path, make, options, message):
    root = tmp_path / "images.png" if "not a folder" in message else tmp_path / "images"
    if make is not None:
        make(root)
    with pytest.raises(TinyevoError, match=message) as caught:
        load_dataset("imagefolder", data_dir=root, **options)
    assert "\n" not in str(caught.value)


def test_no_data_dir_says_how_to_give_one():
    with pytest.raises(TinyevoError, match="needs the folder of images: pass --data-dir DIR"):
        load_dataset("imagefolder")


# --- the cache ------------------------------------------------------------------------------------
def test_decoded_pixels_are_cached_outside_the_data_folder_until_a_file_changes(tmp_path, monkeypatch):
    root = tmp_path / "images"
    write_folder(root / "train", per_class=3)
    write_folder(root / "test", per_class=1, seed=5)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    first = load_dataset("imagefolder", data_dir=root)
    assert len(list((tmp_path / "cache").glob("imagefolder-*.npz"))) == 1
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # nothing written there

    def no_decoding(*args):
        raise AssertionError("decoded again")
    monkeypatch.setattr(imagefolder, "read_image", no_decoding)
    cached = load_dataset("imagefolder", data_dir=root)
    for part in ("train", "val", "test"):
        assert all(np.array_equal(a, b) for a, b in zip(first.split(part), cached.split(part)))
    monkeypatch.undo()
    monkeypatch.setenv("TINYEVO_CACHE_DIR", str(tmp_path / "cache"))

    changed = write_image(root / "test" / "dog" / "000.png", np.full((6, 5, 3), 7, np.uint8))
    stat = os.stat(root / "test" / "dog" / "000.png")
    os.utime(root / "test" / "dog" / "000.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    fresh = load_dataset("imagefolder", data_dir=root)
    assert np.array_equal(fresh.x_test[1], changed)
    assert len(list((tmp_path / "cache").glob("imagefolder-*.npz"))) == 1  # replaced, not added
    load_dataset("imagefolder", data_dir=root, image_size=3)
    assert len(list((tmp_path / "cache").glob("imagefolder-*.npz"))) == 2  # other options, other entry


def test_cache_off_writes_nothing_and_a_damaged_entry_is_decoded_again(tmp_path):
    root = tmp_path / "images"
    write_folder(root)
    load_dataset("imagefolder", data_dir=root, cache=False)
    assert not (tmp_path / "cache").exists()
    first = load_dataset("imagefolder", data_dir=root)
    entry, = (tmp_path / "cache").glob("imagefolder-*.npz")
    entry.write_bytes(b"not a zip")
    again = load_dataset("imagefolder", data_dir=root)
    assert np.array_equal(first.x_train, again.x_train)


# --- the CLI --------------------------------------------------------------------------------------
CONFIG = """
space = "chain"
dataset = "imagefolder"
board = "stm32f746"
strategy = "random"
objectives = ["accuracy"]
budget = 1
final_models = 1
final_epochs = 1

[dataset_options]
image_size = [8, 8]

[space_options]
filters = [4]
units = [8]

[fidelity]
epochs = 1
"""


def tinyevo(tmp_path, *args) -> subprocess.CompletedProcess:
    environment = {**os.environ, "TINYEVO_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "tinyevo.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=environment)


def test_search_reads_an_image_folder_with_dataset_options_and_augmentation(tmp_path, images):
    write_folder(images / "train", per_class=12, shape=(10, 10, 3))
    write_folder(images / "test", per_class=3, shape=(10, 10, 3), seed=1)
    (tmp_path / "c.toml").write_text(CONFIG)
    result = tinyevo(tmp_path, "search", "--config", str(tmp_path / "c.toml"), "--data-dir", str(images),
                     "--augment", "crop1+flip", "--out", str(tmp_path / "run"), "--no-progress")
    assert result.returncode == 0, result.stderr
    with Store(tmp_path / "run" / "trials.sqlite") as store:
        stored = store.get("search_config")
        options = store.config()["estimator"]["options"]
    assert stored["dataset_options"] == {"image_size": [8, 8]}
    assert options["dataset_options"] == {"image_size": [8, 8]} and options["augment"] == "crop1+flip"
    best = load_results(tmp_path / "run")["best"]
    assert best["test_accuracy"] is not None
    kept = json.loads((tmp_path / "run" / best["weights"]).with_suffix(".json").read_text())
    assert Architecture.from_json(kept).input_shape == (8, 8, 3)  # resized by image_size

    bad = tinyevo(tmp_path, "search", "--dataset", "imagefolder", "--data-dir", str(images / "train" / "cat"),
                  "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "has no class folders" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


# --- the shared CIFAR-10 JPEGs ----------------------------------------------------------------------
@pytest.mark.skipif(not CIFAR10_JPG.is_dir(), reason="shared CIFAR-10 JPEG folder not present")
def test_shared_cifar10_jpegs_read_through_imagefolder():
    splits = find_splits(CIFAR10_JPG, None)  # listing only: all 60,000 files
    assert (len(splits["train"].files), len(splits["test"].files)) == (50_000, 10_000)
    assert np.bincount(splits["train"].labels).tolist() == [5000] * 10
    start = time.perf_counter()
    data = load_dataset("imagefolder", data_dir=CIFAR10_JPG, limit_per_class=100, cache=False)
    assert time.perf_counter() - start < 30
    assert data.input_shape == (32, 32, 3) and data.num_classes == 10
    assert data.meta["classes"] == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                    "ship", "truck"]
    assert (len(data.y_train) + len(data.y_val), len(data.y_test)) == (1000, 1000)
    assert 40 < data.x_test.mean() < 215 and data.x_test.std() > 20  # real photos, not blank
