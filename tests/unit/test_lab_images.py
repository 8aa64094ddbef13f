"""Pure parts of the lab's image building: ldd parsing, tags, deterministic contexts."""

from __future__ import annotations

import io
import tarfile

import pytest

from converge.errors import LabError
from converge.lab.images import ImageContext, _Context, haproxy_tag, parse_ldd

LDD = """\
\tlinux-vdso.so.1 (0x00007ffd5b5f0000)
\tlibcrypt.so.1 => /lib/x86_64-linux-gnu/libcrypt.so.1 (0x00007f13c961c000)
\tlibssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x00007f13c9157000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f13c894e000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f13c966b000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f13c894e000)
"""


def test_parse_ldd_keeps_every_path_once_and_skips_the_vdso() -> None:
    assert parse_ldd(LDD) == [
        "/lib/x86_64-linux-gnu/libcrypt.so.1",
        "/lib/x86_64-linux-gnu/libssl.so.3",
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib64/ld-linux-x86-64.so.2",
    ]


def test_haproxy_tag() -> None:
    line = "HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/"
    assert haproxy_tag(line) == "converge-lab/haproxy:2.6"
    with pytest.raises(LabError, match="cannot read the haproxy version"):
        haproxy_tag("something else")


def _context() -> bytes:
    context = _Context()
    context.file("Dockerfile", b"FROM scratch\nCOPY rootfs/ /\n")
    context.file("rootfs/bin/busybox", b"\x7fELF", 0o755)
    context.symlink("rootfs/usr/bin/wget", "/bin/busybox")
    context.directory("rootfs/tmp")
    return context.finish()


def test_context_is_deterministic_and_well_formed() -> None:
    assert _context() == _context()
    with tarfile.open(fileobj=io.BytesIO(_context())) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["rootfs/usr/bin/wget"].issym()
    assert members["rootfs/usr/bin/wget"].linkname == "/bin/busybox"
    assert members["rootfs/bin/busybox"].mode == 0o755
    assert members["rootfs/tmp"].mode == 0o1777
    assert {"rootfs", "rootfs/usr", "rootfs/usr/bin"} <= set(members)
    assert all(m.mtime == 0 and m.uid == 0 for m in members.values())


def test_tarball_file_names() -> None:
    assert ImageContext("converge-lab/app:v1", b"").file_name == "converge-lab-app-v1.tar"
    assert ImageContext("converge-lab/busybox:1.35.0", b"").file_name == (
        "converge-lab-busybox-1.35.0.tar"
    )
