"""``service_engine_spec`` and ``network_create_body``: the payloads apply sends.

The round trip: a payload built from a spec, read back as if the engine returned it, aligns to
the spec's own view, so a plan right after an apply is empty. The recorded lab JSON proves the
same against the real engine (``test_planner.py``); these tests cover every ServiceSpec field.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from converge.diff import compare_views
from converge.engine_spec import network_create_body, service_engine_spec
from converge.loader import load_spec_text
from converge.normalize import (
    align,
    desired_network_view,
    desired_service_view,
    observed_network_view,
    observed_service_view,
)
from converge.spec import Spec

RICH = """
version: 1
stack: shop
networks:
  backend: {attachable: true}
  front: {}
  shared: {external: true, name: outside_net}
volumes:
  data: {labels: {backup: daily}}
  cache: {external: true}
services:
  web:
    image: registry.local:5000/shop/web:1.2
    entrypoint: /bin/entry --verbose
    command: [serve, --port, "80"]
    replicas: 4
    placement:
      constraints: ["node.labels.type==mvc", node.role != manager]
      preferences: [{spread: node.labels.zone}]
      max_replicas_per_node: 2
    ports:
      - "8080:80"
      - "5353:53/udp"
      - {target: 9000, published: 9000, mode: host}
      - "7000"
    mounts:
      - data:/var/data:ro
      - {type: volume, source: cache, target: /cache, volume: {nocopy: true}}
      - {type: bind, source: /etc/shop, target: /etc/shop, read_only: true,
         bind: {propagation: rslave}}
      - {type: tmpfs, target: /tmp, tmpfs: {size: 64M, mode: 01777}}
      - {type: volume, target: /anonymous}
    env: {B: 2, A: "1", EMPTY: ""}
    networks:
      backend: {aliases: [www, web]}
      front: {}
      shared: {}
    labels: {tier: front, owner: shop}
    container_labels: {logging: json}
    endpoint_mode: vip
    update_config: {parallelism: 2, delay: 5s, failure_action: rollback, monitor: 30s,
                    max_failure_ratio: 0.25, order: start-first}
    rollback_config: {parallelism: 0, delay: 1s, failure_action: continue, monitor: 10s,
                      max_failure_ratio: 0.5, order: stop-first}
    restart_policy: {condition: on-failure, delay: 2s, max_attempts: 5, window: 1m}
    resources:
      limits: {cpus: 1.5, memory: 512M}
      reservations: {cpus: 0.25, memory: 128M}
    healthcheck:
      test: curl -f http://localhost/
      interval: 15s
      timeout: 3s
      retries: 4
      start_period: 20s
    stop_grace_period: 45s
    stop_signal: SIGQUIT
    user: "1000:1000"
    workdir: /srv
    hostname: web-host
    init: true
    read_only: true
  agent:
    image: agent
    mode: global
    healthcheck: {disable: true}
    endpoint_mode: dnsrr
    networks: [backend]
  bare:
    image: converge-lab/app:v1
