"""bench.data on real CIFAR-10 (the tarball in ../shared/data), its other two on-disk formats
(bench.datafiles), Fashion-MNIST where Debian's package is installed, and the synthetic set;
subsets, shards (bench.subsets), batches."""

import os
import pickle
import tarfile
import time
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
import torchvision

from bench import data, datafiles, subsets
from bench.augment import draw_crops
from bench.errors import UsageError

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("SPLITBENCH_DATA") or REPO / ".." / "shared" / "data")
TAR = SHARED / datafiles.CIFAR10_TAR
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("splitbench-cache")


@pytest.fixture(scope="module")
def cifar(cache_dir):
    """All of CIFAR-10, decoded from the tarball once per session (about 10 s), then cached."""
    if not TAR.is_file():
        pytest.skip(f"no {TAR}")
    return data.load("cifar10", SHARED, cache_dir)


@pytest.fixture(scope="module")
def synthetic():
    return data.load("synthetic", seed=0)


# ---- CIFAR-10 ------------------------------------------------------------------------------------


def test_cifar10_from_the_tarball(cifar):
    assert cifar.train_x.shape == (50_000, 3, 32, 32) and cifar.train_x.dtype == torch.uint8
    assert cifar.test_x.shape == (10_000, 3, 32, 32) and cifar.test_x.dtype == torch.uint8
    assert cifar.train_y.dtype == torch.int64 and cifar.train_y.bincount().tolist() == [5000] * 10
    assert cifar.test_y.dtype == torch.int64 and cifar.test_y.bincount().tolist() == [1000] * 10
    assert (cifar.num_classes, cifar.in_channels, cifar.image_size) == (10, 3, 32)
    assert cifar.source == str(TAR.resolve())
    # The statistics that the data's README gives for this JPEG re-encoding.
    pixels = cifar.train_x.sum(dim=(0, 2, 3)) / (50_000 * 32 * 32 * 255)
    assert pixels.tolist() == pytest.approx([0.4913, 0.4821, 0.4465], abs=1e-4)


def test_second_load_comes_from_the_cache(cifar, cache_dir, monkeypatch):
    monkeypatch.setattr(datafiles, "_decode_images", lambda *a: pytest.fail("decoded again"))
    start = time.perf_counter()
    again = data.load("cifar10", SHARED, cache_dir)
    assert time.perf_counter() - start < 1.0
    assert len(list(cache_dir.glob("cifar10-*.pt"))) == 1
    assert torch.equal(again.train_x, cifar.train_x) and torch.equal(again.test_y, cifar.test_y)


@pytest.fixture(scope="module")
def two_jpegs_per_class(tmp_path_factory):
    """The tarball's 0000.jpg and 0001.jpg of every class and split, extracted as they are."""
    if not TAR.is_file():
        pytest.skip(f"no {TAR}")
    root = tmp_path_factory.mktemp("tree")
    with tarfile.open(TAR) as tar:
        firsts = (m for m in tar if m.name.endswith(("/0000.jpg", "/0001.jpg")))
        tar.extractall(root, members=firsts, filter="data")
    return root


@pytest.mark.parametrize("level", ["top", "one level down"])
def test_image_folder_tree(cifar, two_jpegs_per_class, level, tmp_path):
    folder = two_jpegs_per_class / "cifar10-jpeg" if level == "top" else two_jpegs_per_class
    tree = data.load("cifar10", folder, tmp_path)
    assert tree.source == str((two_jpegs_per_class / "cifar10-jpeg").resolve())
    assert tree.train_y.tolist() == tree.test_y.tolist() == [c for c in range(10) for _ in range(2)]
    # Same files, same decoder: the very pixels of the full set (files sort by class, then name).
    first_two = torch.tensor([0, 1])
    train_rows = torch.cat([5000 * c + first_two for c in range(10)])
    test_rows = torch.cat([1000 * c + first_two for c in range(10)])
    assert torch.equal(tree.train_x, cifar.train_x[train_rows])
    assert torch.equal(tree.test_x, cifar.test_x[test_rows])


