"""Tests for bioleaf.data: the IDX reader, the dataset loaders and mini-batching."""

import gzip
import math
import os
import struct
import time

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from bioleaf import data
from bioleaf.data import FASHION_MNIST_DIR, Dataset, dataset_available, load_dataset, read_idx
from bioleaf.errors import DataError, UsageError

TMP_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    """Serialise `arr` as an IDX file with the given data type code."""
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def write_idx(path, arr, *, gz: bool = False):
    blob = idx_bytes(np.asarray(arr, dtype=np.uint8))
    path.write_bytes(gzip.compress(blob) if gz else blob)
    return path


def make_idx_dir(directory, *, n_train=20, n_test=10, size=(4, 4), names=IDX_NAMES, gz=False, seed=0):
    """Write a small MNIST-like directory; returns (train_images, train_labels) as written."""
    rng = np.random.default_rng(seed)
    contents = (
        rng.integers(0, 256, (n_train, *size)),
        rng.integers(0, 10, n_train),
        rng.integers(0, 256, (n_test, *size)),
        rng.integers(0, 10, n_test),
    )
    directory.mkdir(parents=True, exist_ok=True)
    for name, arr in zip(names, contents):
        write_idx(directory / (name + ".gz" if gz else name), arr, gz=gz)
    return contents[0], contents[1]


def raises_one_line(exc_type, func, *args, **kwargs) -> str:
    """Call func, expect exc_type, and return its (single-line) message."""
    with pytest.raises(exc_type) as info:
        func(*args, **kwargs)
    message = str(info.value)
    assert message and "\n" not in message
    return message


def expected_payload(blob: bytes) -> bytes:
    """The data bytes an IDX blob (raw or gzip) would yield if it were valid."""
    if blob[:2] == b"\x1f\x8b":
        blob = gzip.decompress(blob)
    return blob[4 + 4 * blob[3] :]


# ---------------------------------------------------------------- read_idx


@TMP_OK
@given(arr=arrays(np.uint8, array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=6)), gz=st.booleans())
def test_read_idx_round_trip(tmp_path, arr, gz):
    out = read_idx(write_idx(tmp_path / "a.idx", arr, gz=gz))
    assert out.dtype == np.uint8 and out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)
    out[...] = 0  # the result is an ordinary writable array


def test_read_idx_detects_gzip_by_content_not_name(tmp_path):
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "plain.gz", arr)), arr)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "packed", arr, gz=True)), arr)


def check_fuzzed(path, blob):
    """Reading `blob` either gives the array it encodes or a DataError, nothing else."""
    path.write_bytes(blob)
    try:
        out = read_idx(path)
    except DataError as err:
        assert "\n" not in str(err) and str(path) in str(err)
        return
    assert out.dtype == np.uint8 and out.tobytes() == expected_payload(blob)


@TMP_OK
@given(blob=st.binary(max_size=64))
def test_read_idx_fuzz_random_bytes(tmp_path, blob):
    check_fuzzed(tmp_path / "f.idx", blob)


@TMP_OK
@given(
    arr=arrays(np.uint8, array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5)),
    gz=st.booleans(),
    mutation=st.sampled_from(["truncate", "flip", "append"]),
    position=st.integers(min_value=0),
    value=st.integers(min_value=1, max_value=255),
    extra=st.binary(min_size=1, max_size=16),
)
def test_read_idx_fuzz_mutations(tmp_path, arr, gz, mutation, position, value, extra):
    blob = bytearray(idx_bytes(arr))
    if gz:
        blob = bytearray(gzip.compress(bytes(blob)))
    if mutation == "truncate":
        blob = blob[: position % len(blob)]
    elif mutation == "flip":
        blob[position % len(blob)] ^= value
    else:
        blob += extra
    check_fuzzed(tmp_path / "m.idx", bytes(blob))


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_bad_magic(tmp_path, gz):
    path = tmp_path / "bad.idx"
    blob = b"\x01\x00\x08\x01" + struct.pack(">I", 3) + b"abc"
    path.write_bytes(gzip.compress(blob) if gz else blob)
    assert "two zero bytes" in raises_one_line(DataError, read_idx, path)


