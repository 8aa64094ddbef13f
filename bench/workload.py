"""The benchmark's stacks: one compose file, for converge (with x-converge) and stack deploy.

Every service: 1 replica of the lab image, a few env vars, labels and one constraint, attached
to one overlay network with a /16 subnet (a /24 holds about 250 addresses: lab-notes pitfall
10). Both renderings come from ``services()``, so the two tools deploy the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

__all__ = ["IMAGE", "Service", "compose_text", "services", "spec_text"]

IMAGE = "converge-lab/app:v1"
NETWORK = "benchnet"
CONSTRAINT = "node.role == worker"


@dataclass(frozen=True)
class Service:
    key: str
    env: dict[str, str]
    labels: dict[str, str]


def services(count: int, changed: int | None = None) -> list[Service]:
    """``count`` services; ``changed`` names the index whose one env var differs (the change)."""
    return [
        Service(
            key=f"svc{index:05d}",
            env={
                "APP_MODE": "bench",
                "APP_INDEX": str(index),
                "LOG_LEVEL": "debug" if index == changed else "info",
            },
            labels={"bench.tier": "app", "bench.index": str(index)},
        )
        for index in range(count)
    ]


def spec_text(stack: str, subnet: str, items: list[Service]) -> str:
    """converge's file for ``items``: the compose file, naming its stack in ``x-converge``."""
    document: dict[str, Any] = {"x-converge": {"stack": stack}, **_compose(subnet, items)}
    return _dump(document)


def compose_text(subnet: str, items: list[Service]) -> str:
    """The compose file for ``docker stack deploy`` (the same file converge reads)."""
    return _dump(_compose(subnet, items))


def _dump(document: dict[str, Any]) -> str:
    # libyaml's emitter writes the same text as ``yaml.safe_dump`` here, 3x as fast (100,000
    # services otherwise take minutes before the planner benchmark even starts).
    return yaml.dump(document, Dumper=yaml.CSafeDumper, sort_keys=False)


def _compose(subnet: str, items: list[Service]) -> dict[str, Any]:
    return {
        "networks": {NETWORK: {"driver": "overlay", "ipam": {"config": [{"subnet": subnet}]}}},
        "services": {
            item.key: {
                "image": IMAGE,
                "environment": item.env,
                "networks": [NETWORK],
                "deploy": {
                    "replicas": 1,
                    "labels": item.labels,
                    "placement": {"constraints": [CONSTRAINT]},
                },
            }
            for item in items
        },
    }
