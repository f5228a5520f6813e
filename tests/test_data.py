"""Dataset loaders on small files written here in the real formats; downloads from a local server."""
from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import os
import pickle
import struct
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from tinyevo.data import DATASETS, load_dataset
from tinyevo.data import idx as idx_module
from tinyevo.data.base import split_rows
from tinyevo.data.download import RemoteFile, fetch
from tinyevo.errors import TinyevoError

MNIST70K = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "mnist70k.npz"
IDX_NAMES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


# --- writers of the real formats, independent of the loaders -------------------------------------
def idx_bytes(array: np.ndarray) -> bytes:
    """IDX: 0x00 0x00, type 0x08 (ubyte), ndim, big-endian dims, values."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_set(folder: Path, rng, n_train=12, n_test=5, gzipped=True) -> dict:
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8)}
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        raw = idx_bytes(array)
        if gzipped:
            (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return arrays


def cifar_batch(rng, rows: int) -> dict:
    return {b"batch_label": b"test", b"labels": [int(v) for v in rng.integers(0, 10, rows)],
            b"data": rng.integers(0, 256, (rows, 3072), dtype=np.uint8), b"filenames": [b"a.png"] * rows}


def write_cifar_tar(path: Path, rng, rows=3) -> dict:
    batches = {f"data_batch_{i}": cifar_batch(rng, rows) for i in range(1, 6)}
    batches["test_batch"] = cifar_batch(rng, rows)
    with tarfile.open(path, "w:gz") as archive:
        for name, batch in batches.items():
            raw = pickle.dumps(batch, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
    return batches


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/served; yields (folder, base URL)."""
    folder = tmp_path / "served"
    folder.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def rows_as_set(*parts) -> list[bytes]:
    return sorted(x.tobytes() + bytes([int(y)]) for xs, ys in parts for x, y in zip(xs, ys))


# --- digits and mnist1d: offline ----------------------------------------------------------------
def test_digits_is_a_seeded_partition_of_sklearn_digits():
    from sklearn.datasets import load_digits

    data = load_dataset("digits", seed=3)
    assert data.input_shape == (8, 8, 1) and data.num_classes == 10
    parts = [data.split(p) for p in ("train", "val", "test")]
    assert sum(len(y) for _, y in parts) == 1797
    reference = load_digits()
    original = (reference.images.astype(np.uint8)[..., None], reference.target)
    assert rows_as_set(*parts) == rows_as_set(original)  # every row once: disjoint and complete
    assert np.allclose(data.as_float(data.x_train).max(), 1.0)  # 16/16
    again, other = load_dataset("digits", seed=3), load_dataset("digits", seed=4)
    assert np.array_equal(again.x_val, data.x_val) and np.array_equal(again.y_test, data.y_test)
    assert not np.array_equal(other.y_test, data.y_test)


def test_split_rows_are_disjoint_and_cover_everything():
    parts = split_rows(100, [10, 20], np.random.default_rng(0))
    assert [len(p) for p in parts] == [10, 20, 70]
    assert sorted(np.concatenate(parts).tolist()) == list(range(100))


def test_mnist1d_shapes_classes_and_determinism():
    data = load_dataset("mnist1d", val_size=500)
    assert data.input_shape == (1, 40, 1)
    assert len(data.y_train) + len(data.y_val) == 4000 and len(data.y_test) == 1000
    all_labels = np.concatenate([data.y_train, data.y_val, data.y_test])
    assert np.array_equal(np.bincount(all_labels), [500] * 10)
    same, other = load_dataset("mnist1d", val_size=500), load_dataset("mnist1d", generation_seed=7)
    assert np.array_equal(same.x_test, data.x_test)
    assert not np.allclose(other.x_test, data.x_test)
    everything = np.concatenate([data.x_train, data.x_val, data.x_test])
    assert abs(everything.mean()) < 1e-4 and abs(everything.std() - 1) < 1e-4  # standardized as published


