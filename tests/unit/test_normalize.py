"""The normalisation rules of ``converge.normalize``, one test (or a few) per rule.

Each test builds the desired view from a small spec and the observed view from the ServiceSpec
JSON the engine reports, aligns them, and asserts they compare equal, or differ in exactly the
field the test expects. The engine JSON is written the way the lab's Engine 20.10 returns it
(see ``tests/fixtures/recorded/``): fields omitted when zero, ids where names were sent.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from converge.diff import compare_views
from converge.loader import load_spec_text
from converge.normalize import (
    align,
    canonical_constraint,
    canonical_image,
    desired_network_view,
    desired_node_view,
    desired_service_view,
    observed_network_view,
    observed_node_view,
    observed_service_view,
)

STACK = "app"
BACKEND_ID = "yalsegug5gw94pv9iklqzyb1x"
NETWORK_NAMES = {BACKEND_ID: "app_backend"}


def spec_of(services_yaml: str, extra: str = "") -> Any:
    text = f"version: 1\nstack: {STACK}\n{extra}\nservices:\n{services_yaml}"
    return load_spec_text(text, environ={}).spec


def minimal_engine_spec(**container: Any) -> dict[str, Any]:
    """What the engine reports for a bare service named app_web (image only, 1 replica)."""
    return {
        "Name": "app_web",
        "Labels": {"com.docker.stack.namespace": STACK, "io.converge.managed-by": "converge"},
        "TaskTemplate": {
            "ContainerSpec": {"Image": "converge-lab/app:v1", "Isolation": "default", **container},
            "ForceUpdate": 0,
            "Runtime": "container",
        },
        "Mode": {"Replicated": {"Replicas": 1}},
        "EndpointSpec": {"Mode": "vip"},
    }


def changed(
    service_yaml: str, engine: dict[str, Any], extra: str = "", key: str = "web"
) -> list[str]:
    """The fields that differ once both sides are normalised and aligned."""
    desired = desired_service_view(spec_of(service_yaml, extra), key)
    observed = observed_service_view(engine, STACK, NETWORK_NAMES)
    return [change.field for change in compare_views(align(desired, observed), desired)]


WEB = "  web:\n    image: converge-lab/app:v1\n"


def with_(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``base`` with ``value`` set at the dotted ``path``."""
    result = copy.deepcopy(base)
    target = result
    *parents, last = path.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[last] = value
    return result


# --- engine-filled defaults ------------------------------------------------------------------


def test_engine_defaults_equal_their_documented_values() -> None:
    spec = (
        WEB + "    endpoint_mode: vip\n"
        "    ports: [{target: 80, published: 8080}]\n"
        "    update_config: {parallelism: 1, delay: 0s, failure_action: pause, monitor: 5s,"
        " max_failure_ratio: 0, order: stop-first}\n"
        "    rollback_config: {parallelism: 1, delay: 0s, failure_action: pause, monitor: 5s,"
        " max_failure_ratio: 0, order: stop-first}\n"
        "    restart_policy: {condition: any, delay: 5s, max_attempts: 0, window: 0s}\n"
        "    stop_grace_period: 10s\n"
        "    init: false\n"
        "    read_only: false\n"
    )
    # No UpdateConfig, RollbackConfig, RestartPolicy, Resources or Placement; a port without
    # its protocol and publish mode.
    engine = with_(
        minimal_engine_spec(), "EndpointSpec.Ports", [{"TargetPort": 80, "PublishedPort": 8080}]
    )
    assert changed(spec, engine) == []


def test_a_present_policy_omits_its_zero_values() -> None:
    # Go's omitempty: Delay 0, MaxFailureRatio 0 and Parallelism 0 are left out, not defaulted.
    engine = with_(
        minimal_engine_spec(),
        "UpdateConfig",
        {"FailureAction": "pause", "Monitor": 5_000_000_000, "Order": "stop-first"},
    )
    spec = WEB + "    update_config: {parallelism: 0, delay: 0s, max_failure_ratio: 0}\n"
    assert changed(spec, engine) == []
    assert changed(WEB + "    update_config: {parallelism: 1}\n", engine) == [
        "update_config.parallelism"
    ]


