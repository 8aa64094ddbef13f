"""The lab's layout: names, addresses, paths and the exact commands, as pure values.

Nothing here touches the system, so every decision about what the lab looks like can be
unit-tested without root. ``converge.lab.lab`` carries these plans out.

A lab called ``cvlab`` (the default) with subnet ``10.213.0.0/24`` looks like this:

    host bridge   cvlab0            10.213.0.1/24 (the host's side, no forwarding out)
    node manager  netns cvlab-manager, veth cvlab-manager <-> eth0   10.213.0.10
    node dbhost   netns cvlab-dbhost,  veth cvlab-dbhost  <-> eth0   10.213.0.11
    node workerN  netns cvlab-workerN, veth cvlab-workerN <-> eth0   10.213.0.(11+N)
    cgroup        <hierarchy>/cvlab/<node>/daemon  (dockerd, containerd, shims)
                  <hierarchy>/cvlab/<node>/containers  (containers, via --cgroup-parent)
    iptables      chain CVLAB, jumped to from FORWARD
    registry      docker-registry on the host at 10.213.0.1:5000, htpasswd basic auth,
                  cgroup <hierarchy>/cvlab/registry; every node lists it in insecure-registries
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from converge.errors import LabError

__all__ = [
    "DEFAULT_CACHE_DIR",
    "DEFAULT_LAB_DIR",
    "DEFAULT_NAME",
    "DEFAULT_SUBNET",
    "DEFAULT_WORKERS",
    "MANAGER",
    "PATH_ENV",
    "REGISTRY_PORT",
    "REGISTRY_USER",
    "LabConfig",
    "daemon_config",
    "env_line",
    "iptables_rules",
    "launch_command",
    "node_index",
    "node_names",
    "registry_config",
    "registry_login_hint",
    "registry_start_script",
    "start_script",
]

MANAGER = "manager"
DEFAULT_WORKERS = 4
DEFAULT_NAME = "cvlab"
DEFAULT_SUBNET = "10.213.0.0/24"
DEFAULT_LAB_DIR = "/var/lib/converge-lab"
DEFAULT_CACHE_DIR = "/var/cache/converge-lab"
MAX_WORKERS = 60
# The first node address is .10; lower ones stay free for the host and later use.
FIRST_NODE_HOST = 10
REGISTRY_PORT = 5000
REGISTRY_USER = "converge"
PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Unix socket paths are limited to 108 bytes; containerd nests a few levels below the exec root.
_MAX_DIR_LENGTH = 60
_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,4}$")
_WORKER_RE = re.compile(r"^worker([1-9][0-9]*)$")


@dataclass(frozen=True)
class LabConfig:
    """Where a lab lives and what it is called; two labs with different configs can coexist.

    Args:
        directory: the lab directory (node data, sockets, logs); removed by ``down``.
        name: short prefix (1-5 lowercase letters/digits) for namespaces, links, cgroups and
            the iptables chain.
        subnet: the dedicated IPv4 range of the lab's bridge.
        cache_dir: where built image tarballs are kept across ``down``/``up``.
    """

    directory: Path = Path(DEFAULT_LAB_DIR)
    name: str = DEFAULT_NAME
    subnet: ipaddress.IPv4Network = field(
        default_factory=lambda: ipaddress.IPv4Network(DEFAULT_SUBNET)
    )
    cache_dir: Path = Path(DEFAULT_CACHE_DIR)

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise LabError(f"lab name {self.name!r} must be 1-5 lowercase letters or digits")
        if not self.directory.is_absolute():
            raise LabError(f"lab directory {self.directory} must be an absolute path")
        if len(str(self.directory)) > _MAX_DIR_LENGTH:
            raise LabError(
                f"lab directory {self.directory} is too long for unix sockets "
                f"(at most {_MAX_DIR_LENGTH} characters)"
            )
        if self.subnet.prefixlen > 24:
            raise LabError(f"lab subnet {self.subnet} is too small: use a /24 or larger")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> LabConfig:
        """The default lab, with ``CONVERGE_LAB_DIR``, ``CONVERGE_LAB_CACHE``,
        ``CONVERGE_LAB_NAME`` and ``CONVERGE_LAB_SUBNET`` applied (several labs can coexist
        when each has its own name, subnet and directory)."""
        env = dict(os.environ) if environ is None else environ
        return cls(
            name=env.get("CONVERGE_LAB_NAME") or DEFAULT_NAME,
            subnet=ipaddress.IPv4Network(env.get("CONVERGE_LAB_SUBNET") or DEFAULT_SUBNET),
            directory=Path(env.get("CONVERGE_LAB_DIR") or DEFAULT_LAB_DIR),
            cache_dir=Path(env.get("CONVERGE_LAB_CACHE") or DEFAULT_CACHE_DIR),
        )

    # -- network --------------------------------------------------------------------------

    @property
    def bridge(self) -> str:
        """The host bridge every node's link is plugged into."""
        return f"{self.name}0"

    @property
    def host_address(self) -> str:
        """The host's own address on the lab bridge."""
        return str(self.subnet.network_address + 1)

    @property
    def chain(self) -> str:
        """The iptables chain that seals the lab."""
        return self.name.upper()

    def address(self, node: str) -> str:
        """The IPv4 address of ``node`` (pure: derived from the name)."""
        host = FIRST_NODE_HOST + node_index(node)
        if host >= self.subnet.num_addresses - 1:
            raise LabError(f"node {node} does not fit in lab subnet {self.subnet}")
        return str(self.subnet.network_address + host)

    def netns(self, node: str) -> str:
        """The network namespace of ``node`` (under /var/run/netns)."""
        return f"{self.name}-{node}"

    def netns_path(self, node: str) -> Path:
        return Path("/var/run/netns") / self.netns(node)

    def veth(self, node: str) -> str:
        """The host-side end of ``node``'s link (the node side is ``eth0``)."""
        return f"{self.name}-{node}"

    # -- files ----------------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.directory / "lab.json"

    def node_dir(self, node: str) -> Path:
        return self.directory / "nodes" / node

    def socket(self, node: str) -> Path:
        return self.node_dir(node) / "docker.sock"

    def docker_host(self, node: str) -> str:
        return f"unix://{self.socket(node)}"

    def pidfile(self, node: str) -> Path:
        return self.node_dir(node) / "dockerd.pid"

    def log_file(self, node: str) -> Path:
        return self.node_dir(node) / "dockerd.log"

    def daemon_json(self, node: str) -> Path:
        return self.node_dir(node) / "daemon.json"

    def start_script_path(self, node: str) -> Path:
        return self.node_dir(node) / "start.sh"

    # -- the registry ---------------------------------------------------------------------

    @property
    def registry_address(self) -> str:
        """``host:port`` of the lab's registry: the host's address on the lab bridge."""
        return f"{self.host_address}:{REGISTRY_PORT}"

    @property
    def registry_dir(self) -> Path:
        """Its configuration, credentials, log and storage."""
        return self.directory / "registry"

    @property
    def registry_password_file(self) -> Path:
        """The password of user ``converge`` (0600), for ``docker login --password-stdin``."""
        return self.registry_dir / "password"

    @property
    def registry_cgroup(self) -> str:
        return f"{self.name}/registry"

    # -- cgroups --------------------------------------------------------------------------

    def cgroup(self, node: str) -> str:
        """The node's cgroup, relative to a hierarchy root."""
        return f"{self.name}/{node}"

    def daemon_cgroup(self, node: str) -> str:
        return f"{self.cgroup(node)}/daemon"

    def containers_cgroup(self, node: str) -> str:
        return f"{self.cgroup(node)}/containers"


