"""Datasets: a strict IDX reader, the (Fashion-)MNIST and digits loaders, and mini-batching.

Every problem with a user's files or flags becomes a one-line `DataError` or
`UsageError`; nothing here downloads anything.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from bioleaf.errors import DataError, UsageError

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
DATASETS = ("fashion-mnist", "mnist", "digits")
NUM_CLASSES = 10
_TITLES = {"fashion-mnist": "Fashion-MNIST", "mnist": "MNIST"}

_GZIP_MAGIC = b"\x1f\x8b"
_UBYTE_CODE = 0x08
_MAX_ELEMENTS = 2**31
# Deflate cannot expand data by more than about 1032:1, which bounds what a
# gzip file of a given size can honestly hold.
_MAX_GZIP_RATIO = 1032
# The four IDX files of a (Fashion-)MNIST directory, by role.
_IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an unsigned-byte IDX file (raw or gzip-compressed) into a uint8 array.

    Compression is detected from the gzip magic bytes, not the file name. The
    header is validated before any data buffer is allocated, and a compressed
    stream is never decompressed past the promised size plus one byte, so a
    lying header or a gzip bomb fails fast with a `DataError`.
    """
    path = Path(path)
    try:
        raw = open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: IDX file not found") from None
    except OSError as err:
        raise DataError(f"{path}: cannot open IDX file: {err.strerror or err}") from None
    with raw:
        compressed = False
        try:
            size = os.fstat(raw.fileno()).st_size
            compressed = raw.read(2) == _GZIP_MAGIC
            raw.seek(0)
            if not compressed:
                return _parse_idx(path, raw, size, compressed=False)
            with gzip.GzipFile(fileobj=raw) as stream:
                return _parse_idx(path, stream, size, compressed=True)
        except (OSError, EOFError, zlib.error) as err:
            kind = "corrupt gzip-compressed" if compressed else "unreadable"
            raise DataError(f"{path}: {kind} IDX file: {getattr(err, 'strerror', None) or err}") from None


def _parse_idx(path: Path, stream: BinaryIO, file_size: int, *, compressed: bool) -> np.ndarray:
    """Validate the IDX header in `stream`, then read exactly the promised data."""
    magic = stream.read(4)
    if len(magic) < 4:
        raise DataError(f"{path}: truncated IDX file: expected a 4-byte magic number, file has {len(magic)} bytes")
    if magic[:2] != b"\x00\x00":
        raise DataError(f"{path}: not an IDX file: magic number must start with two zero bytes, got {magic.hex()}")
    code, ndim = magic[2], magic[3]
    if code != _UBYTE_CODE:
        raise DataError(f"{path}: unsupported IDX data type code 0x{code:02x}: only 0x08 (unsigned byte) is supported")
    if not 1 <= ndim <= 4:
        raise DataError(f"{path}: IDX file declares {ndim} dimensions, expected 1 to 4")
    raw_dims = stream.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DataError(f"{path}: truncated IDX header: expected {ndim} dimension sizes")
    dims = struct.unpack(f">{ndim}I", raw_dims)
    if 0 in dims:
        raise DataError(f"{path}: IDX dimensions {dims} include a zero, expected all > 0")
    count = math.prod(dims)
    if count > _MAX_ELEMENTS:
        raise DataError(f"{path}: IDX dimensions {dims} give {count} elements, more than the supported 2**31")
    header_size = 4 + 4 * ndim
    if compressed and count > file_size * _MAX_GZIP_RATIO:
        raise DataError(
            f"{path}: IDX header promises {count} bytes of data, "
            f"more than a {file_size}-byte gzip file can hold"
        )
    if not compressed and count > file_size - header_size:
        raise DataError(
            f"{path}: truncated IDX file: header promises {count} bytes of data, "
            f"file has {file_size - header_size}"
        )
    data = stream.read(count + 1)
    if len(data) < count:
        raise DataError(f"{path}: truncated IDX file: header promises {count} bytes of data, file has {len(data)}")
    if len(data) > count:
        raise DataError(f"{path}: trailing bytes after the {count} bytes of data the IDX header promises")
    return np.frombuffer(data, dtype=np.uint8, count=count).reshape(dims).copy()