def test_read_idx_unsupported_dtype(tmp_path):
    path = tmp_path / "float.idx"
    path.write_bytes(idx_bytes(np.zeros(4, np.uint8), code=0x0D))
    message = raises_one_line(DataError, read_idx, path)
    assert str(path) in message and "0x0d" in message and "0x08" in message


@pytest.mark.parametrize("ndim", [0, 5])
def test_read_idx_bad_ndim(tmp_path, ndim):
    path = tmp_path / "dims.idx"
    path.write_bytes(bytes([0, 0, 8, ndim]) + b"\x00\x00\x00\x01" * ndim + b"\x00")
    assert "1 to 4" in raises_one_line(DataError, read_idx, path)


def test_read_idx_zero_dimension(tmp_path):
    path = tmp_path / "zero.idx"
    path.write_bytes(bytes([0, 0, 8, 2]) + struct.pack(">2I", 3, 0))
    assert "zero" in raises_one_line(DataError, read_idx, path)


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_truncated(tmp_path, gz):
    path = tmp_path / "short.idx"
    blob = idx_bytes(np.zeros((10, 10), np.uint8))[:-7]
    path.write_bytes(gzip.compress(blob) if gz else blob)
    message = raises_one_line(DataError, read_idx, path)
    assert str(path) in message and "truncated" in message and "100" in message and "93" in message


def test_read_idx_truncated_header(tmp_path):
    path = tmp_path / "hdr.idx"
    path.write_bytes(bytes([0, 0, 8, 3]) + b"\x00\x00")
    assert "truncated" in raises_one_line(DataError, read_idx, path)


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_trailing_bytes(tmp_path, gz):
    path = tmp_path / "long.idx"
    blob = idx_bytes(np.zeros(5, np.uint8)) + b"junk"
    path.write_bytes(gzip.compress(blob) if gz else blob)
    message = raises_one_line(DataError, read_idx, path)
    assert str(path) in message and "trailing" in message


def test_read_idx_absurd_element_count(tmp_path):
    path = tmp_path / "bomb.idx.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 2]) + struct.pack(">2I", 2**20, 2**20)))
    message = raises_one_line(DataError, read_idx, path)
    assert str(2**40) in message and "2**31" in message


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_header_promises_more_than_file_can_hold(tmp_path, gz):
    path = tmp_path / "liar.idx"
    blob = bytes([0, 0, 8, 2]) + struct.pack(">2I", 2**15, 2**15) + b"\x00" * 100
    path.write_bytes(gzip.compress(blob) if gz else blob)
    start = time.perf_counter()
    message = raises_one_line(DataError, read_idx, path)
    assert time.perf_counter() - start < 1.0
    assert str(2**30) in message