def node_names(workers: int) -> list[str]:
    """The node names of a lab with ``workers`` non-manager nodes, manager first.

    The first worker is ``dbhost`` (the seed application's layout), then ``worker1``...
    """
    if workers < 0 or workers > MAX_WORKERS:
        raise LabError(f"--workers must be between 0 and {MAX_WORKERS}, not {workers}")
    names = [MANAGER]
    if workers >= 1:
        names.append("dbhost")
    names.extend(f"worker{number}" for number in range(1, workers))
    return names


def node_index(node: str) -> int:
    """The position of ``node`` in :func:`node_names` (manager 0, dbhost 1, workerN N+1)."""
    if node == MANAGER:
        return 0
    if node == "dbhost":
        return 1
    match = _WORKER_RE.match(node)
    if match is None:
        raise LabError(f"no lab node is called {node!r} (manager, dbhost, worker1, ...)")
    return int(match.group(1)) + 1


def daemon_config(config: LabConfig, node: str) -> dict[str, object]:
    """The ``daemon.json`` of ``node``: everything of its own, nothing shared with the host."""
    node_dir = config.node_dir(node)
    return {
        "data-root": str(node_dir / "data"),
        "exec-root": str(node_dir / "exec"),
        "hosts": [config.docker_host(node)],
        "pidfile": str(config.pidfile(node)),
        # Without its own key every daemon would share /etc/docker/key.json (one engine id).
        "deprecated-key-path": str(node_dir / "key.json"),
        # Unknown names fail locally instead of leaving the machine.
        "dns": ["127.0.0.1"],
        # The lab's own registry speaks plain HTTP on the lab bridge, nothing else.
        "insecure-registries": [config.registry_address],
        "cgroup-parent": "/" + config.containers_cgroup(node),
        "features": {"buildkit": False},
        "log-level": "warn",
        "log-opts": {"max-size": "1m", "max-file": "2"},
    }


