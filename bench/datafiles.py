"""The files a data set is read from: where CIFAR-10 and Fashion-MNIST are found, how each format
decodes into uint8 tensors, and the cache of decoded tensors (bench/data.py builds the Dataset).

Where CIFAR-10 comes from, first found wins: `data_dir` (the CLI passes --data-dir or
SPLITBENCH_DATA; this module reads no environment), then `data/` under the current directory, then
torchvision's download into the first of those. A folder may hold torchvision's
`cifar-10-batches-py` pickles, an ImageFolder tree of images (`train/<class>/*.jpg` and
`test/<class>/*.jpg`, at its top or one level down), or `cifar10-jpeg.tar.gz` (such a tree in a
tar, read without extracting). Class index = alphabetical order of the class folders, which is also
CIFAR-10's own label order.

Fashion-MNIST: the four standard idx .gz files in `data_dir`, `data/` or Debian's
/usr/share/datasets/fashion-mnist (package dataset-fashion-mnist), zero-padded from 28x28 to 32x32 so
that every model fits (VGG halves the size five times).

Decoding is done once: the uint8 tensors are saved in `cache_dir`, keyed by the source files' paths,
sizes and modification times, and later loads memory-map that file.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from bench.errors import UsageError

DEFAULT_DATA_DIR = Path("data")  # relative on purpose: under the current directory
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
CIFAR10_PICKLES = "cifar-10-batches-py"
CIFAR10_TAR = "cifar10-jpeg.tar.gz"
FASHION_MNIST_FILES = (  # train images, train labels, test images, test labels
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SPLITS = ("train", "test")


@dataclass(frozen=True)
class _Source:
    """Files that hold a data set, and how to decode them into train_x/train_y/test_x/test_y."""

    path: Path  # what a user recognises: the folder or the archive
    files: tuple[Path, ...]  # what the cache key is computed from
    decode: Callable[[], dict[str, torch.Tensor]]


def _folders(data_dir: str | Path | None) -> list[Path]:
    """Where to look, in order: the given folder, then data/ under the current directory."""
    folders = [Path(data_dir)] if data_dir is not None else []
    if not any(f.resolve() == DEFAULT_DATA_DIR.resolve() for f in folders):
        folders.append(DEFAULT_DATA_DIR)
    return folders


def _cached(name: str, source: _Source, cache_dir: Path) -> dict[str, torch.Tensor]:
    """source.decode(), or what an earlier call saved for the same files (path, size, mtime)."""
    key = hashlib.sha256(str(source.path.resolve()).encode())
    for f in source.files:
        stat = f.stat()
        key.update(f"\n{f.relative_to(source.path)}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    path = cache_dir / f"{name}-{key.hexdigest()[:16]}.pt"
    if path.is_file():
        return torch.load(path, mmap=True, weights_only=True)
    tensors = source.decode()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        # Write, then rename: parallel sweep workers never see a half-written file.
        with tempfile.NamedTemporaryFile(dir=cache_dir, suffix=".tmp", delete=False) as tmp:
            torch.save(tensors, tmp)
        os.replace(tmp.name, path)
    except OSError as exc:
        warnings.warn(f"dataset {name}: cannot cache decoded tensors in {cache_dir} ({exc})")
    return tensors


def cifar10(data_dir: str | Path | None, cache_dir: Path) -> tuple[dict[str, torch.Tensor], str]:
    """CIFAR-10's train_x, train_y, test_x, test_y, and where they came from (a resolved path)."""
    folders = _folders(data_dir)
    source = next(filter(None, map(_find_cifar10, folders)), None)
    if source is None:
        failure = _download_cifar10(folders[0])
        source = _find_cifar10(folders[0]) if failure is None else None
    if source is None:
        raise UsageError(
            f"dataset cifar10: not found in {' or '.join(map(str, folders))} (looked for "
            f"{CIFAR10_PICKLES}, an ImageFolder tree train/<class>/*.jpg + test/<class>/*.jpg, "
            f"{CIFAR10_TAR}; download failed: {failure}); pass --data-dir or set SPLITBENCH_DATA "
            "to a folder holding one of them"
        )
    return _cached("cifar10", source, cache_dir), str(source.path.resolve())


def _find_cifar10(folder: Path) -> _Source | None:
    if not folder.is_dir():
        return None
    pickles = folder / CIFAR10_PICKLES
    if (pickles / "data_batch_1").is_file():
        files = tuple(pickles / f"data_batch_{i}" for i in range(1, 6)) + (pickles / "test_batch",)
        return _Source(pickles, files, lambda: _decode_pickles(files))
    for root in [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]:
        if all((root / split).is_dir() for split in SPLITS):
            files = tuple(sorted(p for s in SPLITS for p in (root / s).glob("*/*") if _is_image(p.name)))
            return _Source(root, files, lambda: _decode_images(_tree_images(files), len(files), root.name))
    tar = folder / CIFAR10_TAR
    if tar.is_file():
        return _Source(tar, (tar,), lambda: _decode_images(_tar_images(tar), None, tar.name))
    return None


