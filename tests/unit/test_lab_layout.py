"""The lab's layout as pure values: names, addresses, paths and commands (no root needed)."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from converge.errors import LabError
from converge.lab.layout import (
    LabConfig,
    daemon_config,
    daemon_json_text,
    env_line,
    iptables_rules,
    launch_command,
    node_index,
    node_names,
    registry_config,
    registry_login_hint,
    registry_start_script,
    start_script,
)

DEFAULT = LabConfig()
NODES = node_names(4)


@pytest.mark.parametrize(
    ("workers", "expected"),
    [
        (0, ["manager"]),
        (1, ["manager", "dbhost"]),
        (4, ["manager", "dbhost", "worker1", "worker2", "worker3"]),
        (6, ["manager", "dbhost", "worker1", "worker2", "worker3", "worker4", "worker5"]),
    ],
)
def test_node_names(workers: int, expected: list[str]) -> None:
    assert node_names(workers) == expected


@pytest.mark.parametrize("workers", [-1, 61])
def test_node_names_refuses_absurd_counts(workers: int) -> None:
    with pytest.raises(LabError, match="--workers must be between 0 and 60"):
        node_names(workers)


def test_node_index_follows_node_names() -> None:
    assert [node_index(name) for name in node_names(10)] == list(range(11))


@pytest.mark.parametrize("name", ["", "Manager", "worker0", "worker", "db", "worker1x"])
def test_node_index_refuses_unknown_names(name: str) -> None:
    with pytest.raises(LabError, match="no lab node is called"):
        node_index(name)


def test_default_addresses() -> None:
    assert DEFAULT.host_address == "10.213.0.1"
    assert [DEFAULT.address(n) for n in NODES] == [
        "10.213.0.10",
        "10.213.0.11",
        "10.213.0.12",
        "10.213.0.13",
        "10.213.0.14",
    ]


def test_addresses_stay_inside_the_subnet() -> None:
    config = LabConfig(subnet=ipaddress.IPv4Network("10.213.1.0/24"))
    assert config.address("worker60") == "10.213.1.71"
    assert all(ipaddress.IPv4Address(config.address(n)) in config.subnet for n in node_names(60))
    assert config.address("manager") != config.host_address


def test_names_of_links_namespaces_chain_and_cgroups() -> None:
    assert DEFAULT.bridge == "cvlab0"
    assert DEFAULT.netns("worker1") == "cvlab-worker1"
    assert DEFAULT.netns_path("worker1") == Path("/var/run/netns/cvlab-worker1")
    assert DEFAULT.veth("worker1") == "cvlab-worker1"
    assert DEFAULT.chain == "CVLAB"
    assert DEFAULT.daemon_cgroup("dbhost") == "cvlab/dbhost/daemon"
    assert DEFAULT.containers_cgroup("dbhost") == "cvlab/dbhost/containers"
    # Linux interface names hold at most 15 characters.
    assert all(len(DEFAULT.veth(n)) <= 15 for n in node_names(60))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "CV"}, "lab name 'CV' must be"),
        ({"name": "toolong"}, "lab name 'toolong' must be"),
        ({"name": "a-b"}, "lab name 'a-b' must be"),
        ({"directory": Path("relative/lab")}, "must be an absolute path"),
        ({"directory": Path("/" + "x" * 70)}, "too long for unix sockets"),
        ({"subnet": ipaddress.IPv4Network("10.213.0.0/28")}, "too small"),
    ],
)
def test_config_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(LabError, match=message):
        LabConfig(**kwargs)  # type: ignore[arg-type]


def test_config_from_env() -> None:
    assert LabConfig.from_env({}) == LabConfig()
    config = LabConfig.from_env({"CONVERGE_LAB_DIR": "/tmp/mylab", "CONVERGE_LAB_CACHE": "/tmp/c"})
    assert config.directory == Path("/tmp/mylab")
    assert config.cache_dir == Path("/tmp/c")
    assert config.socket("manager") == Path("/tmp/mylab/nodes/manager/docker.sock")


def test_daemon_config_shares_nothing_between_nodes() -> None:
    configs = [daemon_config(DEFAULT, n) for n in NODES]
    for key in ("data-root", "exec-root", "pidfile", "deprecated-key-path", "cgroup-parent"):
        values = [str(c[key]) for c in configs]
        assert len(set(values)) == len(NODES), key
    assert len({str(c["hosts"]) for c in configs}) == len(NODES)
    manager = configs[0]
    assert manager["hosts"] == ["unix:///var/lib/converge-lab/nodes/manager/docker.sock"]
    assert manager["dns"] == ["127.0.0.1"]
    assert manager["cgroup-parent"] == "/cvlab/manager/containers"
    assert str(manager["data-root"]).startswith("/var/lib/converge-lab/nodes/manager/")
    assert json.loads(daemon_json_text(DEFAULT, "manager")) == manager


def test_start_script() -> None:
    script = start_script(
        DEFAULT, "worker2", Path("/sys/fs/cgroup/freezer/cvlab/worker2/daemon/cgroup.procs")
    )
    lines = script.splitlines()
    assert lines[0] == "#!/bin/sh"
    assert "echo $$ > /sys/fs/cgroup/freezer/cvlab/worker2/daemon/cgroup.procs" in lines
    assert "hostname worker2" in lines
    # Nodes pull (from the lab registry; anything else fails at once, with no route out),
    # so a private image deploys for real; an image only on the nodes still runs.
    assert not any("DOCKER_SERVICE_PREFER_OFFLINE_IMAGE" in line for line in lines)
    assert lines[-1] == (
        "exec dockerd --config-file /var/lib/converge-lab/nodes/worker2/daemon.json "
        ">> /var/lib/converge-lab/nodes/worker2/dockerd.log 2>&1"
    )
    # The cgroup is joined before anything else is started.
    assert lines.index(
        "echo $$ > /sys/fs/cgroup/freezer/cvlab/worker2/daemon/cgroup.procs"
    ) < lines.index("hostname worker2")


def test_launch_command_enters_the_netns_with_nsenter() -> None:
    command = launch_command(DEFAULT, "dbhost")
    assert command[:4] == ["setsid", "-f", "nsenter", "--net=/var/run/netns/cvlab-dbhost"]
    assert {"unshare", "--uts", "--mount"} <= set(command)
    assert command[-1] == "/var/lib/converge-lab/nodes/dbhost/start.sh"
    assert "netns" not in command[:3]  # never `ip netns exec`: it remounts /sys


def test_iptables_rules_seal_the_bridge() -> None:
    assert iptables_rules(DEFAULT) == [
        ["-i", "cvlab0", "-o", "cvlab0", "-j", "ACCEPT"],
        ["-i", "cvlab0", "-j", "DROP"],
        ["-o", "cvlab0", "-j", "DROP"],
    ]


def test_env_line() -> None:
    assert env_line(DEFAULT, "manager") == (
        "export DOCKER_HOST=unix:///var/lib/converge-lab/nodes/manager/docker.sock"
    )
    spaced = LabConfig(directory=Path("/tmp/my lab"))
    assert env_line(spaced, "worker1") == (
        "export DOCKER_HOST='unix:///tmp/my lab/nodes/worker1/docker.sock'"
    )


def test_every_node_trusts_the_lab_registry_and_nothing_else() -> None:
    for node in NODES:
        assert daemon_config(DEFAULT, node)["insecure-registries"] == ["10.213.0.1:5000"]
    other = LabConfig(name="l13r", subnet=ipaddress.IPv4Network("10.222.0.0/24"))
    assert daemon_config(other, "worker1")["insecure-registries"] == ["10.222.0.1:5000"]


def test_the_registry_listens_on_the_lab_bridge_with_basic_auth() -> None:
    config = registry_config(DEFAULT)
    assert config["http"] == {"addr": "10.213.0.1:5000"}
    assert config["auth"] == {
        "htpasswd": {"realm": "converge-lab", "path": "/var/lib/converge-lab/registry/htpasswd"}
    }
    assert config["storage"]["filesystem"] == {  # type: ignore[index]
        "rootdirectory": "/var/lib/converge-lab/registry/data"
    }
    script = registry_start_script(
        DEFAULT, Path("/sys/fs/cgroup/freezer/cvlab/registry/cgroup.procs")
    ).splitlines()
    # In the lab's cgroup first, so that `down` kills it with the nodes.
    assert script[3] == "echo $$ > /sys/fs/cgroup/freezer/cvlab/registry/cgroup.procs"
    assert script[4].startswith(
        "exec docker-registry serve /var/lib/converge-lab/registry/config.yml"
    )


def test_the_login_hint_never_shows_the_password() -> None:
    assert registry_login_hint(DEFAULT).splitlines() == [
        "# the lab registry is 10.213.0.1:5000 (user converge); log in with:",
        "#   docker login 10.213.0.1:5000 -u converge --password-stdin "
        "< /var/lib/converge-lab/registry/password",
    ]
