import gzip
import hashlib
from urllib.error import URLError

import pytest

from conftest import DEBIAN_MIRROR, requires_fashion_mnist
from dcgan.data import download
from dcgan.data.download import FASHION_MNIST_SHA256, fetch_fashion_mnist, raw_folder
from dcgan.errors import DataError


@pytest.fixture
def known_checksums(tiny_mirror, monkeypatch):
    """Make the tiny mirror's decompressed files the 'known' ones, as the real table is for the real data."""
    table = {name: hashlib.sha256(gzip.open(tiny_mirror / f"{name}.gz").read()).hexdigest()
             for name in FASHION_MNIST_SHA256}
    monkeypatch.setattr(download, "FASHION_MNIST_SHA256", table)
    return table


def offline(monkeypatch):
    def no_network(raw_root, dataset):
        raise URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(download, "_download_with_torchvision", no_network)


def test_mirror_files_are_decompressed_and_verified(tmp_path, tiny_mirror, known_checksums, monkeypatch):
    offline(monkeypatch)
    source = fetch_fashion_mnist(tiny_mirror, tmp_path / "raw")
    assert source == f"mirror {tiny_mirror}"
    target = raw_folder(tmp_path / "raw")
    assert sorted(p.name for p in target.iterdir()) == sorted(known_checksums)
    for name, sha in known_checksums.items():
        assert hashlib.sha256((target / name).read_bytes()).hexdigest() == sha


def test_a_mirror_file_with_the_wrong_checksum_is_refused_and_not_kept(tmp_path, tiny_mirror, known_checksums,
                                                                       monkeypatch):
    offline(monkeypatch)
    monkeypatch.setitem(known_checksums, "t10k-labels-idx1-ubyte", "0" * 64)
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte .* does not match the known"):
        fetch_fashion_mnist(tiny_mirror, tmp_path / "raw")
    assert not (raw_folder(tmp_path / "raw") / "t10k-labels-idx1-ubyte").exists()


def test_a_truncated_gzip_in_the_mirror_gives_a_clear_error(tmp_path, tiny_mirror, known_checksums, monkeypatch):
    offline(monkeypatch)
    damaged = tiny_mirror / "train-images-idx3-ubyte.gz"
    damaged.write_bytes(damaged.read_bytes()[:200])
    with pytest.raises(DataError, match="cannot be read.*damaged"):
        fetch_fashion_mnist(tiny_mirror, tmp_path / "raw")
    assert not (raw_folder(tmp_path / "raw") / "train-images-idx3-ubyte").exists()


def test_offline_without_a_mirror_names_both_fixes(tmp_path, monkeypatch):
    offline(monkeypatch)
    with pytest.raises(DataError) as error:
        fetch_fashion_mnist(tmp_path / "no-such-mirror", tmp_path / "raw")
    message = str(error.value)
    assert "no usable mirror" in message and "name resolution" in message
    assert "apt-get install dataset-fashion-mnist" in message and "data_mirror" in message
    assert "internet" in message


def test_a_download_with_a_wrong_checksum_is_deleted(tmp_path, known_checksums, monkeypatch):
    def fake_download(raw_root, dataset):
        target = raw_folder(raw_root)
        target.mkdir(parents=True, exist_ok=True)
        for name in known_checksums:
            (target / name).write_bytes(b"not the data")
    monkeypatch.setattr(download, "_download_with_torchvision", fake_download)
    with pytest.raises(DataError, match="torchvision download does not match"):
        fetch_fashion_mnist(tmp_path / "no-such-mirror", tmp_path / "raw")
    assert len(list(raw_folder(tmp_path / "raw").iterdir())) < len(known_checksums)


@requires_fashion_mnist
def test_the_debian_mirror_matches_the_upstream_checksums(tmp_path, monkeypatch):
    offline(monkeypatch)
    assert fetch_fashion_mnist(DEBIAN_MIRROR, tmp_path / "raw") == f"mirror {DEBIAN_MIRROR}"
