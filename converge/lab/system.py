"""Thin, typed wrappers over the host commands and kernel files the lab uses.

Every failure becomes a one-line ``LabError`` naming the command and keeping its own message.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from converge.errors import LabError
from converge.lab.layout import PATH_ENV
from converge.polling import Backoff, Clock, PollTimeoutError, poll_until

__all__ = [
    "Cgroups",
    "check_tools",
    "ip_links",
    "list_netns",
    "mounts_under",
    "run",
    "wait_until",
]

CGROUP_ROOT = Path("/sys/fs/cgroup")
_T = TypeVar("_T")

# What the lab needs and the Debian package that brings it.
REQUIRED_TOOLS: dict[str, str] = {
    "dockerd": "docker.io",
    "containerd": "docker.io",
    "runc": "docker.io",
    "ip": "iproute2",
    "iptables": "iptables",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "setsid": "util-linux",
}
IMAGE_TOOLS: dict[str, str] = {"busybox": "busybox-static", "haproxy": "haproxy"}
REGISTRY_TOOLS: dict[str, str] = {"docker-registry": "docker-registry", "htpasswd": "apache2-utils"}


def _env() -> dict[str, str]:
    return {"PATH": PATH_ENV, "LC_ALL": "C", "HOME": os.environ.get("HOME", "/root")}


def which(tool: str) -> str | None:
    return shutil.which(tool, path=PATH_ENV)


def check_tools(tools: dict[str, str]) -> None:
    """Raise ``LabError`` telling exactly what to install if any of ``tools`` is missing."""
    missing_tools = [tool for tool in tools if which(tool) is None]
    if missing_tools:
        packages = " ".join(sorted({tools[tool] for tool in missing_tools}))
        raise LabError(
            f"{', '.join(missing_tools)} not found: install with `apt-get install {packages}`"
        )


def run(argv: Sequence[str], *, check: bool = True, input_text: str | None = None) -> str:
    """Run a host command and return its stdout; raise ``LabError`` if it fails."""
    try:
        completed = subprocess.run(
            list(argv),
            input=input_text,
            capture_output=True,
            text=True,
            env=_env(),
            check=False,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise LabError(f"`{' '.join(argv)}` failed: {error}") from error
    if check and completed.returncode != 0:
        detail = (completed.stderr or completed.stdout).strip().splitlines()
        message = detail[-1] if detail else f"exit status {completed.returncode}"
        raise LabError(f"`{' '.join(argv)}` failed: {message}")
    return completed.stdout


def spawn_detached(argv: Sequence[str], extra_env: dict[str, str] | None = None) -> None:
    """Start a detached command (it must fork away itself, e.g. ``setsid -f``)."""
    env = _env()
    env.update(extra_env or {})
    try:
        subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            check=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError) as error:
        raise LabError(f"`{' '.join(argv)}` failed: {error}") from error


def wait_until(
    probe: Callable[[], _T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
    max_interval: float = 0.5,
    clock: Clock | None = None,
) -> _T:
    """Poll ``probe`` until it returns something other than None/False (``poll_until``).

    The delays start at ``interval`` and grow to ``max_interval``, jittered.

    Raises:
        LabError: ``timeout`` seconds passed first, naming ``what`` was awaited.
    """
    backoff = Backoff(initial=interval, maximum=max_interval)
    try:
        return poll_until(probe, timeout=timeout, clock=clock, backoff=backoff)
    except PollTimeoutError:
        raise LabError(f"timed out after {timeout:g}s waiting for {what}") from None


def list_netns() -> set[str]:
    """Names of the network namespaces under /var/run/netns."""
    root = Path("/var/run/netns")
    if not root.is_dir():
        return set()
    return {entry.name for entry in root.iterdir()}


def ip_links() -> dict[str, bool]:
    """Host network interfaces and whether each is administratively up."""
    links: dict[str, bool] = {}
    for line in run(["ip", "-o", "link", "show"]).splitlines():
        parts = line.split(":", 2)
        if len(parts) < 3:
            continue
        name = parts[1].strip().split("@", 1)[0]
        flags = parts[2].split(">", 1)[0]
        links[name] = "UP" in flags.lstrip(" <").split(",")
    return links


def mounts_under(prefixes: Sequence[str]) -> list[str]:
    """Host mount points that lie at or below any of ``prefixes``."""
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        for line in mountinfo:
            point = line.split()[4].replace("\\040", " ")
            if any(point == p or point.startswith(p.rstrip("/") + "/") for p in prefixes):
                found.append(point)
    return found


def process_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


class Cgroups:
    """The lab's cgroups, on cgroup v1 (tracked in the freezer hierarchy) or v2."""

    def __init__(self, root: Path = CGROUP_ROOT) -> None:
        self.root = root
        self.v1 = (root / "freezer" / "cgroup.procs").exists()
        if not self.v1 and not (root / "cgroup.controllers").exists():
            raise LabError(f"no freezer cgroup hierarchy (v1) or cgroup v2 found under {root}")

    @property
    def tracking_root(self) -> Path:
        return self.root / "freezer" if self.v1 else self.root

    def path(self, relative: str) -> Path:
        return self.tracking_root / relative

    def procs_file(self, relative: str) -> Path:
        return self.path(relative) / "cgroup.procs"

    def create(self, relative: str) -> None:
        self.path(relative).mkdir(parents=True, exist_ok=True)

    def _walk(self, relative: str) -> Iterator[Path]:
        top = self.path(relative)
        if not top.is_dir():
            return
        for directory, _subdirs, _files in os.walk(top):
            yield Path(directory)

    def pids(self, relative: str) -> list[int]:
        """Every live process in the cgroup and its descendants."""
        pids: list[int] = []
        for directory in self._walk(relative):
            try:
                text = (directory / "cgroup.procs").read_text(encoding="utf-8")
            except OSError:
                continue
            pids.extend(int(pid) for pid in text.split() if process_alive(int(pid)))
        return pids

    def kill(self, relative: str, timeout: float = 15.0) -> None:
        """Kill every process of the cgroup at once, as a power cut would, and wait."""
        top = self.path(relative)
        if not top.is_dir():
            return
        if not self.v1 and (top / "cgroup.kill").exists():
            (top / "cgroup.kill").write_text("1", encoding="utf-8")
        else:
            # Freeze first so nothing forks while we kill; SIGKILL lands on thaw.
            state_file = top / ("freezer.state" if self.v1 else "cgroup.freeze")
            state_file.write_text("FROZEN" if self.v1 else "1", encoding="utf-8")
            try:
                for pid in self.pids(relative):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            finally:
                state_file.write_text("THAWED" if self.v1 else "0", encoding="utf-8")
        wait_until(
            lambda: not self.pids(relative),
            timeout=timeout,
            what=f"the processes of cgroup {relative} to exit",
        )

    def remove(self, relative: str) -> None:
        """Remove the cgroup and its descendants from every hierarchy (they must be empty)."""
        candidates = [self.root / relative, self.root / "unified" / relative]
        if self.v1:
            candidates.extend(h / relative for h in self.root.iterdir() if h.is_dir())
        for top in candidates:
            if not top.is_dir():
                continue
            for directory, _subdirs, _files in os.walk(top, topdown=False):
                try:
                    os.rmdir(directory)
                except FileNotFoundError:
                    pass
                except OSError as error:
                    raise LabError(f"cannot remove cgroup {directory}: {error}") from error

    def exists(self, relative: str) -> list[Path]:
        """Every hierarchy's directory of the cgroup that still exists."""
        found = [p for p in (self.root / relative, self.root / "unified" / relative) if p.exists()]
        if self.v1:
            found.extend(h / relative for h in self.root.iterdir() if (h / relative).exists())
        return sorted(set(found))