def _download_cifar10(folder: Path) -> str | None:
    """Fetch the pickles into `folder` with torchvision; None on success, else why not (one line)."""
    from torchvision.datasets import CIFAR10  # only here: the download is rarely needed

    try:
        CIFAR10(folder, train=True, download=True)  # one archive holds both splits
    except Exception as exc:  # offline, proxy, full disk, read-only folder: all mean "no data"
        return " ".join(str(exc).split()) or type(exc).__name__
    return None


def _decode_pickles(files: tuple[Path, ...]) -> dict[str, torch.Tensor]:
    """torchvision's cifar-10-batches-py: data_batch_1..5 (train), test_batch; each a pickled
    dict with "data" uint8 [10000, 3072] (channel-major rows) and "labels"."""

    def read(paths: Iterable[Path]) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for path in paths:
            with open(path, "rb") as f:
                batch = pickle.load(f, encoding="latin1")  # written by Python 2
            xs.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.extend(batch["labels"])
        return torch.from_numpy(np.concatenate(xs)), torch.tensor(ys, dtype=torch.int64)

    train_x, train_y = read(files[:5])
    test_x, test_y = read(files[5:])
    return dict(train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y)


def _tree_images(files: Iterable[Path]) -> Iterator[tuple[str, str, str, bytes]]:
    """(split, class, file name, encoded bytes) for files at <split>/<class>/<file name>."""
    for path in files:
        yield path.parts[-3], path.parts[-2], path.name, path.read_bytes()


def _tar_images(path: Path) -> Iterator[tuple[str, str, str, bytes]]:
    """(split, class, file name, encoded bytes) for every image under <split>/<class>/ in the tar."""
    with tarfile.open(path) as tar:
        for member in tar:
            parts = PurePosixPath(member.name).parts
            if member.isfile() and len(parts) >= 3 and parts[-3] in SPLITS and _is_image(parts[-1]):
                yield parts[-3], parts[-2], parts[-1], tar.extractfile(member).read()


def _is_image(file_name: str) -> bool:
    return file_name.lower().endswith(IMAGE_SUFFIXES)


def _decode_images(
    images: Iterable[tuple[str, str, str, bytes]], total: int | None, what: str
) -> dict[str, torch.Tensor]:
    """(split, class, file name, encoded bytes) -> uint8 RGB tensors ordered by (class, file name);
    class index = position of the class name in alphabetical order."""
    decoded: dict[str, list] = {split: [] for split in SPLITS}
    for split, cls, file, blob in tqdm(images, total=total, desc=f"decoding {what}", unit="img"):
        decoded[split].append((cls, file, np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"))))
    classes = sorted({cls for split in SPLITS for cls, _, _ in decoded[split]})
    tensors = {}
    for split, items in decoded.items():
        items.sort(key=lambda item: item[:2])
        hwc = torch.from_numpy(np.stack([image for _, _, image in items]))
        tensors[f"{split}_x"] = hwc.permute(0, 3, 1, 2).contiguous()
        tensors[f"{split}_y"] = torch.tensor([classes.index(cls) for cls, _, _ in items], dtype=torch.int64)
    return tensors


def fashion_mnist(data_dir: str | Path | None, cache_dir: Path) -> tuple[dict[str, torch.Tensor], str]:
    """Fashion-MNIST's train_x, train_y, test_x, test_y (padded to 32x32), and the folder they came from."""
    folders = _folders(data_dir) + [DEBIAN_FASHION_MNIST]
    found = [f for f in folders if all((f / name).is_file() for name in FASHION_MNIST_FILES)]
    if not found:
        raise UsageError(
            f"dataset fashion_mnist: not found in {' or '.join(map(str, folders))} (looked for "
            f"{', '.join(FASHION_MNIST_FILES)}); install the Debian package dataset-fashion-mnist, "
            "or pass --data-dir or set SPLITBENCH_DATA to a folder holding them"
        )
    files = tuple(found[0] / name for name in FASHION_MNIST_FILES)
    source = _Source(found[0], files, lambda: _decode_idx(files))
    return _cached("fashion_mnist", source, cache_dir), str(found[0].resolve())


def _decode_idx(files: tuple[Path, ...]) -> dict[str, torch.Tensor]:
    """The four idx files (LeCun's MNIST format) -> tensors; 28x28 images zero-padded to 32x32."""

    def read(path: Path) -> torch.Tensor:
        # Header: two zero bytes, a type byte (0x08 = uint8), the number of dimensions, then each
        # dimension as a big-endian uint32.
        raw = gzip.decompress(path.read_bytes())
        shape = struct.unpack(f">{raw[3]}I", raw[4 : 4 + 4 * raw[3]])
        return torch.from_numpy(np.frombuffer(raw, np.uint8, offset=4 + 4 * raw[3]).reshape(shape).copy())

    train_x, train_y, test_x, test_y = map(read, files)
    pad = lambda x: F.pad(x[:, None], (2, 2, 2, 2))  # noqa: E731
    return dict(train_x=pad(train_x), train_y=train_y.long(), test_x=pad(test_x), test_y=test_y.long())
