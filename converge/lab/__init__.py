"""``converge lab``: a throwaway multi-node Docker Swarm on this machine, for trying converge
and for the integration tests.

``Lab()`` is the default lab (``CONVERGE_LAB_DIR``, default ``/var/lib/converge-lab``); build
a :class:`Lab` with a :class:`LabConfig` for another one.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from converge.lab.layout import DEFAULT_WORKERS, MANAGER, LabConfig, node_names

if TYPE_CHECKING:
    from converge.lab.images import APP_IMAGES, APP_V1, APP_V2, haproxy_image
    from converge.lab.lab import API_VERSION, Lab, LabStatus, NodeStatus

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
    "haproxy_image",
    "node_names",
]

# These modules import docker (~125 ms): loaded on first use, so that `converge --help`, which
# registers the `lab` commands, does not pay for it.
_LAZY = {
    "API_VERSION": "converge.lab.lab",
    "Lab": "converge.lab.lab",
    "LabStatus": "converge.lab.lab",
    "NodeStatus": "converge.lab.lab",
    "APP_IMAGES": "converge.lab.images",
    "APP_V1": "converge.lab.images",
    "APP_V2": "converge.lab.images",
    "haproxy_image": "converge.lab.images",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
