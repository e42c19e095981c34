"""Checksum checks and archive extraction that cannot write outside its target folder."""

from __future__ import annotations

import copy
import os
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from dcgan.digests import file_digest
from dcgan.errors import DataError


def require_checksum(path: Path, expected: str, what: str, algorithm: str = "md5") -> None:
    """Refuse a file whose checksum is not the known one (truncated download, another file)."""
    actual = file_digest(path, algorithm)
    if actual != expected:
        raise DataError(f"{path} does not match the known checksum of {what} ({algorithm} {actual}, expected "
                        f"{expected}). It is truncated, corrupt or another file; it was not used. Replace it with "
                        "a good copy (or delete it to download again) and run again.")


def safe_extract(archive: Path, target: Path) -> None:
    """Extract a tar or zip archive into `target`. Every member is checked first: one that would land
    outside `target` (an absolute path, `..`, a link pointing out, a device) stops it before anything
    is written."""
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            try:
                safe_members = data_members(members, root)
            except UnsafeMember as exc:
                raise DataError(f"{archive} is unsafe: {exc}. Nothing was extracted.") from None
            if hasattr(tarfile, "data_filter"):  # Python 3.12, 3.11.4+, 3.10.12+: the stdlib checks again
                tar.extractall(root, members=members, filter="data")
            else:
                tar.extractall(root, members=safe_members)
    elif zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if not (root / name).resolve().is_relative_to(root):
                    raise DataError(f"{archive} is unsafe: member {name!r} would be written outside {target}. "
                                    "Nothing was extracted.")
            zf.extractall(root)
    else:
        raise DataError(f"{archive} is neither a tar nor a zip archive (or it is truncated).")


class UnsafeMember(Exception):
    pass


def data_members(members: list[tarfile.TarInfo], root: Path) -> list[tarfile.TarInfo]:
    """The archive's members as PEP 706's "data" filter lets them through, or UnsafeMember for the
    first it refuses. The same rules as tarfile.data_filter (which Python 3.11.0-3.11.3 and
    3.10.0-3.10.11 lack), checked on every Python so that an archive gets the same verdict on each:
    a name or a link that resolves outside `root`, an absolute link, a device or a pipe is refused;
    modes lose setuid, setgid and write for group and others; owners are dropped. Two rules more: an
    absolute name is refused, not stripped of its "/", and nothing may be written through a link of
    the archive, so that a link and a later member cannot together leave `root`."""
    dest = os.path.realpath(root)
    links = {PurePosixPath(m.name) for m in members if m.islnk() or m.issym()}
    safe = []
    for member in members:
        through = next((str(p) for p in PurePosixPath(member.name).parents if p in links), None)
        if through is not None:
            raise UnsafeMember(f"member {member.name!r} would be written through the archive's link {through!r}")
        safe.append(data_member(member, dest))
    return safe


def data_member(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """One member as the "data" filter leaves it (a copy), or UnsafeMember."""
    def refuse(reason: str):
        raise UnsafeMember(f"member {member.name!r} {reason}")

    if member.name.startswith("/") or os.path.isabs(member.name):
        refuse("has an absolute path")
    if not _inside(os.path.join(dest, member.name), dest):
        refuse(f"would be written outside {dest}")
    if member.islnk() or member.issym():
        if os.path.isabs(member.linkname):
            refuse(f"links to the absolute path {member.linkname!r}")
        start = os.path.dirname(member.name) if member.issym() else ""  # a hard link's target is archive-relative
        if not _inside(os.path.join(dest, start, member.linkname), dest):
            refuse(f"links to {member.linkname!r}, outside {dest}")
    elif not (member.isreg() or member.isdir()):
        refuse("is a device, a pipe or another special file")
    safe = copy.copy(member)
    mode = member.mode & 0o755
    if member.isreg() or member.islnk():
        safe.mode = (mode if mode & 0o100 else mode & ~0o111) | 0o600
    else:
        safe.mode = 0o755  # the filter leaves a directory's mode to the umask
    safe.uid, safe.gid, safe.uname, safe.gname = os.getuid(), os.getgid(), "", ""
    return safe


def _inside(path: str, dest: str) -> bool:
    return os.path.commonpath([os.path.realpath(path), dest]) == dest