@dataclass(frozen=True)
class Dataset:
    """A classification dataset split three ways.

    `*_x` are float32 tensors in [0, 1] of shape [N, input_size]; `*_y` are
    int64 class indices of shape [N]. `source` says where the data came from.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    input_size: int
    num_classes: int
    source: str


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    limit: int | None = None,
    val_fraction: float = 0.1,
) -> Dataset:
    """Load `name` ("fashion-mnist", "mnist" or "digits") and split it deterministically.

    The first `limit` training samples are kept (all when None); the last
    `round(val_fraction * n)` of them (at least one when `val_fraction` > 0)
    become the validation split. The test split is always the full test set.
    `data_dir` replaces the Fashion-MNIST default directory, is required for
    MNIST, and is ignored for the bundled scikit-learn digits.
    """
    _check_name(name)
    if limit is not None and limit < 10:
        raise UsageError(f"--limit must be at least 10, got {limit}")
    if not 0 <= val_fraction <= 0.5:
        raise UsageError(f"--val-fraction must be between 0 and 0.5, got {val_fraction}")
    if name == "digits":
        train_x, train_y, test_x, test_y = _load_digits()
        source = "scikit-learn load_digits (bundled; fixed stratified 80/20 split, random_state=0)"
    else:
        directory = _idx_dir(name, data_dir)
        train_x, train_y, test_x, test_y = _load_idx_dir(name, directory)
        source = f"{_TITLES[name]} IDX files in {directory}"
    if limit is not None:
        train_x, train_y = train_x[:limit], train_y[:limit]
    n = len(train_y)
    n_val = max(1, round(val_fraction * n)) if val_fraction > 0 else 0
    n_train = n - n_val
    return Dataset(
        name=name,
        train_x=train_x[:n_train],
        train_y=train_y[:n_train],
        val_x=train_x[n_train:],
        val_y=train_y[n_train:],
        test_x=test_x,
        test_y=test_y,
        input_size=train_x.shape[1],
        num_classes=NUM_CLASSES,
        source=source,
    )


def dataset_available(name: str, data_dir: str | os.PathLike | None = None) -> bool:
    """Whether `load_dataset(name, data_dir)` can find its files (checks existence only)."""
    _check_name(name)
    if name == "digits":
        return True
    if name == "mnist" and data_dir is None:
        return False
    directory = Path(data_dir if data_dir is not None else FASHION_MNIST_DIR)
    return all(_find_idx(directory, base) is not None for base in _IDX_FILES.values())


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise UsageError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")


def _load_digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """scikit-learn's 8x8 digits, pixels scaled from 0..16 to [0, 1], fixed split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    train_x, test_x, train_y, test_y = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    return (torch.from_numpy(train_x), torch.from_numpy(train_y), torch.from_numpy(test_x), torch.from_numpy(test_y))


def _idx_dir(name: str, data_dir: str | os.PathLike | None) -> Path:
    """The directory holding `name`'s IDX files; a DataError if any file is missing."""
    if data_dir is None and name == "mnist":
        raise UsageError("dataset 'mnist' needs --data-dir DIR with the four IDX files (train/t10k images and labels)")
    directory = Path(data_dir if data_dir is not None else FASHION_MNIST_DIR)
    for base in _IDX_FILES.values():
        if _find_idx(directory, base) is None:
            fix = "install it with 'apt-get install dataset-fashion-mnist' or " if name == "fashion-mnist" else ""
            raise DataError(
                f"{_TITLES[name]} not found in {directory} (missing {base}.gz): "
                f"{fix}pass --data-dir DIR with the four IDX files"
            )
    return directory


def _find_idx(directory: Path, base: str) -> Path | None:
    """The first existing spelling of `base` in `directory`: gzip or raw, '-idx' or '.idx'."""
    dotted = base.replace("-idx", ".idx")
    for candidate in (f"{base}.gz", base, f"{dotted}.gz", dotted):
        if (directory / candidate).is_file():
            return directory / candidate
    return None


def _load_idx_dir(name: str, directory: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Read and cross-check the four IDX files; images become [N, rows*cols] floats in [0, 1]."""
    paths = {role: _find_idx(directory, base) for role, base in _IDX_FILES.items()}
    train_x, train_y = _read_pair(paths["train_images"], paths["train_labels"])
    test_x, test_y = _read_pair(paths["test_images"], paths["test_labels"])
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DataError(
            f"{_TITLES[name]} in {directory}: image sizes differ: "
            f"{paths['train_images'].name} has {train_x.shape[1]}x{train_x.shape[2]}, "
            f"{paths['test_images'].name} has {test_x.shape[1]}x{test_x.shape[2]}"
        )
    return _to_inputs(train_x), torch.from_numpy(train_y), _to_inputs(test_x), torch.from_numpy(test_y)


def _read_pair(image_path: Path, label_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read matching image (3-D) and label (1-D, values 0..9) IDX files."""
    images = read_idx(image_path)
    if images.ndim != 3:
        raise DataError(f"{image_path}: expected a 3-D IDX image file (count, rows, cols), got {images.ndim}-D")
    labels = read_idx(label_path)
    if labels.ndim != 1:
        raise DataError(f"{label_path}: expected a 1-D IDX label file, got {labels.ndim}-D")
    if len(images) != len(labels):
        raise DataError(
            f"{image_path.name} has {len(images)} images but {label_path.name} has {len(labels)} labels "
            f"(in {image_path.parent})"
        )
    if labels.max() >= NUM_CLASSES:
        bad = int(np.argmax(labels >= NUM_CLASSES))
        raise DataError(f"{label_path}: label {labels[bad]} at index {bad} is out of range, expected 0..9")
    return images, labels.astype(np.int64)


def _to_inputs(images: np.ndarray) -> torch.Tensor:
    """uint8 images [N, rows, cols] -> float32 [N, rows*cols] in [0, 1]."""
    return torch.from_numpy(images).reshape(len(images), -1).to(torch.float32).div_(255.0)
