"""``converge lab``: a throwaway multi-node Docker Swarm on this machine, for trying converge
and for the integration tests.

``Lab()`` is the default lab (``CONVERGE_LAB_DIR``, default ``/var/lib/converge-lab``); build
a :class:`Lab` with a :class:`LabConfig` for another one.
"""

from __future__ import annotations

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
    "haproxy_image",
    "node_names",
]