def start_script(config: LabConfig, node: str, daemon_procs_file: Path) -> str:
    """The script run inside the node's namespaces; it ends by exec'ing ``dockerd``.

    Args:
        daemon_procs_file: the ``cgroup.procs`` file of the node's daemon cgroup.
    """
    q = shlex.quote
    return "\n".join(
        [
            "#!/bin/sh",
            f"# converge lab node {node}: run by `{shlex.join(launch_command(config, node))}`",
            "set -e",
            "# Everything this node starts lives in its cgroup, so node loss kills exactly it.",
            f"echo $$ > {q(str(daemon_procs_file))}",
            f"hostname {q(node)}",
            "# A private /run/containerd: no shared shim sockets, and never the host's containerd.",
            "mount -t tmpfs -o mode=0711 converge-lab /run/containerd",
            f"exec dockerd --config-file {q(str(config.daemon_json(node)))} "
            f">> {q(str(config.log_file(node)))} 2>&1",
            "",
        ]
    )


def launch_command(config: LabConfig, node: str) -> list[str]:
    """The host command that starts ``node``'s daemon, detached, in its own namespaces.

    ``nsenter --net`` rather than ``ip netns exec``: the latter remounts /sys, after which
    dockerd cannot find the cgroup hierarchies. The private mount namespace keeps the
    daemon's mounts (overlays, netns handles, its /run/containerd) out of the host's view.
    """
    return [
        "setsid",
        "-f",
        "nsenter",
        f"--net={config.netns_path(node)}",
        "unshare",
        "--uts",
        "--mount",
        "--propagation",
        "private",
        str(config.start_script_path(node)),
    ]


def iptables_rules(config: LabConfig) -> list[list[str]]:
    """The rules of the lab's chain: lab-to-lab traffic passes, anything else from or to the
    bridge is dropped (so nothing from the lab is ever forwarded off the machine)."""
    bridge = config.bridge
    return [
        ["-i", bridge, "-o", bridge, "-j", "ACCEPT"],
        ["-i", bridge, "-j", "DROP"],
        ["-o", bridge, "-j", "DROP"],
    ]


def registry_config(config: LabConfig) -> dict[str, object]:
    """The ``config.yml`` of the lab's registry (distribution 2.8, Debian's docker-registry):
    on the lab bridge only, htpasswd basic auth, storage in the lab directory."""
    return {
        "version": 0.1,
        "log": {"level": "warn", "fields": {"service": "registry"}},
        "storage": {
            "filesystem": {"rootdirectory": str(config.registry_dir / "data")},
            "delete": {"enabled": True},
        },
        "http": {"addr": config.registry_address},
        "auth": {
            "htpasswd": {"realm": "converge-lab", "path": str(config.registry_dir / "htpasswd")}
        },
    }


def registry_start_script(config: LabConfig, procs_file: Path) -> str:
    """The script that runs the registry on the host, in the lab's cgroup (``down`` kills it)."""
    q = shlex.quote
    directory = config.registry_dir
    return "\n".join(
        [
            "#!/bin/sh",
            f"# converge lab {config.name}: the registry at {config.registry_address}",
            "set -e",
            f"echo $$ > {q(str(procs_file))}",
            f"exec docker-registry serve {q(str(directory / 'config.yml'))} "
            f">> {q(str(directory / 'registry.log'))} 2>&1",
            "",
        ]
    )


def registry_login_hint(config: LabConfig) -> str:
    """How to log in to the lab's registry (the password stays in its file)."""
    address = config.registry_address
    return (
        f"# the lab registry is {address} (user {REGISTRY_USER}); log in with:\n"
        f"#   docker login {address} -u {REGISTRY_USER} --password-stdin "
        f"< {shlex.quote(str(config.registry_password_file))}"
    )


def env_line(config: LabConfig, node: str) -> str:
    """The shell line that points the docker CLI at ``node``."""
    return f"export DOCKER_HOST={shlex.quote(config.docker_host(node))}"


def daemon_json_text(config: LabConfig, node: str) -> str:
    """``daemon.json`` as written to disk."""
    return json.dumps(daemon_config(config, node), indent=2, sort_keys=True) + "\n"
