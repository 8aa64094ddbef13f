"""``converge lab``: a throwaway multi-node Docker Swarm on this machine, for trying converge
and for the integration tests.

The module functions act on the default lab (``CONVERGE_LAB_DIR``, default
``/var/lib/converge-lab``); build a :class:`Lab` with a :class:`LabConfig` for another one.
"""

from __future__ import annotations

from pathlib import Path

from converge.lab.images import APP_IMAGES, APP_V1, APP_V2, haproxy_image
from converge.lab.lab import API_VERSION, Lab, LabStatus, NodeStatus
from converge.lab.layout import DEFAULT_WORKERS, MANAGER, LabConfig, node_names

__all__ = [
    "API_VERSION",
    "APP_IMAGES",
    "APP_V1",
    "APP_V2",
    "DEFAULT_WORKERS",
    "MANAGER",
    "Lab",
    "LabConfig",
    "LabStatus",
    "NodeStatus",
    "cut_link",
    "down",
    "env",
    "haproxy_image",
    "manager_address",
    "node_address",
    "node_names",
    "node_socket",
    "restore_link",
    "start_node",
    "status",
    "stop_node",
    "up",
]


def up(workers: int = DEFAULT_WORKERS, *, images: bool = True) -> LabStatus:
    """Start (or complete) the default lab; see :meth:`Lab.up`."""
    return Lab().up(workers, images=images)


def down() -> bool:
    """Remove the default lab entirely; see :meth:`Lab.down`."""
    return Lab().down()


def status() -> LabStatus:
    """The default lab's status."""
    return Lab().status()


def env(node: str = MANAGER) -> str:
    """``export DOCKER_HOST=...`` for a node of the default lab (the manager by default)."""
    return Lab().env(node)


def node_socket(name: str = MANAGER) -> Path:
    """The engine socket of node ``name`` in the default lab."""
    return Lab().node_socket(name)


def manager_address() -> str:
    """The manager's address in the default lab."""
    return Lab().manager_address()


def node_address(name: str) -> str:
    """Node ``name``'s address in the default lab."""
    return Lab().node_address(name)


def stop_node(name: str) -> None:
    """Kill node ``name`` of the default lab (node loss)."""
    Lab().stop_node(name)


def start_node(name: str, wait: bool = True) -> None:
    """Start node ``name`` of the default lab again."""
    Lab().start_node(name, wait=wait)


def cut_link(name: str) -> None:
    """Take node ``name``'s link down (network partition)."""
    Lab().cut_link(name)


def restore_link(name: str) -> None:
    """Bring node ``name``'s link back up."""
    Lab().restore_link(name)
