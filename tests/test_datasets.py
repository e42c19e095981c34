"""Each data set's offline path, on small files made here in the real on-disk formats."""

import hashlib
import io
import pickle
import tarfile
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_config
from dcgan.data import download
from dcgan.digests import md5_of
from dcgan.data.download import fetch, raw_folder
from dcgan.data.preprocess import held_out_split, prepare_split
from dcgan.errors import DataError

pytestmark = pytest.mark.smoke

RNG = np.random.default_rng(0)


def patch_table(monkeypatch, name, table):
    monkeypatch.setattr(download, name, table)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    def no_network(raw_root, dataset):
        raise OSError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(download, "_download_with_torchvision", no_network)


# --- MNIST -----------------------------------------------------------------------------------------

def test_mnist_mirror_of_upstream_gz_files_is_verified_and_read(tmp_path, tiny_mirror, monkeypatch):
    patch_table(monkeypatch, "MNIST_GZ_MD5", {name: md5_of(tiny_mirror / f"{name}.gz") for name in download.IDX_FILES})
    cfg = make_config(dataset="mnist", data_mirror=str(tiny_mirror))
    assert fetch(cfg, tmp_path / "raw") == f"mirror {tiny_mirror}"
    assert (raw_folder(tmp_path / "raw", "mnist") / "train-images-idx3-ubyte").is_file()
    split = prepare_split(tmp_path / "raw", train=True, size=28, dataset="mnist")
    assert split["images"].shape == (60, 1, 28, 28) and split["labels"].tolist() == [i % 10 for i in range(60)]


def test_mnist_gz_with_another_checksum_is_refused_and_not_kept(tmp_path, tiny_mirror, monkeypatch):
    patch_table(monkeypatch, "MNIST_GZ_MD5", {name: "0" * 32 for name in download.IDX_FILES})
    with pytest.raises(DataError, match="does not match the known checksum of MNIST"):
        fetch(make_config(dataset="mnist", data_mirror=str(tiny_mirror)), tmp_path / "raw")
    assert not any(raw_folder(tmp_path / "raw", "mnist").iterdir())


# --- CIFAR-10 --------------------------------------------------------------------------------------

def cifar_batch(count: int) -> bytes:
    """A batch as in the python archive: a pickled dict, uint8 rows of 3x32x32 (channel-major)."""
    return pickle.dumps({"data": RNG.integers(0, 256, (count, 3072), dtype=np.uint8),
                         "labels": [i % 10 for i in range(count)]}, protocol=2)


@pytest.fixture
def cifar_archive(tmp_path, monkeypatch):
    files = {f"data_batch_{i}": cifar_batch(4) for i in range(1, 6)} | {"test_batch": cifar_batch(6)}
    archive = tmp_path / "mirror" / download.CIFAR10_ARCHIVE
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        for name, payload in files.items():
            info = tarfile.TarInfo(f"{download.CIFAR10_FOLDER}/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    patch_table(monkeypatch, "CIFAR10_MD5", {name: hashlib.md5(p).hexdigest() for name, p in files.items()})
    patch_table(monkeypatch, "CIFAR10_ARCHIVE_MD5", md5_of(archive))
    return archive


@pytest.mark.parametrize("mirror_is", ["archive", "folder"])
def test_cifar10_archive_is_checked_extracted_and_read(tmp_path, cifar_archive, mirror_is, tar_filter):
    mirror = cifar_archive if mirror_is == "archive" else cifar_archive.parent
    assert fetch(make_config(dataset="cifar10", data_mirror=str(mirror)), tmp_path / "raw") == f"mirror {cifar_archive}"
    train = prepare_split(tmp_path / "raw", train=True, size=64, dataset="cifar10")
    test = prepare_split(tmp_path / "raw", train=False, size=64, dataset="cifar10")
    assert train["images"].shape == (20, 3, 64, 64) and train["images"].dtype == torch.uint8
    assert test["images"].shape == (6, 3, 64, 64) and test["labels"].tolist() == [0, 1, 2, 3, 4, 5]


def test_a_truncated_cifar10_archive_is_refused_before_extraction(tmp_path, cifar_archive):
    cifar_archive.write_bytes(cifar_archive.read_bytes()[:100])
    with pytest.raises(DataError, match="does not match the known checksum of the CIFAR-10 python archive"):
        fetch(make_config(dataset="cifar10", data_mirror=str(cifar_archive)), tmp_path / "raw")
    assert not (tmp_path / "raw").exists() or not any((tmp_path / "raw").iterdir())
    assert cifar_archive.exists()  # the user's file is reported, never deleted


def test_a_cifar10_batch_that_would_run_code_is_refused(tmp_path, cifar_archive, monkeypatch, tar_filter):
    fetch(make_config(dataset="cifar10", data_mirror=str(cifar_archive)), tmp_path / "raw")
    crafted = raw_folder(tmp_path / "raw", "cifar10") / "test_batch"

    class Exploit:
        def __reduce__(self):
            return (print, ("this must never run",))
    crafted.write_bytes(pickle.dumps({"data": Exploit(), "labels": []}))
    with pytest.raises(DataError, match="builtins.print is not allowed"):
        prepare_split(tmp_path / "raw", train=False, size=32, dataset="cifar10")


# --- CelebA ----------------------------------------------------------------------------------------

def jpeg_bytes(width: int, height: int, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (height, width, 3), dtype=np.uint8)).convert(mode).save(buffer, "JPEG")
    return buffer.getvalue()