def test_mnist1d_is_as_hard_for_a_linear_model_as_published():
    """Greydanus (2020), Fig. 1: logistic regression reaches about 32% test accuracy on MNIST-1D."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    data = load_dataset("mnist1d", val_size=0)
    with threadpool_limits(1):  # many BLAS threads on a busy machine are 100x slower
        model = LogisticRegression(max_iter=300).fit(data.x_train.reshape(4000, 40), data.y_train)
    accuracy = model.score(data.x_test.reshape(1000, 40), data.y_test)
    assert 0.25 < accuracy < 0.42


# --- IDX (mnist, fashion-mnist) ------------------------------------------------------------------
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
@pytest.mark.parametrize("gzipped", [True, False])
def test_idx_loader_reads_files_on_disk(tmp_path, name, gzipped):
    arrays = write_idx_set(tmp_path, np.random.default_rng(0), gzipped=gzipped)
    data = load_dataset(name, data_dir=tmp_path, val_size=3)
    assert data.input_shape == (28, 28, 1) and data.x_train.dtype == np.uint8
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (9, 3, 5)
    assert np.array_equal(data.x_test[..., 0], arrays["t10k-images-idx3-ubyte"])
    assert np.array_equal(data.y_test, arrays["t10k-labels-idx1-ubyte"])
    train = (arrays["train-images-idx3-ubyte"][..., None], arrays["train-labels-idx1-ubyte"])
    assert rows_as_set(data.split("train"), data.split("val")) == rows_as_set(train)
    assert data.scale == pytest.approx(1 / 255)


def test_idx_bad_magic_and_truncation_are_one_line_errors(tmp_path):
    write_idx_set(tmp_path, np.random.default_rng(0), gzipped=False)
    images = tmp_path / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-10])
    with pytest.raises(TinyevoError, match="truncated"):
        load_dataset("mnist", data_dir=tmp_path)
    images.write_bytes(b"\x12\x34\x08\x03" + bytes(100))
    with pytest.raises(TinyevoError, match="magic"):
        load_dataset("mnist", data_dir=tmp_path)


def test_idx_download_from_local_server_is_cached(tmp_path, server, monkeypatch):
    served, url = server
    arrays = write_idx_set(served, np.random.default_rng(1))
    files = [RemoteFile(n, ("unused",), sha256=sha256_of(served / n)) for n in IDX_NAMES]
    monkeypatch.setattr(idx_module, "MNIST_FILES", files)
    cache = tmp_path / "cache"
    data = load_dataset("mnist", cache_dir=cache, mirrors=[url], val_size=2)
    assert np.array_equal(data.y_test, arrays["t10k-labels-idx1-ubyte"])
    assert sorted(os.listdir(cache)) == sorted(IDX_NAMES)
    for name in IDX_NAMES:
        (served / name).unlink()  # the second load must come from the cache
    assert np.array_equal(load_dataset("mnist", cache_dir=cache, download=False).y_test, data.y_test)


def test_corrupt_mnist_download_is_reported_and_not_cached(tmp_path, server):
    """The official SHA-256 sums cannot match the files written here: every download is corrupt."""
    served, url = server
    write_idx_set(served, np.random.default_rng(2))
    cache = tmp_path / "cache"
    with pytest.raises(TinyevoError, match="checksum mismatch") as caught:
        load_dataset("mnist", cache_dir=cache, mirrors=[url])
    assert "\n" not in str(caught.value)
    assert list(cache.iterdir()) == []


# --- generic download ----------------------------------------------------------------------------
def test_fetch_checks_sha256_over_http_and_file_urls(tmp_path, server):
    served, url = server
    (served / "blob.bin").write_bytes(b"tinyevo" * 1000)
    good = sha256_of(served / "blob.bin")
    cache = tmp_path / "cache"
    for source in (url + "blob.bin", (served / "blob.bin").as_uri()):
        with pytest.raises(TinyevoError, match="checksum mismatch"):
            fetch(RemoteFile("blob.bin", (source,), sha256="0" * 64), cache)
        assert list(cache.iterdir()) == []  # no file, no partial download
    path = fetch(RemoteFile("blob.bin", ("http://127.0.0.1:9/nothing", url + "blob.bin"), sha256=good), cache)
    assert path.read_bytes() == b"tinyevo" * 1000


def test_damaged_cached_file_is_fetched_again(tmp_path, server):
    served, url = server
    (served / "blob.bin").write_bytes(b"right")
    remote = RemoteFile("blob.bin", (url + "blob.bin",), md5=hashlib.md5(b"right").hexdigest())
    (tmp_path / "blob.bin").write_bytes(b"wrong")
    assert fetch(remote, tmp_path).read_bytes() == b"right"
    (tmp_path / "blob.bin").write_bytes(b"wrong")
    with pytest.raises(TinyevoError, match="downloads are off"):
        fetch(remote, tmp_path, download=False)


# --- CIFAR-10 -----------------------------------------------------------------------------------
def test_cifar10_from_tarball_folder_and_download(tmp_path, server, monkeypatch):
    served, url = server
    batches = write_cifar_tar(served / "cifar-10-python.tar.gz", np.random.default_rng(0))
    red, green = batches["test_batch"][b"data"][0, 1], batches["test_batch"][b"data"][0, 1024 + 2 * 32 + 3]
    local = load_dataset("cifar10", data_dir=served, val_size=3)
    assert local.input_shape == (32, 32, 3) and (len(local.y_train), len(local.y_test)) == (12, 3)
    assert local.x_test[0, 0, 1, 0] == red and local.x_test[0, 2, 3, 1] == green  # planes -> HWC
    assert local.y_test.tolist() == batches["test_batch"][b"labels"]
    with tarfile.open(served / "cifar-10-python.tar.gz") as archive:
        archive.extractall(tmp_path / "extracted", filter="data")
    extracted = load_dataset("cifar10", data_dir=tmp_path / "extracted", val_size=3)
    assert np.array_equal(extracted.x_test, local.x_test) and np.array_equal(extracted.x_val, local.x_val)
    from tinyevo.data import cifar10

    remote = cifar10.REMOTE
    with pytest.raises(TinyevoError, match="checksum mismatch"):  # the official sum cannot match
        load_dataset("cifar10", cache_dir=tmp_path / "cache", mirrors=[url])
    assert list((tmp_path / "cache").iterdir()) == []
    good = RemoteFile(remote.filename, remote.urls, sha256=sha256_of(served / remote.filename))
    monkeypatch.setattr(cifar10, "REMOTE", good)
    downloaded = load_dataset("cifar10", cache_dir=tmp_path / "cache", mirrors=[url], val_size=3)
    assert np.array_equal(downloaded.x_test, local.x_test)


def test_cifar10_batch_cannot_run_code(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps(cifar_batch(np.random.default_rng(0), 2), protocol=2))
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Exploit(), b"labels": [1]}))
    with pytest.raises(TinyevoError, match="not a CIFAR-10 python batch"):
        load_dataset("cifar10", data_dir=tmp_path)
    assert not marker.exists()


# --- npz ----------------------------------------------------------------------------------------
def test_npz_images_signals_and_given_test_split(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (50, 6, 5), dtype=np.uint8), rng.integers(0, 3, 50)
    np.savez(tmp_path / "images.npz", x=x, y=y)
    data = load_dataset("npz", path=tmp_path / "images.npz", test_size=10, val_size=5, seed=1)
    assert data.input_shape == (6, 5, 1) and data.num_classes == 3 and data.name == "images"
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (35, 5, 10)
    assert rows_as_set(*(data.split(p) for p in ("train", "val", "test"))) == rows_as_set((x[..., None], y))
    np.savez(tmp_path / "signals.npz", x=rng.normal(size=(20, 7)), y=np.arange(20) % 4,
             x_test=rng.normal(size=(6, 7)), y_test=np.arange(6) % 4)
    signals = load_dataset("npz", data_dir=tmp_path, path="signals.npz", val_size=0.25)
    assert signals.input_shape == (1, 7, 1) and signals.x_train.dtype == np.float32
    assert (len(signals.y_train), len(signals.y_val), len(signals.y_test)) == (15, 5, 6)
    assert signals.meta["test_split"] == "official" and signals.scale == 1.0


def test_npz_without_labels_is_a_one_line_error(tmp_path):
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 2, 2)))
    with pytest.raises(TinyevoError, match=r"lacks array\(s\) \['y'\]"):
        load_dataset("npz", path=tmp_path / "bad.npz")


def test_npz_with_no_rows_says_so(tmp_path):
    np.savez(tmp_path / "empty.npz", x=np.zeros((0, 8, 8)), y=np.zeros(0, np.int64))
    with pytest.raises(TinyevoError, match="x has no rows"):
        load_dataset("npz", path=tmp_path / "empty.npz")


@pytest.mark.skipif(not MNIST70K.exists(), reason="shared MNIST file not present")
def test_shared_mnist70k_loads_through_npz():
    data = load_dataset("npz", path=MNIST70K, test_size=10000, seed=0)
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (54000, 6000, 10000)
    assert data.input_shape == (28, 28, 1) and data.x_train.dtype == np.uint8 and data.num_classes == 10


# --- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize("call, message", [
    (lambda: load_dataset("imagenet"), "unknown dataset 'imagenet'"),
    (lambda: load_dataset("mnist", data_dir="/no/such/dir"), "does not exist"),
    (lambda: load_dataset("cifar10", data_dir="/no/such/dir"), "does not exist"),
    (lambda: load_dataset("digits", colour=True), "no option"),
    (lambda: load_dataset("npz"), "needs the file"),
    (lambda: load_dataset("digits", val_size=2.5), "val_size"),
])
def test_bad_input_is_one_clear_line(call, message):
    with pytest.raises(TinyevoError, match=message) as caught:
        call()
    assert "\n" not in str(caught.value)


def test_empty_data_dir_names_the_missing_file(tmp_path):
    with pytest.raises(TinyevoError, match="train-images-idx3-ubyte.gz"):
        load_dataset("mnist", data_dir=tmp_path)


def test_every_dataset_is_registered():
    assert set(DATASETS.names()) >= {"digits", "mnist1d", "mnist", "fashion-mnist", "cifar10", "npz"}