def test_cache_key_follows_the_files(two_jpegs_per_class, tmp_path, monkeypatch):
    folder = two_jpegs_per_class / "cifar10-jpeg"
    decodes = []
    decode = datafiles._decode_images
    monkeypatch.setattr(datafiles, "_decode_images", lambda *a: decodes.append(1) or decode(*a))
    data.load("cifar10", folder, tmp_path)
    data.load("cifar10", folder, tmp_path)
    assert len(decodes) == 1
    touched = folder / "test" / "cat" / "0001.jpg"
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    data.load("cifar10", folder, tmp_path)
    assert len(decodes) == 2


def test_torchvision_pickles(cifar, tmp_path):
    """A small cifar-10-batches-py in the real layout: Python 2 pickles of {data, labels, ...}."""
    pickles = tmp_path / "data" / datafiles.CIFAR10_PICKLES
    pickles.mkdir(parents=True)
    train_rows, test_rows = torch.arange(0, 50_000, 2500), torch.arange(0, 10_000, 1000)
    names = [f"data_batch_{i}" for i in range(1, 6)]
    for name, rows in zip(names + ["test_batch"], list(train_rows.chunk(5)) + [test_rows]):
        source = cifar.test_x if name == "test_batch" else cifar.train_x
        labels = cifar.test_y if name == "test_batch" else cifar.train_y
        batch = {
            "batch_label": name,
            "labels": labels[rows].tolist(),
            "data": source[rows].reshape(len(rows), -1).numpy(),  # rows of R, then G, then B planes
            "filenames": [f"{int(r)}.png" for r in rows],
        }
        (pickles / name).write_bytes(pickle.dumps(batch, protocol=2))
    (pickles / "batches.meta").write_bytes(pickle.dumps({"label_names": list(CLASSES)}, protocol=2))

    loaded = data.load("cifar10", tmp_path / "data", tmp_path / "cache")
    assert loaded.source == str(pickles.resolve())
    assert torch.equal(loaded.train_x, cifar.train_x[train_rows])
    assert torch.equal(loaded.train_y, cifar.train_y[train_rows])
    assert torch.equal(loaded.test_x, cifar.test_x[test_rows])
    assert torch.equal(loaded.test_y, cifar.test_y[test_rows])


def test_missing_cifar10_is_one_line_saying_where_and_how(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tried = []

    def offline(root, **kwargs):
        tried.append(Path(root))
        raise URLError(OSError(-2, "Name or service not known"))

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError) as caught:
        data.load("cifar10", tmp_path / "empty", tmp_path / "cache")
    assert str(caught.value) == (
        f"dataset cifar10: not found in {tmp_path / 'empty'} or data (looked for cifar-10-batches-py, "
        "an ImageFolder tree train/<class>/*.jpg + test/<class>/*.jpg, cifar10-jpeg.tar.gz; download "
        "failed: <urlopen error [Errno -2] Name or service not known>); pass --data-dir or set "
        "SPLITBENCH_DATA to a folder holding one of them"
    )
    assert tried == [tmp_path / "empty"]


def test_missing_fashion_mnist(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(datafiles, "DEBIAN_FASHION_MNIST", tmp_path / "not-installed")
    with pytest.raises(UsageError) as caught:
        data.load("fashion_mnist", cache_dir=tmp_path)
    assert str(caught.value) == (
        f"dataset fashion_mnist: not found in data or {tmp_path / 'not-installed'} (looked for "
        "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
        "t10k-labels-idx1-ubyte.gz); install the Debian package dataset-fashion-mnist, or pass "
        "--data-dir or set SPLITBENCH_DATA to a folder holding them"
    )


def test_unknown_dataset_name():
    with pytest.raises(UsageError) as caught:
        data.load("cifar-10")
    assert str(caught.value) == (
        "dataset: unknown name 'cifar-10'; did you mean 'cifar10'? "
        "(allowed: cifar10, fashion_mnist, synthetic)"
    )


# ---- subsets and shards --------------------------------------------------------------------------


def test_subsets_are_seeded_and_stratified(cifar, cache_dir):
    cut = data.load("cifar10", SHARED, cache_dir, train_subset=1005, test_subset=50, seed=3)
    assert sorted(cut.train_y.bincount().tolist()) == [100] * 5 + [101] * 5
    assert cut.test_y.bincount().tolist() == [5] * 10
    assert cut.train_x.shape == (1005, 3, 32, 32)
    same = data.load("cifar10", SHARED, cache_dir, test_subset=50, seed=3)
    assert torch.equal(same.test_x, cut.test_x)  # the test subset does not depend on the train one
    assert torch.equal(same.train_x, cifar.train_x)
    other = data.load("cifar10", SHARED, cache_dir, test_subset=50, seed=4)
    assert not torch.equal(other.test_x, cut.test_x)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("train_subset", 0, "train_subset: must be between 10 and 2000, got 0"),
        ("train_subset", 2001, "train_subset: must be between 10 and 2000, got 2001"),
        ("test_subset", 9, "test_subset: must be between 10 and 500, got 9"),
    ],
)
def test_subset_out_of_range(field, value, message):
    with pytest.raises(UsageError) as caught:
        data.load("synthetic", **{field: value})
    assert str(caught.value) == message


