"""The lab: a real multi-node Docker Swarm on one Linux machine, one ``dockerd`` per node.

Every node, the manager included, is its own ``dockerd`` in its own network, UTS and mount
namespace, with its own data root, exec root, socket, pid file, key and cgroup under one lab
directory. Nodes talk over a host bridge in a dedicated subnet that iptables seals off; no
namespace has a default route. ``converge.lab.layout`` says what goes where.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions
import yaml

from converge.errors import LabError
from converge.files import atomic_write
from converge.lab import images as lab_images
from converge.lab import layout, system
from converge.lab.layout import MANAGER, REGISTRY_USER, LabConfig

__all__ = ["API_VERSION", "Lab", "LabStatus", "NodeStatus"]

# The engine API version the lab speaks (Docker 20.10); newer engines accept it too.
API_VERSION = "1.41"
_RUN_CONTAINERD = Path("/run/containerd")
_LOCK_DIR = Path("/run/lock")
_START_TIMEOUT = 60.0
_READY_TIMEOUT = 90.0

Progress = Callable[[str], None]


def _quiet(_message: str) -> None:
    return None


@dataclass(frozen=True)
class NodeStatus:
    """What one node is doing, as seen from the host and from the manager."""

    name: str
    address: str
    socket: Path
    running: bool
    pid: int | None
    link_up: bool
    state: str | None  # as the manager sees it: ready, down, unknown...; None if no manager
    availability: str | None
    role: str | None
    node_id: str | None


@dataclass(frozen=True)
class LabStatus:
    """The whole lab: ``exists`` is False when nothing of it is set up."""

    directory: Path
    subnet: str
    exists: bool
    nodes: tuple[NodeStatus, ...]

    @property
    def ready(self) -> bool:
        """True when every node runs and the manager sees each one Ready."""
        return self.exists and all(n.running and n.state == "ready" for n in self.nodes)


@dataclass
class _State:
    nodes: list[str]
    created_run_containerd: bool = False

    @classmethod
    def read(cls, path: Path) -> _State | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                nodes=[str(n) for n in data["nodes"]],
                created_run_containerd=bool(data.get("created_run_containerd", False)),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise LabError(f"unreadable lab state {path}: {error}") from error

    def write(self, path: Path, config: LabConfig) -> None:
        data = {
            "name": config.name,
            "subnet": str(config.subnet),
            "nodes": self.nodes,
            "created_run_containerd": self.created_run_containerd,
        }
        atomic_write(path, json.dumps(data, indent=2) + "\n", mode=0o644)


def _client(config: LabConfig, node: str, timeout: int = 60) -> docker.DockerClient:
    return docker.DockerClient(
        base_url=config.docker_host(node), version=API_VERSION, timeout=timeout
    )


def _listening(path: Path) -> bool:
    # Probe the socket ourselves first: docker-py leaks its socket when a connect is refused.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def _answers(config: LabConfig, node: str) -> bool:
    if not _listening(config.socket(node)):
        return False
    client = _client(config, node, timeout=2)
    try:
        return bool(client.ping())
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError):
        return False
    finally:
        client.close()


@contextlib.contextmanager
def _locked(config: LabConfig) -> Iterator[None]:
    """Serialise ``up`` and ``down`` of one lab across processes (two test sessions at once).

    The lock file lives outside the lab directory, which ``down`` removes; /run is a tmpfs.
    """
    _LOCK_DIR.mkdir(parents=True, exist_ok=True)
    with open(_LOCK_DIR / f"converge-lab-{config.name}.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Lab:
    """One lab swarm, described by a :class:`LabConfig` (default: from the environment)."""

    def __init__(self, config: LabConfig | None = None) -> None:
        self.config = config if config is not None else LabConfig.from_env()

    # -- queries --------------------------------------------------------------------------

    def nodes(self) -> list[str]:
        """The lab's node names, manager first (empty when the lab is not set up)."""
        state = _State.read(self.config.state_file)
        return list(state.nodes) if state else []

    def exists(self) -> bool:
        """True if the lab is set up (its state file exists), running or not."""
        return self.config.state_file.exists()

    def manager_address(self) -> str:
        """The manager's address on the lab bridge (its swarm advertise address)."""
        return self.config.address(MANAGER)

    def node_address(self, name: str) -> str:
        """The address of node ``name`` on the lab bridge."""
        return self.config.address(name)

    def node_socket(self, name: str = MANAGER) -> Path:
        """The unix socket of node ``name``'s engine."""
        self._check_node(name)
        return self.config.socket(name)

    def docker_host(self, name: str = MANAGER) -> str:
        """``unix://`` URL of node ``name``'s engine, for ``DOCKER_HOST``."""
        return f"unix://{self.node_socket(name)}"

    def env(self, name: str = MANAGER) -> str:
        """The ``export DOCKER_HOST=...`` line for node ``name`` (the manager by default)."""
        self._check_node(name)
        return layout.env_line(self.config, name)

    def client(self, name: str = MANAGER, timeout: int = 60) -> docker.DockerClient:
        """A docker SDK client for node ``name``'s engine; close it when done."""
        self._check_node(name)
        return _client(self.config, name, timeout)

    def is_running(self, name: str) -> bool:
        """True if node ``name``'s engine answers."""
        return bool(self._daemon_pids(name)) and _answers(self.config, name)

    def status(self) -> LabStatus:
        """What runs: each node's daemon, link and swarm state."""
        state = _State.read(self.config.state_file)
        names = state.nodes if state else []
        links = system.ip_links() if names else {}
        swarm: dict[str, dict[str, Any]] = {}
        if names and self.is_running(MANAGER):
            swarm = self._swarm_nodes()
        statuses = []
        for name in names:
            seen = swarm.get(name, {})
            statuses.append(
                NodeStatus(
                    name=name,
                    address=self.config.address(name),
                    socket=self.config.socket(name),
                    running=self.is_running(name),
                    pid=self._pid(name),
                    link_up=links.get(self.config.veth(name), False),
                    state=seen.get("Status", {}).get("State") if seen else None,
                    availability=seen.get("Spec", {}).get("Availability") if seen else None,
                    role=seen.get("Spec", {}).get("Role") if seen else None,
                    node_id=seen.get("ID") if seen else None,
                )
            )
        return LabStatus(
            directory=self.config.directory,
            subnet=str(self.config.subnet),
            exists=state is not None,
            nodes=tuple(statuses),
        )

    # -- up -------------------------------------------------------------------------------

    def up(
        self,
        workers: int = layout.DEFAULT_WORKERS,
        *,
        images: bool = True,
        progress: Progress = _quiet,
    ) -> LabStatus:
        """Start the lab, or complete and repair it; harmless when it already runs.

        Args:
            workers: non-manager nodes (dbhost, worker1, ...); a running lab can grow, not
                shrink.
            images: build (or take from the cache) and load the test images on every node.
            progress: called with one line per step.

        Returns:
            The lab's status, every node Ready.

        Raises:
            LabError: not root, a tool is missing, or a node does not come up.
        """
        self._preflight(images)
        names = layout.node_names(workers)
        with _locked(self.config):
            return self._up(names, images, progress)

    def _up(self, names: list[str], images: bool, progress: Progress) -> LabStatus:
        started = time.monotonic()
        workers = len(names) - 1
        state = _State.read(self.config.state_file)
        if state is not None and len(state.nodes) > len(names):
            raise LabError(
                f"the lab already has {len(state.nodes) - 1} workers; "
                f"run `converge lab down` first to get {workers}"
            )
        if state is None:
            state = _State(nodes=names)
        state.nodes = names
        self.config.directory.mkdir(parents=True, exist_ok=True)
        if not _RUN_CONTAINERD.exists():
            _RUN_CONTAINERD.mkdir(mode=0o711, parents=True)
            state.created_run_containerd = True
        state.write(self.config.state_file, self.config)

        cgroups = system.Cgroups()
        self._ensure_network(names)
        self._ensure_registry(cgroups, progress)
        to_start = [name for name in names if not self._daemon_pids(name)]
        for name in names:
            self._write_node_files(name, cgroups)
        for name in to_start:
            self._spawn(name, cgroups)
        if to_start:
            progress(f"started {len(to_start)} node daemon(s): {', '.join(to_start)}")

        image_set = lab_images.build_image_set() if images else None
        with ThreadPoolExecutor(max_workers=len(names) + 1) as pool:
            token: Future[str] = pool.submit(self._ensure_manager)
            tarballs: Future[dict[str, Path]] | None = None
            if image_set is not None:
                tarballs = pool.submit(self._ensure_tarballs, image_set, token)
            jobs = [
                pool.submit(self._ensure_node, name, token, image_set, tarballs, progress)
                for name in names
            ]
            for job in jobs:
                job.result()
        if image_set is not None:
            self._push_images(image_set.tags, progress)
        self._wait_ready(names)
        progress(f"lab ready: {len(names)} nodes in {time.monotonic() - started:.1f}s")
        return self.status()

    def _preflight(self, images: bool) -> None:
        if os.geteuid() != 0:
            raise LabError("the lab needs root (namespaces, cgroups, iptables): run it as root")
        system.check_tools({**system.REQUIRED_TOOLS, **system.REGISTRY_TOOLS})
        if images:
            system.check_tools(system.IMAGE_TOOLS)

    def _ensure_network(self, names: list[str]) -> None:
        config = self.config
        links = system.ip_links()
        if config.bridge not in links:
            system.run(["ip", "link", "add", config.bridge, "type", "bridge"])
            system.run(
                ["sysctl", "-qw", f"net.ipv6.conf.{config.bridge}.disable_ipv6=1"], check=False
            )
            system.run(
                [
                    "ip",
                    "addr",
                    "add",
                    f"{config.host_address}/{config.subnet.prefixlen}",
                    "dev",
                    config.bridge,
                ]
            )
        system.run(["ip", "link", "set", config.bridge, "up"])
        self._ensure_firewall()
        existing = system.list_netns()
        for name in names:
            netns, veth = config.netns(name), config.veth(name)
            if netns not in existing:
                system.run(["ip", "netns", "add", netns])
                system.run(
                    [
                        "nsenter",
                        f"--net={config.netns_path(name)}",
                        "sysctl",
                        "-qw",
                        "net.ipv6.conf.all.disable_ipv6=1",
                        "net.ipv6.conf.default.disable_ipv6=1",
                    ],
                    check=False,
                )
            if veth not in links:
                system.run(
                    [
                        "ip",
                        "link",
                        "add",
                        veth,
                        "type",
                        "veth",
                        "peer",
                        "name",
                        "eth0",
                        "netns",
                        netns,
                    ]
                )
                system.run(
                    [
                        "ip",
                        "-n",
                        netns,
                        "addr",
                        "add",
                        f"{config.address(name)}/{config.subnet.prefixlen}",
                        "dev",
                        "eth0",
                    ]
                )
                system.run(["ip", "-n", netns, "link", "set", "eth0", "up"])
                system.run(["ip", "-n", netns, "link", "set", "lo", "up"])
                system.run(["ip", "link", "set", veth, "master", config.bridge, "up"])
            elif not links[veth]:
                system.run(["ip", "link", "set", veth, "up"])  # left cut by a fault test

    def _ensure_firewall(self) -> None:
        chain = self.config.chain
        if system.run(["iptables", "-w", "-n", "-L", chain], check=False) == "":
            system.run(["iptables", "-w", "-N", chain])
        rules = system.run(["iptables", "-w", "-S", chain]).splitlines()
        wanted = [" ".join(["-A", chain, *rule]) for rule in layout.iptables_rules(self.config)]
        if [r for r in rules if r.startswith("-A ")] != wanted:
            system.run(["iptables", "-w", "-F", chain])
            for rule in layout.iptables_rules(self.config):
                system.run(["iptables", "-w", "-A", chain, *rule])
        if not self._forward_jump_exists():
            system.run(["iptables", "-w", "-I", "FORWARD", "1", "-j", chain])

    def _forward_jump_exists(self) -> bool:
        return (
            f"-A FORWARD -j {self.config.chain}"
            in system.run(["iptables", "-w", "-S", "FORWARD"]).splitlines()
        )

    # -- the registry -----------------------------------------------------------------------

    def registry_address(self) -> str:
        """``host:port`` of the lab's registry (every node trusts it over plain HTTP)."""
        return self.config.registry_address

    def registry_credentials(self) -> dict[str, str]:
        """``username`` and ``password`` of the lab's registry (docker-py's ``auth_config``)."""
        try:
            password = self.config.registry_password_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise LabError(f"the lab registry has no password file: {error}") from error
        return {"username": REGISTRY_USER, "password": password}

    def registry_login_hint(self) -> str:
        """Shell comment lines saying how to ``docker login`` to the lab's registry."""
        return layout.registry_login_hint(self.config)

    def push_image(self, source: str, target: str) -> str:
        """Push the manager's image ``source`` to the lab registry as ``target`` (a
        ``repository:tag`` under the registry's address); returns the pushed digest. No node
        keeps the ``target`` tag: a service using it makes the nodes pull."""
        client = _client(self.config, MANAGER, timeout=300)
        try:
            return lab_images.push(
                client, source, f"{self.registry_address()}/{target}", self.registry_credentials()
            )
        finally:
            client.close()

    def _registry_answers(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(1)
            try:
                probe.connect((self.config.host_address, layout.REGISTRY_PORT))
            except OSError:
                return False
        return True

    def _ensure_registry(self, cgroups: system.Cgroups, progress: Progress) -> None:
        """Start the registry at the host's lab address unless it runs; keep its password."""
        config = self.config
        directory = config.registry_dir
        (directory / "data").mkdir(parents=True, exist_ok=True)
        if not config.registry_password_file.exists():
            atomic_write(config.registry_password_file, secrets.token_urlsafe(18) + "\n")
        password = self.registry_credentials()["password"]
        htpasswd = system.run(["htpasswd", "-niB", REGISTRY_USER], input_text=password + "\n")
        atomic_write(directory / "htpasswd", htpasswd, mode=0o600)
        atomic_write(
            directory / "config.yml",
            yaml.safe_dump(layout.registry_config(config), sort_keys=False),
            mode=0o644,
        )
        if cgroups.pids(config.registry_cgroup) and self._registry_answers():
            return
        cgroups.kill(config.registry_cgroup)
        cgroups.create(config.registry_cgroup)
        script = directory / "start.sh"
        script.write_text(
            layout.registry_start_script(config, cgroups.procs_file(config.registry_cgroup)),
            encoding="utf-8",
        )
        script.chmod(0o755)
        system.spawn_detached(["setsid", "-f", str(script)])

        joined: list[bool] = []

        def probe() -> bool:
            if self._registry_answers():
                return True
            # setsid -f returns at once: the script may not have joined the cgroup yet.
            if cgroups.pids(config.registry_cgroup):
                joined.append(True)
            elif joined:
                raise LabError(f"the lab registry exited: {self._registry_log_tail()}")
            return False

        system.wait_until(
            probe, timeout=_START_TIMEOUT, what=f"the lab registry at {config.registry_address}"
        )
        progress(f"registry started at {config.registry_address}")

    def _registry_log_tail(self) -> str:
        try:
            log = (self.config.registry_dir / "registry.log").read_text(encoding="utf-8")
        except OSError:
            return "no log"
        lines = log.strip().splitlines()
        return lines[-1] if lines else "empty log"

    def _push_images(self, tags: list[str], progress: Progress) -> None:
        """The lab's test images, also in its registry under the same names."""
        for tag in tags:
            self.push_image(tag, tag)
        progress(f"pushed {len(tags)} image(s) to the registry {self.registry_address()}")

    def _write_node_files(self, name: str, cgroups: system.Cgroups) -> None:
        node_dir = self.config.node_dir(name)
        node_dir.mkdir(parents=True, exist_ok=True)
        self.config.daemon_json(name).write_text(
            layout.daemon_json_text(self.config, name), encoding="utf-8"
        )
        script = self.config.start_script_path(name)
        script.write_text(
            layout.start_script(
                self.config, name, cgroups.procs_file(self.config.daemon_cgroup(name))
            ),
            encoding="utf-8",
        )
        script.chmod(0o755)

    def _spawn(self, name: str, cgroups: system.Cgroups) -> None:
        cgroups.create(self.config.daemon_cgroup(name))
        # Pid files left by a killed node: its pids may still be zombies (alive to kill -0),
        # and dockerd would then wait for a containerd that is gone.
        self.config.pidfile(name).unlink(missing_ok=True)
        (self.config.node_dir(name) / "exec" / "containerd" / "containerd.pid").unlink(
            missing_ok=True
        )
        system.spawn_detached(layout.launch_command(self.config, name))
        # setsid -f returns before the start script has put itself into the node's cgroup.
        system.wait_until(
            lambda: bool(self._daemon_pids(name)) or self.config.pidfile(name).exists(),
            timeout=10,
            what=f"node {name}'s start script to run",
        )

    def _wait_answers(self, name: str) -> None:
        def probe() -> bool:
            if _answers(self.config, name):
                return True
            if not self._daemon_pids(name):
                raise LabError(f"node {name}'s dockerd exited: {self._log_tail(name)}")
            return False

        system.wait_until(probe, timeout=_START_TIMEOUT, what=f"node {name}'s dockerd")

    def _log_tail(self, name: str) -> str:
        try:
            lines = self.config.log_file(name).read_text(encoding="utf-8").strip().splitlines()
        except OSError:
            return "no log"
        return lines[-1] if lines else "empty log"

    def _ensure_manager(self) -> str:
        """Wait for the manager, init the swarm if needed; return the worker join token."""
        self._wait_answers(MANAGER)
        client = _client(self.config, MANAGER)
        try:
            if client.info()["Swarm"]["LocalNodeState"] != "active":
                address = self.config.address(MANAGER)
                client.swarm.init(advertise_addr=address, listen_addr=f"{address}:2377")
            client.swarm.reload()
            return str(client.swarm.attrs["JoinTokens"]["Worker"])
        except docker.errors.APIError as error:
            raise LabError(f"failed to init the swarm on the manager: {error}") from error
        finally:
            client.close()

    def _ensure_tarballs(
        self, image_set: lab_images.ImageSet, token: Future[str]
    ) -> dict[str, Path]:
        cached = lab_images.cached_tarballs(image_set, self.config.cache_dir)
        if cached is not None:
            return cached
        token.result()  # the manager answers
        client = _client(self.config, MANAGER, timeout=300)
        try:
            return lab_images.ensure_saved(client, image_set, self.config.cache_dir)
        finally:
            client.close()

    def _ensure_node(
        self,
        name: str,
        token: Future[str],
        image_set: lab_images.ImageSet | None,
        tarballs: Future[dict[str, Path]] | None,
        progress: Progress,
    ) -> None:
        self._wait_answers(name)
        client = _client(self.config, name, timeout=300)
        try:
            # Images first: loading does not need the swarm, joining waits for the manager.
            if image_set is not None and tarballs is not None:
                loaded = lab_images.ensure_loaded(client, image_set, tarballs.result())
                if loaded:
                    progress(f"{name}: loaded {', '.join(loaded)}")
            if name != MANAGER:
                join_token = token.result()
                info = client.info()["Swarm"]
                if info["LocalNodeState"] in ("pending", "error"):
                    client.swarm.leave(force=True)
                if info["LocalNodeState"] != "active":
                    address = self.config.address(name)
                    client.swarm.join(
                        remote_addrs=[f"{self.manager_address()}:2377"],
                        join_token=join_token,
                        listen_addr=f"{address}:2377",
                        advertise_addr=address,
                    )
        except docker.errors.APIError as error:
            raise LabError(f"failed to set up node {name}: {error}") from error
        finally:
            client.close()

    def _swarm_nodes(self) -> dict[str, dict[str, Any]]:
        """The manager's view of each hostname; a Ready entry wins over stale ones."""
        client = _client(self.config, MANAGER, timeout=10)
        try:
            seen: dict[str, dict[str, Any]] = {}
            for node in client.nodes.list():
                attrs: dict[str, Any] = node.attrs
                hostname = attrs.get("Description", {}).get("Hostname", "")
                current = seen.get(hostname)
                if current is None or current["Status"]["State"] != "ready":
                    seen[hostname] = attrs
            return seen
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return {}
        finally:
            client.close()

    def _wait_ready(self, names: list[str], timeout: float = _READY_TIMEOUT) -> None:
        def probe() -> bool:
            seen = self._swarm_nodes()
            return all(seen.get(n, {}).get("Status", {}).get("State") == "ready" for n in names)

        system.wait_until(probe, timeout=timeout, what=f"nodes {', '.join(names)} to be Ready")

    # -- down -----------------------------------------------------------------------------

    def down(self, progress: Progress = _quiet) -> bool:
        """Remove everything of the lab: processes, namespaces, links, firewall rules,
        cgroups, mounts and the lab directory. Harmless when nothing is there.

        Returns:
            True if something was removed.
        """
        if os.geteuid() != 0:
            raise LabError("the lab needs root (namespaces, cgroups, iptables): run it as root")
        with _locked(self.config):
            return self._down(progress)

    def _down(self, progress: Progress) -> bool:
        started = time.monotonic()
        config = self.config
        state = _State.read(config.state_file)
        removed = False
        cgroups = system.Cgroups()
        if cgroups.pids(config.name):
            cgroups.kill(config.name)
            removed = True
        prefix = f"{config.name}-"
        for netns in sorted(system.list_netns()):
            if netns.startswith(prefix):
                system.run(["ip", "netns", "delete", netns])
                removed = True
        for link in system.ip_links():
            if link.startswith(prefix) or link == config.bridge:
                system.run(["ip", "link", "delete", link], check=False)
                removed = True
        removed = self._remove_firewall() or removed
        for point in sorted(system.mounts_under([str(config.directory)]), reverse=True):
            system.run(["umount", "-l", point], check=False)
        if cgroups.exists(config.name):
            cgroups.remove(config.name)
            removed = True
        if config.directory.exists():
            shutil.rmtree(config.directory)
            removed = True
        if state is not None and state.created_run_containerd:
            with contextlib.suppress(OSError):  # something else uses it now
                _RUN_CONTAINERD.rmdir()
        if removed:
            progress(f"lab removed in {time.monotonic() - started:.1f}s")
        return removed

    def _remove_firewall(self) -> bool:
        chain = self.config.chain
        removed = False
        while self._forward_jump_exists():
            system.run(["iptables", "-w", "-D", "FORWARD", "-j", chain])
            removed = True
        if system.run(["iptables", "-w", "-n", "-L", chain], check=False) != "":
            system.run(["iptables", "-w", "-F", chain])
            system.run(["iptables", "-w", "-X", chain])
            removed = True
        return removed

    # -- faults ---------------------------------------------------------------------------

    def stop_node(self, name: str) -> None:
        """Node loss: kill at once every process of node ``name`` (daemon and containers)."""
        self._check_node(name)
        system.Cgroups().kill(self.config.cgroup(name))

    def start_node(self, name: str, wait: bool = True) -> None:
        """Start node ``name``'s daemon again (same data, so the same swarm node id).

        Args:
            wait: also wait until the manager sees the node Ready.
        """
        self._check_node(name)
        if not self._daemon_pids(name):
            cgroups = system.Cgroups()
            self._write_node_files(name, cgroups)
            self._spawn(name, cgroups)
        self._wait_answers(name)
        if wait:
            self._wait_ready([name])

    def cut_link(self, name: str) -> None:
        """Network partition: take node ``name``'s link down (host side of its veth)."""
        self._check_node(name)
        system.run(["ip", "link", "set", self.config.veth(name), "down"])

    def restore_link(self, name: str) -> None:
        """Bring node ``name``'s link back up."""
        self._check_node(name)
        system.run(["ip", "link", "set", self.config.veth(name), "up"])

    # -- helpers --------------------------------------------------------------------------

    def _check_node(self, name: str) -> None:
        layout.node_index(name)  # raises on a malformed name
        names = self.nodes()
        if names and name not in names:
            raise LabError(f"the lab has no node {name!r}: it has {', '.join(names)}")

    def _daemon_pids(self, name: str) -> list[int]:
        return system.Cgroups().pids(self.config.daemon_cgroup(name))

    def _pid(self, name: str) -> int | None:
        try:
            pid = int(self.config.pidfile(name).read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            return None
        return pid if system.process_alive(pid) else None