"""


@pytest.fixture(scope="module")
def rich() -> Spec:
    return load_spec_text(RICH, environ={}).spec


def read_back(payload: dict[str, Any]) -> dict[str, Any]:
    """The view of ``payload`` as the engine would report it (network targets as sent)."""
    names = {name: name for name in ("shop_backend", "shop_front", "outside_net")}
    return observed_service_view(payload, "shop", names)


@pytest.mark.parametrize("key", ["web", "agent", "bare"])
def test_a_created_payload_reads_back_as_the_spec(rich: Spec, key: str) -> None:
    payload = service_engine_spec(rich, key)
    desired = desired_service_view(rich, key)
    assert compare_views(align(desired, read_back(payload)), desired) == []


def test_the_rich_payload_sets_every_service_spec_field(rich: Spec) -> None:
    payload = service_engine_spec(rich, "web")
    container = payload["TaskTemplate"]["ContainerSpec"]
    assert set(container) >= {
        "Image", "Command", "Args", "Env", "Labels", "Mounts", "Healthcheck", "StopGracePeriod",
        "StopSignal", "User", "Dir", "Hostname", "Init", "ReadOnly",
    }  # fmt: skip
    assert set(payload["TaskTemplate"]) >= {
        "ContainerSpec", "Placement", "Networks", "RestartPolicy", "Resources",
    }  # fmt: skip
    assert set(payload) >= {
        "Name", "Labels", "TaskTemplate", "Mode", "UpdateConfig", "RollbackConfig", "EndpointSpec",
    }  # fmt: skip
    assert payload["Name"] == "shop_web"
    assert payload["Mode"] == {"Replicated": {"Replicas": 4}}
    # Labels go on the service, never on the containers (a change there restarts every task).
    assert payload["Labels"]["com.docker.stack.namespace"] == "shop"
    assert payload["Labels"]["io.converge.image"] == "registry.local:5000/shop/web:1.2"
    assert "com.docker.stack.namespace" not in container["Labels"]
    # Networks by name, the key as an alias; the external network by its real name.
    targets = {
        network["Target"]: network["Aliases"] for network in payload["TaskTemplate"]["Networks"]
    }
    assert targets["shop_backend"][0] == "web"
    assert "outside_net" in targets
    # Named volumes get the stack prefix and ownership labels; external ones keep their name.
    mounts = {mount["Target"]: mount for mount in container["Mounts"]}
    assert mounts["/var/data"]["Source"] == "shop_data"
    assert mounts["/var/data"]["VolumeOptions"]["Labels"]["com.docker.stack.namespace"] == "shop"
    assert mounts["/cache"]["Source"] == "cache"
    assert mounts["/tmp"]["TmpfsOptions"] == {"SizeBytes": 64 << 20, "Mode": 0o1777}
    assert container["Healthcheck"]["Test"] == ["CMD-SHELL", "curl -f http://localhost/"]
    assert payload["TaskTemplate"]["Resources"]["Limits"] == {
        "NanoCPUs": 1_500_000_000,
        "MemoryBytes": 512 << 20,
    }


def test_a_global_service_payload(rich: Spec) -> None:
    payload = service_engine_spec(rich, "agent")
    assert payload["Mode"] == {"Global": {}}
    assert payload["EndpointSpec"]["Mode"] == "dnsrr"
    assert payload["TaskTemplate"]["ContainerSpec"]["Healthcheck"] == {"Test": ["NONE"]}


def test_an_update_keeps_what_the_spec_does_not_manage(rich: Spec) -> None:
    base = service_engine_spec(rich, "bare")
    base["TaskTemplate"]["ContainerSpec"].update(
        {
            "StopGracePeriod": 30_000_000_000,
            "User": "nobody",
            "DNSConfig": {"Nameservers": ["1.1.1.1"]},
        }
    )
    base["TaskTemplate"]["ForceUpdate"] = 3
    base["TaskTemplate"]["LogDriver"] = {"Name": "json-file"}
    base["TaskTemplate"]["Placement"]["Platforms"] = [{"OS": "linux"}]
    base["UpdateConfig"] = {"Parallelism": 3, "Order": "start-first"}
    base["EndpointSpec"]["Mode"] = "dnsrr"
    before = copy.deepcopy(base)

    payload = service_engine_spec(rich, "bare", base=base)

    assert base == before  # the observed spec is not modified
    container = payload["TaskTemplate"]["ContainerSpec"]
    assert container["StopGracePeriod"] == 30_000_000_000
    assert container["User"] == "nobody"
    assert container["DNSConfig"] == {"Nameservers": ["1.1.1.1"]}
    assert payload["TaskTemplate"]["ForceUpdate"] == 3
    assert payload["TaskTemplate"]["LogDriver"] == {"Name": "json-file"}
    assert payload["TaskTemplate"]["Placement"]["Platforms"] == [{"OS": "linux"}]
    assert payload["UpdateConfig"] == {"Parallelism": 3, "Order": "start-first"}
    assert payload["EndpointSpec"]["Mode"] == "dnsrr"
    desired = desired_service_view(rich, "bare")
    assert compare_views(align(desired, read_back(payload)), desired) == []


def test_an_update_writes_what_the_spec_manages_over_the_base(rich: Spec) -> None:
    base = service_engine_spec(rich, "web")
    base["TaskTemplate"]["ContainerSpec"]["Env"] = ["A=old", "STALE=1"]
    base["TaskTemplate"]["ContainerSpec"]["StopGracePeriod"] = 1
    base["Mode"] = {"Replicated": {"Replicas": 1}}
    base["UpdateConfig"]["Parallelism"] = 9
    base["TaskTemplate"]["Networks"] = [{"Target": "old_network_id"}]
    base["TaskTemplate"]["ForceUpdate"] = 2

    payload = service_engine_spec(rich, "web", base=base)

    desired = desired_service_view(rich, "web")
    assert compare_views(align(desired, read_back(payload)), desired) == []
    assert payload["TaskTemplate"]["ForceUpdate"] == 2
    assert all(n["Target"] != "old_network_id" for n in payload["TaskTemplate"]["Networks"])


def test_a_policy_sub_field_left_unset_keeps_the_base_value() -> None:
    spec = load_spec_text(
        "version: 1\nstack: s\nservices:\n  web:\n    image: x\n"
        "    update_config: {parallelism: 2}\n    restart_policy: {max_attempts: 3}\n",
        environ={},
    ).spec
    base = service_engine_spec(spec, "web")
    base["UpdateConfig"]["Order"] = "start-first"
    base["TaskTemplate"]["RestartPolicy"]["Condition"] = "on-failure"
    payload = service_engine_spec(spec, "web", base=base)
    assert payload["UpdateConfig"]["Parallelism"] == 2
    assert payload["UpdateConfig"]["Order"] == "start-first"
    assert payload["TaskTemplate"]["RestartPolicy"]["Condition"] == "on-failure"
    assert payload["TaskTemplate"]["RestartPolicy"]["MaxAttempts"] == 3
    # Created from nothing, an unset sub-field takes the engine's default.
    created = service_engine_spec(spec, "web")
    assert created["UpdateConfig"]["Order"] == "stop-first"


def test_force_update_increments_the_counter(rich: Spec) -> None:
    base = service_engine_spec(rich, "bare")
    base["TaskTemplate"]["ForceUpdate"] = 4
    payload = service_engine_spec(rich, "bare", base=base, force_update=True)
    assert payload["TaskTemplate"]["ForceUpdate"] == 5
    assert service_engine_spec(rich, "bare", force_update=True)["TaskTemplate"]["ForceUpdate"] == 1


def test_network_create_body_reads_back_as_the_spec() -> None:
    spec = load_spec_text(
        "version: 1\nstack: s\nnetworks:\n"
        "  backend: {attachable: true, encrypted: true, internal: true,\n"
        "            driver_opts: {mtu: 1400}, labels: {a: b},\n"
        "            subnet: 10.30.0.0/24, gateway: 10.30.0.1}\n"
        "  plain: {}\n",
        environ={},
    ).spec
    for key in ("backend", "plain"):
        body = network_create_body(spec, key)
        assert body["Labels"]["com.docker.stack.namespace"] == "s"
        assert body["Scope"] == "swarm"
        # What the engine reports: the body plus its own vxlan option.
        reported = {
            **body,
            "Name": f"s_{key}",
            "Options": {
                **body["Options"],
                "com.docker.network.driver.overlay.vxlanid_list": "4098",
            },
        }
        desired = desired_network_view(spec.networks[key])
        assert compare_views(align(desired, observed_network_view(reported)), desired) == []
    assert network_create_body(spec, "backend")["IPAM"]["Config"] == [
        {"Subnet": "10.30.0.0/24", "Gateway": "10.30.0.1"}
    ]
