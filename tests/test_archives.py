"""Archive extraction that cannot write outside its folder, and file digests, on every Python the
project supports: with the stdlib's helpers where they exist, and without them (Python 3.11.2 has no
tarfile.data_filter, 3.10 no hashlib.file_digest)."""

import hashlib
import io
import stat
import tarfile
import zipfile

import pytest

from dcgan.data.archives import UnsafeMember, data_member, safe_extract
from dcgan.digests import BLOCK, file_digest, md5_of, sha256_of
from dcgan.errors import DataError

pytestmark = pytest.mark.smoke


def tar_of(tmp_path, members, name="archive.tar.gz"):
    """A tar.gz of (TarInfo, bytes or None) pairs."""
    archive = tmp_path / name
    with tarfile.open(archive, "w:gz") as tar:
        for info, payload in members:
            if payload is not None:
                info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return archive


def member(name, kind=tarfile.REGTYPE, linkname="", mode=0o644):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, mode
    return info


def out_is_empty(out):
    return not out.exists() or not any(out.rglob("*"))


# Members the "data" filter refuses, each with why; and members it lets through.
REFUSED = {
    "parent": (member("../escaped.txt"), b"hi"),
    "deep parent": (member("a/../../escaped.txt"), b"hi"),
    "symlink out": (member("out", tarfile.SYMTYPE, "../.."), None),
    "absolute symlink": (member("etc", tarfile.SYMTYPE, "/etc"), None),
    "hard link out": (member("passwd", tarfile.LNKTYPE, "../../etc/passwd"), None),
    "character device": (member("tty", tarfile.CHRTYPE), None),
    "fifo": (member("pipe", tarfile.FIFOTYPE), None),
}
ALLOWED = {
    "file": (member("a/b.txt"), b"hi"),
    "directory": (member("a", tarfile.DIRTYPE, mode=0o777), None),
    "symlink inside": (member("a/link", tarfile.SYMTYPE, "b.txt"), None),
    "setuid file": (member("run.sh", mode=0o4777), b"#!/bin/sh\n"),
}


@pytest.mark.parametrize("case", [*REFUSED, *ALLOWED])
def test_our_rules_give_the_stdlib_data_filters_verdict(tmp_path, case):
    if not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python has no tarfile.data_filter to compare with")
    info, _ = {**REFUSED, **ALLOWED}[case]
    dest = str(tmp_path)
    try:
        stdlib = tarfile.data_filter(info, dest)
    except tarfile.FilterError:
        stdlib = None
    try:
        ours = data_member(info, dest)
    except UnsafeMember:
        ours = None
    assert (ours is None) == (stdlib is None) == (case in REFUSED)
    if ours is not None and not info.isdir() and not info.issym():
        assert ours.mode == stdlib.mode  # setuid and others' write dropped alike


@pytest.mark.parametrize("case", REFUSED)
def test_an_unsafe_tar_member_is_refused_before_anything_is_written(tmp_path, case, tar_filter):
    archive = tar_of(tmp_path, [(member("fine.txt"), b"ok"), REFUSED[case]])
    with pytest.raises(DataError, match=r"is unsafe: member .* Nothing was extracted"):
        safe_extract(archive, tmp_path / "out")
    assert out_is_empty(tmp_path / "out") and not (tmp_path / "escaped.txt").exists()


def test_an_absolute_member_name_is_refused_not_stripped(tmp_path, tar_filter):
    archive = tar_of(tmp_path, [(member("/tmp/absolute.txt"), b"hi")])
    with pytest.raises(DataError, match="'/tmp/absolute.txt' has an absolute path"):
        safe_extract(archive, tmp_path / "out")
    assert out_is_empty(tmp_path / "out")


def test_a_member_written_through_the_archives_own_link_is_refused(tmp_path, tar_filter):
    # "a" -> "." passes alone, and so does "a/a/../../escaped.txt" before "a" exists; once "a" is a
    # link, that path climbs out of the folder. Both are refused before anything is written.
    archive = tar_of(tmp_path, [(member("a", tarfile.SYMTYPE, "."), None),
                                (member("a/a/../../escaped.txt"), b"hi")])
    with pytest.raises(DataError, match="written through the archive's link 'a'"):
        safe_extract(archive, tmp_path / "out")
    assert out_is_empty(tmp_path / "out") and not (tmp_path / "escaped.txt").exists()


def test_a_safe_tar_is_extracted_with_safe_modes(tmp_path, tar_filter):
    archive = tar_of(tmp_path, list(ALLOWED.values()))
    out = tmp_path / "out"
    safe_extract(archive, out)
    assert (out / "a" / "b.txt").read_bytes() == b"hi"
    assert (out / "a" / "link").is_symlink() and (out / "a" / "link").read_bytes() == b"hi"
    mode = stat.S_IMODE((out / "run.sh").stat().st_mode)
    assert mode == 0o755, oct(mode)  # setuid and write for group and others dropped


def test_a_zip_member_outside_the_target_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../../escaped.txt", "hi")
    with pytest.raises(DataError, match="unsafe"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()


@pytest.mark.parametrize("size", [0, 1, BLOCK - 1, BLOCK, 3 * BLOCK + 7])
def test_file_digests_match_hashlib_without_its_file_digest(tmp_path, size, monkeypatch):
    monkeypatch.delattr(hashlib, "file_digest", raising=False)  # as on Python 3.10
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    path = tmp_path / "file"
    path.write_bytes(payload)
    assert sha256_of(path) == hashlib.sha256(payload).hexdigest()
    assert md5_of(path) == file_digest(path, "md5") == hashlib.md5(payload).hexdigest()