def test_iid_shards_are_disjoint_equal_and_stratified(cifar):
    shards = subsets.iid_shards(cifar.train_y, 7, seed=0)
    assert [len(s) for s in shards] == [7140] * 7  # 714 of each class; 2 per class left over
    for shard in shards:
        assert cifar.train_y[shard].bincount().tolist() == [714] * 10
        assert torch.equal(shard, shard.sort().values)
    assert len(torch.cat(shards).unique()) == 49_980
    assert all(torch.equal(a, b) for a, b in zip(shards, subsets.iid_shards(cifar.train_y, 7, seed=0)))
    assert not torch.equal(shards[0], subsets.iid_shards(cifar.train_y, 7, seed=1)[0])
    assert torch.equal(subsets.iid_shards(cifar.train_y, 1, seed=0)[0], torch.arange(50_000))


@pytest.mark.parametrize("n", [0, 201])
def test_iid_shards_out_of_range(synthetic, n):
    with pytest.raises(UsageError, match=f"^clients: must be between 1 and 200 for this data set, got {n}$"):
        subsets.iid_shards(synthetic.train_y, n, seed=0)


# ---- batches -------------------------------------------------------------------------------------


def _epoch(ds, indices, **kwargs):
    xs, ys = zip(*data.batches(ds, "train", indices, 100, **kwargs))
    return xs, ys


def test_batches_normalise_in_order(synthetic):
    indices = torch.arange(0, 2000, 3)
    xs, ys = _epoch(synthetic, indices)
    assert [len(y) for y in ys] == [100] * 6 + [67]
    x, y = torch.cat(xs), torch.cat(ys)
    assert x.dtype == torch.float32 and torch.equal(y, synthetic.train_y[indices])
    mean, std = torch.tensor(synthetic.mean).view(3, 1, 1), torch.tensor(synthetic.std).view(3, 1, 1)
    assert torch.allclose(x, (synthetic.train_x[indices] / 255 - mean) / std, atol=1e-5)
    everything = torch.cat(_epoch(synthetic, torch.arange(2000))[0])
    assert everything.mean(dim=(0, 2, 3)).tolist() == pytest.approx([0, 0, 0], abs=1e-4)
    assert everything.std(dim=(0, 2, 3)).tolist() == pytest.approx([1, 1, 1], abs=1e-4)


def test_shuffle_is_a_seeded_permutation(synthetic):
    indices = torch.arange(500)
    _, ys = _epoch(synthetic, indices, shuffle=True, generator=torch.Generator().manual_seed(1))
    _, again = _epoch(synthetic, indices, shuffle=True, generator=torch.Generator().manual_seed(1))
    y = torch.cat(ys)
    assert torch.equal(y, torch.cat(again)) and not torch.equal(y, synthetic.train_y[indices])
    assert torch.equal(y.sort().values, synthetic.train_y[indices].sort().values)