def test_empty_resources_and_placement_are_nothing() -> None:
    engine = minimal_engine_spec()
    engine["TaskTemplate"]["Resources"] = {"Limits": {}, "Reservations": {}}
    engine["TaskTemplate"]["Placement"] = {}
    spec = WEB + "    placement: {constraints: []}\n"
    assert changed(spec, engine) == []
    desired = desired_service_view(spec_of(WEB), "web")
    observed = observed_service_view(engine, STACK, {})
    assert observed["resources"] == {
        "limits": {"cpus": None, "memory": None},
        "reservations": {"cpus": None, "memory": None},
    }
    assert observed["constraints"] == desired["constraints"] == []


def test_force_update_counter_and_engine_only_fields_are_not_compared() -> None:
    engine = minimal_engine_spec(DNSConfig={}, Isolation="default")
    engine["TaskTemplate"]["ForceUpdate"] = 7
    assert changed(WEB, engine) == []


# --- replicas and unmanaged fields -----------------------------------------------------------


def test_replicas_unset_means_one() -> None:
    assert changed(WEB, minimal_engine_spec()) == []
    engine = with_(minimal_engine_spec(), "Mode.Replicated.Replicas", 2)
    assert changed(WEB, engine) == ["replicas"]


def test_a_global_service_has_no_replica_count() -> None:
    engine = with_(minimal_engine_spec(), "Mode", {"Global": {}})
    assert changed(WEB + "    mode: global\n", engine) == []
    assert changed(WEB, engine) == ["mode", "replicas"]


def test_fields_the_spec_leaves_unset_are_not_managed() -> None:
    engine = minimal_engine_spec(
        User="nobody", Dir="/srv", Hostname="h", StopSignal="SIGINT", StopGracePeriod=1, Init=True
    )
    engine["UpdateConfig"] = {"Parallelism": 4, "Order": "start-first"}
    engine["TaskTemplate"]["RestartPolicy"] = {"Condition": "none"}
    engine["TaskTemplate"]["Resources"] = {"Limits": {"MemoryBytes": 1 << 20}}
    engine["EndpointSpec"]["Mode"] = "dnsrr"
    assert changed(WEB, engine) == []


def test_struct_sub_fields_left_unset_are_not_managed() -> None:
    engine = with_(
        minimal_engine_spec(),
        "UpdateConfig",
        {"Parallelism": 2, "Delay": 10**9, "Order": "start-first"},
    )
    assert changed(WEB + "    update_config: {parallelism: 2}\n", engine) == []
    assert changed(WEB + "    update_config: {order: stop-first}\n", engine) == [
        "update_config.order"
    ]


# --- images ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec_image", "engine_image"),
    [
        ("mysql", "mysql:latest"),
        ("mysql:latest", "mysql"),
        ("mysql", "docker.io/library/mysql:latest"),
        ("myorg/app", "docker.io/myorg/app:latest"),
        ("mysql:8.0", "mysql:8.0@sha256:" + "a" * 64),
        ("registry.local:5000/app", "registry.local:5000/app:latest"),
    ],
)
def test_image_forms_that_name_the_same_image(spec_image: str, engine_image: str) -> None:
    spec = f"  web:\n    image: {spec_image}\n"
    assert changed(spec, minimal_engine_spec(Image=engine_image)) == []


def test_a_digest_the_spec_pins_is_managed() -> None:
    pinned = "mysql:8.0@sha256:" + "a" * 64
    other = "mysql:8.0@sha256:" + "b" * 64
    assert changed(f"  web:\n    image: {pinned}\n", minimal_engine_spec(Image=pinned)) == []
    assert changed(f"  web:\n    image: {pinned}\n", minimal_engine_spec(Image=other)) == ["image"]
    assert changed(f"  web:\n    image: {pinned}\n", minimal_engine_spec(Image="mysql:8.0")) == [
        "image"
    ]