def test_read_idx_gzip_bomb_is_not_fully_decompressed(tmp_path, monkeypatch):
    path = tmp_path / "bomb.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(10, np.uint8)) + b"\x00" * 50_000_000, compresslevel=1))
    requested = []
    real_read = gzip.GzipFile.read
    monkeypatch.setattr(gzip.GzipFile, "read", lambda self, size=-1: requested.append(size) or real_read(self, size))
    assert "trailing" in raises_one_line(DataError, read_idx, path)
    assert requested and all(0 <= size <= 11 for size in requested)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_read_idx_corrupt_gzip(tmp_path, damage):
    path = tmp_path / "broken.gz"
    blob = bytearray(gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8))))
    if damage == "flip":
        blob[len(blob) // 2] ^= 0xFF
    else:
        blob = blob[: len(blob) // 2]
    path.write_bytes(bytes(blob))
    message = raises_one_line(DataError, read_idx, path)
    assert str(path) in message and "gzip" in message


def test_read_idx_missing_and_unreadable(tmp_path):
    missing = tmp_path / "nope.idx"
    message = raises_one_line(DataError, read_idx, missing)
    assert str(missing) in message and "not found" in message
    assert str(tmp_path) in raises_one_line(DataError, read_idx, tmp_path)


# ---------------------------------------------------------------- IDX directories


def test_load_mnist_from_directory(tmp_path):
    images, labels = make_idx_dir(tmp_path, n_train=20, n_test=10, size=(3, 5), gz=True)
    ds = load_dataset("mnist", tmp_path, val_fraction=0.25)
    assert isinstance(ds, Dataset) and ds.name == "mnist" and str(tmp_path) in ds.source
    assert (ds.input_size, ds.num_classes) == (15, 10)
    assert ds.train_x.shape == (15, 15) and ds.val_x.shape == (5, 15) and ds.test_x.shape == (10, 15)
    assert ds.train_x.dtype == torch.float32 and ds.train_y.dtype == torch.int64
    expected = torch.from_numpy(images.reshape(20, -1)).float() / 255
    torch.testing.assert_close(torch.cat([ds.train_x, ds.val_x]), expected)
    assert torch.equal(torch.cat([ds.train_y, ds.val_y]), torch.from_numpy(labels))


@pytest.mark.parametrize("dotted", [False, True])
def test_load_mnist_uncompressed_names(tmp_path, dotted):
    names = tuple(n.replace("-idx", ".idx") for n in IDX_NAMES) if dotted else IDX_NAMES
    make_idx_dir(tmp_path, names=names)
    assert dataset_available("mnist", tmp_path)
    assert load_dataset("mnist", tmp_path).test_x.shape == (10, 16)


def test_mnist_requires_data_dir():
    assert "--data-dir" in raises_one_line(UsageError, load_dataset, "mnist")
    assert not dataset_available("mnist")


def test_count_mismatch_names_both_files(tmp_path):
    make_idx_dir(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(19))
    message = raises_one_line(DataError, load_dataset, "mnist", tmp_path)
    assert "train-images-idx3-ubyte" in message and "train-labels-idx1-ubyte" in message
    assert "20" in message and "19" in message


def test_labels_out_of_range(tmp_path):
    make_idx_dir(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    message = raises_one_line(DataError, load_dataset, "mnist", tmp_path)
    assert "t10k-labels-idx1-ubyte" in message and "10" in message and "0..9" in message


@pytest.mark.parametrize(
    ("name", "arr", "expected"),
    [("train-images-idx3-ubyte", np.zeros((20, 16)), "3-D"), ("train-labels-idx1-ubyte", np.zeros((20, 1)), "1-D")],
)
def test_wrong_file_dimensions(tmp_path, name, arr, expected):
    make_idx_dir(tmp_path)
    write_idx(tmp_path / name, arr)
    message = raises_one_line(DataError, load_dataset, "mnist", tmp_path)
    assert name in message and expected in message


def test_train_test_image_sizes_differ(tmp_path):
    make_idx_dir(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((10, 5, 5)))
    message = raises_one_line(DataError, load_dataset, "mnist", tmp_path)
    assert "4x4" in message and "5x5" in message


def test_missing_fashion_mnist_message(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "FASHION_MNIST_DIR", str(tmp_path / "absent"))
    assert not dataset_available("fashion-mnist")
    message = raises_one_line(DataError, load_dataset, "fashion-mnist")
    assert message == (
        f"Fashion-MNIST not found in {tmp_path / 'absent'} (missing train-images-idx3-ubyte.gz): "
        "install it with 'apt-get install dataset-fashion-mnist' or pass --data-dir DIR with the four IDX files"
    )


def test_missing_single_file_is_named(tmp_path):
    make_idx_dir(tmp_path, gz=True)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    assert not dataset_available("fashion-mnist", tmp_path)
    message = raises_one_line(DataError, load_dataset, "fashion-mnist", tmp_path)
    assert "t10k-labels-idx1-ubyte" in message and "--data-dir" in message


# ---------------------------------------------------------------- parameters


def test_unknown_dataset_lists_choices():
    message = raises_one_line(UsageError, load_dataset, "cifar")
    assert "cifar" in message and all(name in message for name in ("fashion-mnist", "mnist", "digits"))
    with pytest.raises(UsageError):
        dataset_available("cifar")


@pytest.mark.parametrize("limit", [0, 5, 9, -1])
def test_bad_limit(limit):
    assert "--limit" in raises_one_line(UsageError, load_dataset, "digits", limit=limit)


@pytest.mark.parametrize("fraction", [-0.1, 0.51, 1.0, math.nan])
def test_bad_val_fraction(fraction):
    assert "--val-fraction" in raises_one_line(UsageError, load_dataset, "digits", val_fraction=fraction)


# ---------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits_full():
    return load_dataset("digits", val_fraction=0.0)


def test_digits_shapes_and_range(digits_full):
    ds = load_dataset("digits")
    assert dataset_available("digits")
    assert (ds.input_size, ds.num_classes) == (64, 10)
    assert ds.train_x.shape == (1293, 64) and ds.val_x.shape == (144, 64) and ds.test_x.shape == (360, 64)
    for x, y in ((ds.train_x, ds.train_y), (ds.val_x, ds.val_y), (ds.test_x, ds.test_y)):
        assert x.dtype == torch.float32 and y.dtype == torch.int64 and len(x) == len(y)
        assert x.min() >= 0 and x.max() <= 1 and set(y.tolist()) <= set(range(10))
    assert ds.train_x.max() == 1
    assert digits_full.val_x.shape == (0, 64) and digits_full.train_x.shape == (1437, 64)


def test_digits_is_deterministic(digits_full):
    again = load_dataset("digits", val_fraction=0.0)
    for field in ("train_x", "train_y", "test_x", "test_y"):
        assert torch.equal(getattr(again, field), getattr(digits_full, field))


@settings(deadline=None, max_examples=25)
@given(limit=st.integers(min_value=10, max_value=2000), fraction=st.floats(min_value=0.0, max_value=0.5))
def test_limit_and_validation_split(digits_full, limit, fraction):
    ds = load_dataset("digits", limit=limit, val_fraction=fraction)
    n = min(limit, 1437)
    n_val = max(1, round(fraction * n)) if fraction > 0 else 0
    assert len(ds.val_y) == n_val and len(ds.train_y) == n - n_val
    assert torch.equal(ds.train_x, digits_full.train_x[: n - n_val])
    assert torch.equal(ds.val_x, digits_full.train_x[n - n_val : n])
    assert torch.equal(ds.test_y, digits_full.test_y)


# ---------------------------------------------------------------- real Fashion-MNIST


@pytest.fixture(scope="module")
def fashion_dir():
    if not os.path.isdir(FASHION_MNIST_DIR):
        pytest.skip(f"{FASHION_MNIST_DIR} absent (apt-get install dataset-fashion-mnist)")
    return FASHION_MNIST_DIR


def test_fashion_mnist_full(fashion_dir):
    assert dataset_available("fashion-mnist")
    ds = load_dataset("fashion-mnist")
    assert ds.name == "fashion-mnist" and fashion_dir in ds.source
    assert ds.train_x.shape == (54000, 784) and ds.val_x.shape == (6000, 784) and ds.test_x.shape == (10000, 784)
    assert (ds.input_size, ds.num_classes) == (784, 10)
    assert 0 <= ds.test_x.min() and ds.test_x.max() <= 1
    assert torch.bincount(ds.test_y).tolist() == [1000] * 10


def test_fashion_mnist_limit(fashion_dir):
    ds = load_dataset("fashion-mnist", limit=1000)
    assert len(ds.train_y) == 900 and len(ds.val_y) == 100 and len(ds.test_y) == 10000