def test_augmentation_is_seeded_crop_and_flip(cifar):
    indices = torch.arange(0, 50_000, 500)
    plain = torch.cat(_epoch(cifar, indices)[0])
    off = torch.cat(_epoch(cifar, indices, augment=False, generator=torch.Generator().manual_seed(5))[0])
    augmented = torch.cat(_epoch(cifar, indices, augment=True, generator=torch.Generator().manual_seed(5))[0])
    again = torch.cat(_epoch(cifar, indices, augment=True, generator=torch.Generator().manual_seed(5))[0])
    assert torch.equal(off, plain) and torch.equal(augmented, again)
    changed = (augmented != plain).flatten(1).any(1).float().mean()
    assert changed > 0.9  # unchanged only for the centred, unflipped crop: 1 in 162
    # Every augmented image is one of the 9 x 9 x 2 windows of its zero-padded original.
    mean, std = torch.tensor(cifar.mean).view(3, 1, 1), torch.tensor(cifar.std).view(3, 1, 1)
    raw = (augmented * std + mean).mul(255).round().to(torch.uint8)
    padded = torch.nn.functional.pad(cifar.train_x[indices[:10]], (4, 4, 4, 4))
    for image, pad in zip(raw, padded):
        windows = pad.unfold(1, 32, 1).unfold(2, 32, 1).permute(1, 2, 0, 3, 4).reshape(81, 3, 32, 32)
        candidates = torch.cat([windows, windows.flip(-1)])
        assert (candidates == image).flatten(1).all(1).sum() >= 1


def test_fixed_crops_are_the_draws_an_augmented_epoch_takes(synthetic):
    indices = torch.arange(0, 1000, 7)  # batches of 100, 43
    drawn = _epoch(synthetic, indices, augment=True, generator=torch.Generator().manual_seed(3))[0]
    crops = draw_crops([100, 43], torch.Generator().manual_seed(3))
    fixed = _epoch(synthetic, indices, crops=crops)[0]
    assert all(torch.equal(a, b) for a, b in zip(drawn, fixed))
    # Taken per entry: the crops of a reordering follow their images.
    order = torch.randperm(len(indices), generator=torch.Generator().manual_seed(4))
    moved = torch.cat(_epoch(synthetic, indices[order], crops=crops.take(order))[0])
    assert torch.equal(moved, torch.cat(fixed)[order])
    with pytest.raises(ValueError, match="crops fix one view per entry"):
        data.batches(synthetic, "train", indices, 100, shuffle=True, generator=torch.Generator(), crops=crops)


# ---- Fashion-MNIST and synthetic -----------------------------------------------------------------


@pytest.mark.skipif(not datafiles.DEBIAN_FASHION_MNIST.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_fashion_mnist_padded_to_32(tmp_path):
    fm = data.load("fashion_mnist", cache_dir=tmp_path)
    assert fm.train_x.shape == (60_000, 1, 32, 32) and fm.test_x.shape == (10_000, 1, 32, 32)
    assert fm.train_y.bincount().tolist() == [6000] * 10 and fm.test_y.bincount().tolist() == [1000] * 10
    assert (fm.in_channels, fm.image_size, fm.mean, fm.std) == (1, 32, (0.2860,), (0.3530,))
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert fm.train_x[..., border].max() == 0 and fm.train_x[..., 2:30, 2:30].max() == 255
    unpadded = fm.train_x[..., 2:30, 2:30].sum(dtype=torch.float64) / (60_000 * 28 * 28 * 255)
    assert unpadded.item() == pytest.approx(0.2860, abs=1e-4)


def test_synthetic_is_seeded_balanced_and_learnable(synthetic):
    assert synthetic.train_x.shape == (2000, 3, 32, 32) and synthetic.test_x.shape == (500, 3, 32, 32)
    assert synthetic.train_y.bincount().tolist() == [200] * 10
    assert synthetic.test_y.bincount().tolist() == [50] * 10
    assert torch.equal(data.load("synthetic", seed=0).train_x, synthetic.train_x)
    assert not torch.equal(data.load("synthetic", seed=1).train_x, synthetic.train_x)
    # Learnable: the train set's class means classify the test set.
    centroids = torch.stack([synthetic.train_x[synthetic.train_y == c].float().mean(0) for c in range(10)])
    distances = torch.cdist(synthetic.test_x.float().flatten(1), centroids.flatten(1))
    assert (distances.argmin(1) == synthetic.test_y).float().mean() > 0.95