def test_a_different_tag_is_a_change_even_when_pinned() -> None:
    engine = minimal_engine_spec(Image="mysql:8.0@sha256:" + "a" * 64)
    assert changed("  web:\n    image: mysql:8.1\n", engine) == ["image"]


def test_canonical_image() -> None:
    assert canonical_image("mysql") == "mysql:latest"
    assert canonical_image("docker.io/library/mysql:8") == "mysql:8"
    assert canonical_image("mysql:8@sha256:abc", keep_digest=False) == "mysql:8"
    assert canonical_image("mysql:8@sha256:abc") == "mysql:8@sha256:abc"


# --- networks ---------------------------------------------------------------------------------

NETWORKS = "networks:\n  backend: {}\n"


def test_network_ids_become_names_and_the_key_alias_is_hidden() -> None:
    engine = minimal_engine_spec()
    engine["TaskTemplate"]["Networks"] = [{"Target": BACKEND_ID, "Aliases": ["web", "frontend"]}]
    spec = WEB + "    networks:\n      backend: {aliases: [frontend]}\n"
    assert changed(spec, engine, NETWORKS) == []
    assert changed(WEB + "    networks: [backend]\n", engine, NETWORKS) == [
        "networks.backend.aliases"
    ]


def test_networks_in_the_deprecated_service_level_field_are_read() -> None:
    engine = minimal_engine_spec()
    engine["Networks"] = [{"Target": BACKEND_ID, "Aliases": ["web"]}]
    assert changed(WEB + "    networks: [backend]\n", engine, NETWORKS) == []


def test_an_alias_equal_to_the_key_does_not_show_as_a_change() -> None:
    # converge adds the key as an alias itself; a spec that also lists it must still converge.
    engine = minimal_engine_spec()
    engine["TaskTemplate"]["Networks"] = [{"Target": BACKEND_ID, "Aliases": ["web", "web"]}]
    spec = WEB + "    networks:\n      backend: {aliases: [web]}\n"
    assert changed(spec, engine, NETWORKS) == []


# --- stack prefixes and ownership labels ----------------------------------------------------


def test_the_stack_prefix_of_volume_names_is_removed() -> None:
    engine = minimal_engine_spec(
        Mounts=[
            {
                "Type": "volume",
                "Source": "app_data",
                "Target": "/data",
                "VolumeOptions": {"Labels": {"com.docker.stack.namespace": STACK}},
            }
        ]
    )
    assert changed(WEB + "    mounts: [data:/data]\n", engine, "volumes:\n  data: {}\n") == []


def test_ownership_labels_are_hidden() -> None:
    engine = minimal_engine_spec(Labels={"com.docker.stack.namespace": STACK, "role": "x"})
    engine["Labels"].update(
        {"com.docker.stack.image": "converge-lab/app:v1", "io.converge.image": "x", "tier": "a"}
    )
    spec = WEB + "    labels: {tier: a}\n    container_labels: {role: x}\n"
    assert changed(spec, engine) == []
    assert changed(WEB, engine) == ["container_labels.role", "labels.tier"]


# --- order-insensitive lists ----------------------------------------------------------------


