"""HAProxy's runtime API in the balancer container, reached through its node's engine.

The rendered config opens the API on the container's loopback only
(``stats socket ipv4@127.0.0.1:<ROLLOUT_RUNTIME_PORT> level admin``); converge runs commands
there with ``exec`` through the engine of the balancer's node, as it validates configs, so
nothing is published and converge may run far from the node. The image needs ``nc``
(busybox's, as the lab image and Alpine-based images have) or ``socat``.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from converge.engine import Engine
from converge.errors import LoadBalancerError
from converge.lb.rollout import ServerStat, parse_stats
from converge.naming import ROLLOUT_RUNTIME_PORT

__all__ = ["Runtime"]

_CLIENT = (
    "if command -v socat >/dev/null 2>&1; "
    f"then socat stdio tcp4-connect:127.0.0.1:{ROLLOUT_RUNTIME_PORT}; "
    f"else nc 127.0.0.1 {ROLLOUT_RUNTIME_PORT}; fi"
)
_BATCH = 40
"""Commands per connection (one line, ``;``-separated; HAProxy caps a line's length)."""


class Runtime:
    """Commands to one balancer container's runtime API."""

    def __init__(self, engine: Engine, name: str, container_id: str) -> None:
        self.engine, self.name, self.container_id = engine, name, container_id

    def run(self, commands: Sequence[str]) -> str:
        """Send ``commands`` (in batches on one line each); their output, concatenated.

        Raises:
            LoadBalancerError: the API did not answer (no client in the image, or the
                running config opens no runtime API).
        """
        output = []
        for start in range(0, len(commands), _BATCH):
            line = "; ".join(commands[start : start + _BATCH])
            script = f"printf '%s\\n' {shlex.quote(line)} | {{ {_CLIENT}; }}"
            code, text = self.engine.exec_run(self.name, self.container_id, ["sh", "-c", script])
            if code != 0:
                raise LoadBalancerError(
                    f"the runtime API of loadbalancer {self.name} did not answer "
                    f"(exit {code}): {text.strip()[-300:] or 'no output'}"
                )
            output.append(text)
        return "".join(output)

    def stats(self) -> tuple[ServerStat, ...]:
        """Every server's state, weight and counters (``show stat``)."""
        text = self.run(["show stat"])
        if "pxname" not in text:
            raise LoadBalancerError(
                f"the runtime API of loadbalancer {self.name} answered no statistics: "
                f"{text.strip()[-300:] or 'no output'}"
            )
        return parse_stats(text)