def test_celeba_zip_and_partition_give_resized_center_cropped_splits(tmp_path, monkeypatch):
    mirror = tmp_path / "celeba"
    mirror.mkdir()
    names = [f"{i:06d}.jpg" for i in range(1, 11)]
    with zipfile.ZipFile(mirror / download.CELEBA_ZIP, "w") as zf:
        for name in names:
            zf.writestr(f"{download.CELEBA_IMAGES}/{name}", jpeg_bytes(178, 218))  # CelebA's aligned size
    partitions = [0] * 6 + [1] * 2 + [2] * 2
    (mirror / download.CELEBA_PARTITION).write_text("".join(f"{n} {p}\n" for n, p in zip(names, partitions)))
    patch_table(monkeypatch, "CELEBA_ZIP_MD5", md5_of(mirror / download.CELEBA_ZIP))
    patch_table(monkeypatch, "CELEBA_PARTITION_MD5", md5_of(mirror / download.CELEBA_PARTITION))

    fetch(make_config(dataset="celeba", data_mirror=str(mirror)), tmp_path / "raw")
    train = prepare_split(tmp_path / "raw", train=True, size=64, dataset="celeba")
    test = prepare_split(tmp_path / "raw", train=False, size=64, dataset="celeba")
    assert train["images"].shape == (6, 3, 64, 64) and "labels" not in train
    assert test["images"].shape == (2, 3, 64, 64)

    patch_table(monkeypatch, "CELEBA_ZIP_MD5", "0" * 32)
    with pytest.raises(DataError, match="img_align_celeba.zip"):
        fetch(make_config(dataset="celeba", data_mirror=str(mirror)), tmp_path / "raw2")


# --- folder ----------------------------------------------------------------------------------------

@pytest.fixture
def image_folder(tmp_path):
    """PNGs and JPEGs of several sizes and modes, in subfolders, one truncated JPEG, one non-image."""
    folder = tmp_path / "images"
    (folder / "a" / "b").mkdir(parents=True)
    for i in range(6):
        Image.fromarray(RNG.integers(0, 256, (40 + i, 50, 3), dtype=np.uint8)).save(folder / f"img{i}.png")
    for i in range(3):
        (folder / "a" / "b" / f"photo{i}.JPG").write_bytes(jpeg_bytes(30, 20, "L"))
    (folder / "a" / "broken.jpg").write_bytes(jpeg_bytes(30, 20)[:60])
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_folder_images_are_found_recursively_and_an_unreadable_one_is_skipped_and_listed(tmp_path, image_folder):
    cfg = make_config(dataset="folder", path=str(image_folder), channels=3)
    assert fetch(cfg, tmp_path / "raw").endswith("(10 image files)")
    split = prepare_split(tmp_path / "raw", train=True, size=16, dataset="folder", channels=3, max_bad_fraction=0.2)
    assert split["images"].shape == (9, 3, 16, 16)
    assert split["unreadable"] == ["a/broken.jpg"]
    gray = prepare_split(tmp_path / "raw", train=True, size=16, dataset="folder", channels=1, max_bad_fraction=0.2)
    assert gray["images"].shape == (9, 1, 16, 16)


def test_too_many_unreadable_images_stop_the_stage_naming_them(tmp_path, image_folder):
    fetch(make_config(dataset="folder", path=str(image_folder), channels=3), tmp_path / "raw")
    with pytest.raises(DataError, match=r"1 of 10 images .*a/broken.jpg.*max_bad_image_fraction"):
        prepare_split(tmp_path / "raw", train=True, size=16, dataset="folder", channels=3, max_bad_fraction=0.05)


def test_a_missing_or_empty_folder_says_what_to_do(tmp_path):
    with pytest.raises(DataError, match="is not a folder"):
        fetch(make_config(dataset="folder", path=str(tmp_path / "nowhere"), channels=3), tmp_path / "raw")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="No images under"):
        fetch(make_config(dataset="folder", path=str(tmp_path / "empty"), channels=3), tmp_path / "raw")


def test_held_out_split_gives_two_disjoint_real_sets():
    images = torch.arange(100, dtype=torch.uint8).reshape(100, 1, 1, 1)
    real, test = held_out_split({"images": images}, seed=0)
    assert len(real["images"]) == len(test["images"]) == 50
    assert not set(real["images"].flatten().tolist()) & set(test["images"].flatten().tolist())


@pytest.mark.parametrize("dataset, hint", [("mnist", "upstream .gz"), ("cifar10", "cifar-10-python.tar.gz"),
                                           ("celeba", "list_eval_partition.txt")])
def test_offline_without_a_mirror_says_how_to_get_each_data_set(tmp_path, dataset, hint):
    with pytest.raises(DataError, match=f"(?s)no mirror set.*Temporary failure.*Offline: .*{hint}.*Online"):
        fetch(make_config(dataset=dataset, data_mirror="auto"), tmp_path / "raw")