def test_env_ports_mounts_constraints_and_networks_ignore_order() -> None:
    engine = minimal_engine_spec(
        Env=["B=2", "A=1"],
        Mounts=[
            {"Type": "tmpfs", "Target": "/tmp"},
            {"Type": "bind", "Source": "/srv", "Target": "/srv", "ReadOnly": True},
        ],
    )
    engine["TaskTemplate"]["Placement"] = {
        "Constraints": ["node.role == worker", "node.hostname != dbhost"]
    }
    engine["TaskTemplate"]["Networks"] = [
        {"Target": "frontid", "Aliases": ["web"]},
        {"Target": BACKEND_ID, "Aliases": ["web"]},
    ]
    engine["EndpointSpec"]["Ports"] = [
        {"Protocol": "udp", "TargetPort": 53, "PublishedPort": 5353, "PublishMode": "ingress"},
        {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress"},
    ]
    spec = (
        WEB + "    env: {A: 1, B: 2}\n"
        "    mounts: [/srv:/srv:ro, {type: tmpfs, target: /tmp}]\n"
        "    placement: {constraints: [node.hostname != dbhost, node.role == worker]}\n"
        "    ports: ['8080:80', '5353:53/udp']\n"
        "    networks: [backend, front]\n"
    )
    names = {**NETWORK_NAMES, "frontid": "app_front"}
    desired = desired_service_view(spec_of(spec, "networks:\n  backend: {}\n  front: {}\n"), "web")
    observed = observed_service_view(engine, STACK, names)
    assert compare_views(align(desired, observed), desired) == []


# --- constraint spelling ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    ["node.labels.type==mvc", "node.labels.type == mvc", " node.labels.type ==  mvc "],
)
def test_constraint_spelling(spelling: str) -> None:
    assert canonical_constraint(spelling) == "node.labels.type == mvc"
    engine = with_(minimal_engine_spec(), "TaskTemplate.Placement", {"Constraints": [spelling]})
    spec = WEB + "    placement: {constraints: ['node.labels.type==mvc']}\n"
    assert changed(spec, engine) == []


# --- units -------------------------------------------------------------------------------------


def test_durations_sizes_and_cpus_compare_in_engine_units() -> None:
    engine = minimal_engine_spec(
        StopGracePeriod=90_000_000_000,
        Healthcheck={"Test": ["CMD", "true"], "Interval": 1_500_000_000},
        Mounts=[{"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 64 << 20}}],
    )
    engine["TaskTemplate"]["Resources"] = {
        "Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 1 << 30},
        "Reservations": {"MemoryBytes": 256 << 20},
    }
    spec = (
        WEB + "    stop_grace_period: 1m30s\n"
        "    healthcheck: {test: [CMD, 'true'], interval: 1500ms}\n"
        "    mounts: [{type: tmpfs, target: /t, tmpfs: {size: 64M}}]\n"
        "    resources: {limits: {cpus: 0.5, memory: 1G}, reservations: {memory: 256M}}\n"
    )
    assert changed(spec, engine) == []
    assert changed(spec.replace("cpus: 0.5", "cpus: 0.25"), engine) == ["resources.limits.cpus"]


# --- nodes and networks -----------------------------------------------------------------------


def test_node_view_manages_only_what_the_spec_sets() -> None:
    node = {"Spec": {"Role": "worker", "Availability": "active", "Labels": {"type": "mvc"}}}
    spec = load_spec_text(
        "version: 1\nstack: app\nnodes:\n  manager: {role: manager}\n  w1: {role: worker}\n",
        environ={},
    ).spec
    desired = desired_node_view(spec.nodes["w1"])
    assert compare_views(align(desired, observed_node_view(node)), desired) == []


def test_network_view_hides_engine_options_and_ownership_labels() -> None:
    network = {
        "Name": "app_backend",
        "Driver": "overlay",
        "Attachable": True,
        "Labels": {"com.docker.stack.namespace": STACK, "io.converge.managed-by": "converge"},
        "Options": {"com.docker.network.driver.overlay.vxlanid_list": "4097", "encrypted": ""},
        "IPAM": {"Driver": "default", "Config": [{"Subnet": "10.9.0.0/24", "Gateway": "10.9.0.1"}]},
    }
    spec = load_spec_text(
        "version: 1\nstack: app\nnetworks:\n  backend: {attachable: true, encrypted: true}\n",
        environ={},
    ).spec
    desired = desired_network_view(spec.networks["backend"])
    assert compare_views(align(desired, observed_network_view(network)), desired) == []


def test_an_external_network_is_known_by_its_real_name() -> None:
    engine = minimal_engine_spec()
    engine["TaskTemplate"]["Networks"] = [{"Target": "extid", "Aliases": ["web"]}]
    extra = "networks:\n  shared: {external: true, name: outside_net}\n"
    desired = desired_service_view(spec_of(WEB + "    networks: [shared]\n", extra), "web")
    observed = observed_service_view(engine, STACK, {"extid": "outside_net"})
    assert compare_views(align(desired, observed), desired) == []
