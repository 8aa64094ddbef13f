"""The external HAProxy load balancer, one feature in one package.

- ``converge.lb.config``: pure; haproxy.cfg rendering and the container's desired view.
- ``converge.lb.container``: I/O through the balancer node's engine; observe, validate,
  install, reload, recreate.

Only the pure names are re-exported here: importing this package must not import docker, so
``converge lb render --offline`` and ``converge validate`` stay fast.
"""

from __future__ import annotations

from converge.lb.config import (
    CONFIG_DIR,
    CONFIG_FILE,
    CONFIG_PATH,
    RELOAD_SIGNAL,
    REPLACE_FIELDS,
    Server,
    backend_servers,
    container_body,
    container_name,
    desired_view,
    dns_networks,
    follows_placement,
    haproxy_duration,
    loadbalancer_findings,
    observed_view,
    render_config,
    server_names,
)

__all__ = [
    "CONFIG_DIR",
    "CONFIG_FILE",
    "CONFIG_PATH",
    "RELOAD_SIGNAL",
    "REPLACE_FIELDS",
    "Server",
    "backend_servers",
    "container_body",
    "container_name",
    "desired_view",
    "dns_networks",
    "follows_placement",
    "haproxy_duration",
    "loadbalancer_findings",
    "observed_view",
    "render_config",
    "server_names",
]
