"""The normalisation rules of ``converge.normalize``, one test (or a few) per rule.

Each test builds the desired view from a small compose file and the observed view from the
ServiceSpec JSON the engine reports, aligns them, and asserts they compare equal, or differ in
exactly the field the test expects. The engine JSON is written the way the lab's Engine 20.10
returns it (see ``tests/fixtures/recorded/``): fields omitted when zero, ids where names were
sent.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from converge.diff import compare_views
from converge.engine_spec import service_engine_spec
from converge.loader import load_spec_text
from converge.normalize import (
    align,
    canonical_constraint,
    canonical_image,
    default_service_view,
    desired_network_view,
    desired_node_view,
    desired_service_view,
    observed_network_view,
    observed_node_view,
    observed_service_view,
    service_view,
)
from converge.spec import NodeSpec

STACK = "app"
BACKEND_ID = "yalsegug5gw94pv9iklqzyb1x"
DEFAULT_ID = "q1c57o8m4rj4em0vnnxtcwy5m"
NETWORK_NAMES = {BACKEND_ID: "app_backend", DEFAULT_ID: "app_default"}


def spec_of(services_yaml: str, extra: str = "") -> Any:
    text = f"x-converge:\n  stack: {STACK}\n{extra}\nservices:\n{services_yaml}"
    return load_spec_text(text, environ={}).spec


def minimal_engine_spec(**container: Any) -> dict[str, Any]:
    """What the engine reports for a bare service app_web (image only) on app_default."""
    return {
        "Name": "app_web",
        "Labels": {
            "com.docker.stack.namespace": STACK,
            "com.docker.stack.image": "converge-lab/app:v1",
        },
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "converge-lab/app:v1",
                "Labels": {"com.docker.stack.namespace": STACK},
                "Privileges": {"CredentialSpec": None, "SELinuxContext": None},
                "Isolation": "default",
                **container,
            },
            "Resources": {},
            "Placement": {},
            "Networks": [{"Target": DEFAULT_ID, "Aliases": ["web"]}],
            "ForceUpdate": 0,
            "Runtime": "container",
        },
        "Mode": {"Replicated": {"Replicas": 1}},
        "EndpointSpec": {"Mode": "vip"},
    }


def changed(
    service_yaml: str, engine: dict[str, Any], extra: str = "", key: str = "web"
) -> list[str]:
    """The fields that differ once both sides are normalised and aligned (as the diff does)."""
    spec = spec_of(service_yaml, extra)
    desired = desired_service_view(spec, key)
    observed = observed_service_view(engine, STACK, NETWORK_NAMES)
    ignore = spec.services[key].x_converge.ignore
    aligned = align(desired, observed, ignore=ignore, none_unmanaged=False)
    return [change.field for change in compare_views(aligned, desired)]


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


# --- one function for both sides ---------------------------------------------------------


def test_the_desired_view_is_the_view_of_what_stack_deploy_would_send() -> None:
    spec = spec_of(WEB + "    deploy: {replicas: 3}\n")
    assert desired_service_view(spec, "web") == service_view(
        service_engine_spec(spec, "web"), STACK, {}
    )


def test_a_bare_service_is_what_the_engine_reports_for_it() -> None:
    assert changed(WEB, minimal_engine_spec()) == []
    # The engine's defaults are what a service that sets nothing compares as.
    assert observed_service_view(minimal_engine_spec(), STACK, NETWORK_NAMES) | {
        "image": "",
        "networks": {},
    } == default_service_view(STACK) | {"image": "", "networks": {}}


# --- engine-filled defaults ------------------------------------------------------------------


def test_engine_defaults_equal_their_documented_values() -> None:
    spec = (
        WEB + "    ports: [{target: 80, published: 8080}]\n"
        "    stop_grace_period: 10s\n"
        "    read_only: false\n"
        "    isolation: default\n"
        "    deploy:\n"
        "      endpoint_mode: vip\n"
        "      update_config: {parallelism: 1, delay: 0s, failure_action: pause, monitor: 5s,"
        " max_failure_ratio: 0, order: stop-first}\n"
        "      rollback_config: {parallelism: 1, delay: 0s, failure_action: pause, monitor: 5s,"
        " max_failure_ratio: 0, order: stop-first}\n"
        "      restart_policy: {condition: any, delay: 5s, max_attempts: 0, window: 0s}\n"
    )
    # No UpdateConfig, RollbackConfig, RestartPolicy or StopGracePeriod; a port without its
    # protocol and publish mode.
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
    spec = WEB + "    deploy:\n      update_config: {parallelism: 0, monitor: 5s}\n"
    assert changed(spec, engine) == []
    assert changed(WEB + "    deploy:\n      update_config: {monitor: 5s}\n", engine) == [
        "deploy.update_config.parallelism"
    ]


def test_an_update_config_without_monitor_monitors_nothing() -> None:
    # As docker stack deploy sends it: an update_config given without monitor is Monitor 0,
    # not the engine's 5s default (which only applies when there is no update_config at all).
    engine = with_(minimal_engine_spec(), "UpdateConfig", {"Parallelism": 2})
    assert changed(WEB + "    deploy:\n      update_config: {parallelism: 2}\n", engine) == []


def test_empty_resources_and_placement_are_nothing() -> None:
    engine = minimal_engine_spec()
    engine["TaskTemplate"]["Resources"] = {"Limits": {}, "Reservations": {}}
    engine["TaskTemplate"]["Placement"] = {}
    spec = WEB + "    deploy:\n      placement: {constraints: []}\n"
    assert changed(spec, engine) == []
    observed = observed_service_view(engine, STACK, {})
    assert observed["deploy"]["resources"] == {
        "limits": {"cpus": None, "memory": None, "pids": None},
        "reservations": {"cpus": None, "memory": None, "generic_resources": []},
    }


def test_force_update_counter_and_engine_only_fields_are_not_compared() -> None:
    engine = minimal_engine_spec(DNSConfig={}, Isolation="default")
    engine["TaskTemplate"]["ForceUpdate"] = 7
    assert changed(WEB, engine) == []


# --- the file is the full desired state -------------------------------------------------------


def test_replicas_unset_means_one() -> None:
    assert changed(WEB, minimal_engine_spec()) == []
    engine = with_(minimal_engine_spec(), "Mode.Replicated.Replicas", 2)
    assert changed(WEB, engine) == ["deploy.replicas"]


def test_a_global_service_has_no_replica_count() -> None:
    engine = with_(minimal_engine_spec(), "Mode", {"Global": {}})
    assert changed(WEB + "    deploy: {mode: global}\n", engine) == []
    assert changed(WEB, engine) == ["deploy.mode", "deploy.replicas"]


def test_jobs() -> None:
    engine = with_(
        minimal_engine_spec(),
        "Mode",
        {"ReplicatedJob": {"MaxConcurrent": 3, "TotalCompletions": 3}},
    )
    assert changed(WEB + "    deploy: {mode: replicated-job, replicas: 3}\n", engine) == []
    assert changed(WEB + "    deploy: {mode: replicated-job}\n", engine) == ["deploy.replicas"]
    engine = with_(minimal_engine_spec(), "Mode", {"GlobalJob": {}})
    assert changed(WEB + "    deploy: {mode: global-job}\n", engine) == []


def test_fields_the_file_leaves_unset_mean_the_engine_default() -> None:
    # A hand change to a field the file does not mention is drift: apply restores it.
    engine = minimal_engine_spec(
        User="nobody", Dir="/srv", Hostname="h", StopSignal="SIGINT", StopGracePeriod=1, Init=True
    )
    engine["UpdateConfig"] = {"Parallelism": 4, "Order": "start-first"}
    engine["TaskTemplate"]["RestartPolicy"] = {"Condition": "none"}
    engine["TaskTemplate"]["Resources"] = {"Reservations": {"NanoCPUs": 10**8}}
    engine["TaskTemplate"]["Placement"] = {"MaxReplicas": 2}
    engine["EndpointSpec"]["Mode"] = "dnsrr"
    assert changed(WEB, engine) == [
        "deploy.endpoint_mode",
        "deploy.placement.max_replicas_per_node",
        "deploy.resources.reservations.cpus",
        "deploy.restart_policy.condition",
        "deploy.update_config.monitor",
        "deploy.update_config.order",
        "deploy.update_config.parallelism",
        "hostname",
        "init",
        "stop_grace_period",
        "stop_signal",
        "user",
        "working_dir",
    ]


@pytest.mark.parametrize(
    ("container", "field"),
    [
        ({"Healthcheck": {"Test": ["CMD", "true"]}}, "healthcheck"),
        ({"ReadOnly": True}, "read_only"),
        ({"TTY": True}, "tty"),
        ({"OpenStdin": True}, "stdin_open"),
        ({"DNSConfig": {"Nameservers": ["1.1.1.1"]}}, "dns"),
        ({"DNSConfig": {"Search": ["x"]}}, "dns_search"),
        ({"DNSConfig": {"Options": ["ndots:1"]}}, "dns_opt"),
        ({"CapabilityAdd": ["CAP_NET_ADMIN"]}, "cap_add"),
        ({"CapabilityDrop": ["CAP_CHOWN"]}, "cap_drop"),
        ({"Ulimits": [{"Name": "nofile", "Soft": 1, "Hard": 2}]}, "ulimits.nofile"),
        ({"Sysctls": {"net.core.somaxconn": "1"}}, "sysctls.net.core.somaxconn"),
        ({"Hosts": ["10.0.0.1 db"]}, "extra_hosts"),
        ({"Isolation": "process"}, "isolation"),
        ({"Env": ["A=1"]}, "environment.A"),
        ({"Labels": {"a": "b"}}, "labels.a"),
        ({"Args": ["x"]}, "command"),
        ({"Command": ["x"]}, "entrypoint"),
    ],
)
def test_a_hand_change_to_any_container_field_is_drift(
    container: dict[str, Any], field: str
) -> None:
    assert changed(WEB, minimal_engine_spec(**container)) == [field]


def test_a_hand_added_log_driver_or_secret_is_drift() -> None:
    engine = with_(minimal_engine_spec(), "TaskTemplate.LogDriver", {"Name": "syslog"})
    assert changed(WEB, engine) == ["logging"]
    secret = {
        "SecretName": "app_key",
        "SecretID": "x",
        "File": {"Name": "key", "UID": "0", "GID": "0", "Mode": 292},
    }
    engine = minimal_engine_spec(Secrets=[secret])
    assert changed(WEB, engine) == ["secrets.key"]


def test_fields_under_x_converge_ignore_are_left_to_their_owner() -> None:
    engine = with_(minimal_engine_spec(Image="converge-lab/app:v9"), "Mode.Replicated.Replicas", 7)
    owned = WEB + "    x-converge:\n      ignore: [image, deploy.replicas]\n"
    assert changed(owned, engine) == []
    assert changed(WEB, engine) == ["deploy.replicas", "image"]
    nested = WEB + "    x-converge:\n      ignore: [deploy.resources.limits]\n"
    engine = with_(minimal_engine_spec(), "TaskTemplate.Resources", {"Limits": {"NanoCPUs": 10**9}})
    assert changed(nested, engine) == []


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


def _on_backend(aliases: list[str]) -> dict[str, Any]:
    return with_(
        minimal_engine_spec(), "TaskTemplate.Networks", [{"Target": BACKEND_ID, "Aliases": aliases}]
    )


def test_network_ids_become_names_and_the_key_alias_is_hidden() -> None:
    engine = _on_backend(["frontend", "web"])
    spec = WEB + "    networks:\n      backend: {aliases: [frontend]}\n"
    assert changed(spec, engine, NETWORKS) == []
    assert changed(WEB + "    networks: [backend]\n", engine, NETWORKS) == [
        "networks.backend.aliases"
    ]


def test_a_service_that_names_no_network_is_on_the_stack_default() -> None:
    engine = _on_backend(["web"])
    assert changed(WEB, engine, NETWORKS) == ["networks"]


def test_networks_in_the_deprecated_service_level_field_are_read() -> None:
    engine = minimal_engine_spec()
    del engine["TaskTemplate"]["Networks"]
    engine["Networks"] = [{"Target": BACKEND_ID, "Aliases": ["web"]}]
    assert changed(WEB + "    networks: [backend]\n", engine, NETWORKS) == []


def test_an_alias_equal_to_the_key_does_not_show_as_a_change() -> None:
    engine = _on_backend(["web", "web"])
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
    assert changed(WEB + "    volumes: [data:/data]\n", engine, "volumes:\n  data: {}\n") == []
    # A changed volume driver changes the service's mount, as stack deploy would send it.
    assert changed(
        WEB + "    volumes: [data:/data]\n", engine, "volumes:\n  data: {driver: nfs}\n"
    ) == ["volumes./data.driver", "volumes./data.driver_opts"]


def test_ownership_labels_are_hidden() -> None:
    engine = minimal_engine_spec(Labels={"com.docker.stack.namespace": STACK, "role": "x"})
    engine["Labels"].update({"io.converge.managed-by": "converge", "tier": "a"})
    spec = WEB + "    labels: {role: x}\n    deploy:\n      labels: {tier: a}\n"
    assert changed(spec, engine) == []
    assert changed(WEB, engine) == ["deploy.labels.tier", "labels.role"]


# --- order-insensitive lists ----------------------------------------------------------------


def test_env_ports_mounts_constraints_and_networks_ignore_order() -> None:
    engine = minimal_engine_spec(
        Env=["B=2", "A=1"],
        Mounts=[
            {"Type": "tmpfs", "Target": "/tmp"},
            {"Type": "bind", "Source": "/srv", "Target": "/srv", "ReadOnly": True},
        ],
        CapabilityAdd=["CAP_SYS_TIME", "CAP_NET_ADMIN"],
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
        WEB + "    environment: {A: 1, B: 2}\n"
        "    volumes: [/srv:/srv:ro, {type: tmpfs, target: /tmp}]\n"
        "    ports: ['8080:80', '5353:53/udp']\n"
        "    networks: [backend, front]\n"
        "    cap_add: [net_admin, sys_time]\n"
        "    deploy:\n"
        "      placement: {constraints: [node.hostname != dbhost, node.role == worker]}\n"
    )
    names = {**NETWORK_NAMES, "frontid": "app_front"}
    desired = desired_service_view(spec_of(spec, "networks:\n  backend: {}\n  front: {}\n"), "web")
    observed = observed_service_view(engine, STACK, names)
    assert compare_views(align(desired, observed, none_unmanaged=False), desired) == []


# --- constraint spelling ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    ["node.labels.type==mvc", "node.labels.type == mvc", " node.labels.type ==  mvc "],
)
def test_constraint_spelling(spelling: str) -> None:
    assert canonical_constraint(spelling) == "node.labels.type == mvc"
    engine = with_(minimal_engine_spec(), "TaskTemplate.Placement", {"Constraints": [spelling]})
    spec = WEB + "    deploy:\n      placement: {constraints: ['node.labels.type==mvc']}\n"
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
        "    volumes: [{type: tmpfs, target: /t, tmpfs: {size: 64M}}]\n"
        "    deploy:\n"
        "      resources: {limits: {cpus: 0.5, memory: 1G}, reservations: {memory: 256M}}\n"
    )
    assert changed(spec, engine) == []
    assert changed(spec.replace("cpus: 0.5", "cpus: 0.25"), engine) == [
        "deploy.resources.limits.cpus"
    ]


# --- nodes and networks -----------------------------------------------------------------------


def test_node_view_manages_only_what_the_spec_sets() -> None:
    node = {"Spec": {"Role": "worker", "Availability": "active", "Labels": {"type": "mvc"}}}
    spec = load_spec_text(
        "x-converge:\n  stack: app\n  cluster:\n    nodes:\n      manager: {role: manager}\n"
        "      w1: {role: worker}\n",
        environ={},
    ).spec
    # A label the cluster spec does not name is left alone; availability unset means active.
    desired = desired_node_view(spec.nodes["w1"], {"type": "mvc"})
    assert compare_views(align(desired, observed_node_view(node)), desired) == []


@pytest.mark.parametrize(
    ("prune", "labels", "managed"),
    [
        (False, {"type": "mvc", "zone": "a", "other": "x"}, ["type", "zone"]),
        (True, {"type": "mvc", "other": "x"}, ["type"]),
    ],
)
def test_a_label_the_cluster_spec_stopped_naming_goes_only_with_prune(
    prune: bool, labels: dict[str, str], managed: list[str]
) -> None:
    # zone was managed (recorded on the node) and is no longer named; other was never managed.
    node = NodeSpec(labels={"type": "mvc"})
    current = {"type": "mvc", "zone": "a", "other": "x"}
    desired = desired_node_view(node, current, frozenset({"type", "zone"}), prune)
    assert desired == {
        "role": None,
        "availability": "active",
        "labels": dict(sorted(labels.items())),
        "managed_labels": managed,
    }


def test_the_record_of_managed_labels_is_not_a_label() -> None:
    node = {"Spec": {"Labels": {"type": "mvc", "io.converge.cluster.labels": "type"}}}
    view = observed_node_view(node)
    assert view["labels"] == {"type": "mvc"}
    assert view["managed_labels"] == ["type"]


def _backend_network(**fields: Any) -> dict[str, Any]:
    return {
        "Name": "app_backend",
        "Driver": "overlay",
        "Attachable": True,
        "Labels": {"com.docker.stack.namespace": STACK, "io.converge.managed-by": "converge"},
        "Options": {"com.docker.network.driver.overlay.vxlanid_list": "4097", "encrypted": ""},
        "IPAM": {"Driver": "default", "Config": [{"Subnet": "10.9.0.0/24", "Gateway": "10.9.0.1"}]},
        **fields,
    }


def _network_changes(network_yaml: str, network: dict[str, Any]) -> list[str]:
    spec = load_spec_text(
        f"x-converge:\n  stack: app\nnetworks:\n  backend: {network_yaml}\n", environ={}
    ).spec
    desired = desired_network_view(spec.networks["backend"])
    return [
        change.field
        for change in compare_views(align(desired, observed_network_view(network)), desired)
    ]


def test_network_view_hides_engine_options_and_ownership_labels() -> None:
    network = _backend_network()
    assert _network_changes("{attachable: true, driver_opts: {encrypted: ''}}", network) == []


def test_a_network_address_pool_is_compared_only_when_the_file_gives_one() -> None:
    network = _backend_network()
    options = "attachable: true, driver_opts: {encrypted: ''}"
    # The engine picked the gateway: not a difference; a subnet the file gives is.
    assert (
        _network_changes(f"{{{options}, ipam: {{config: [{{subnet: 10.9.0.0/24}}]}}}}", network)
        == []
    )
    assert _network_changes(
        f"{{{options}, ipam: {{config: [{{subnet: 10.8.0.0/24}}]}}}}", network
    ) == ["ipam.config"]


def test_an_external_network_is_known_by_its_real_name() -> None:
    engine = minimal_engine_spec()
    engine["TaskTemplate"]["Networks"] = [{"Target": "extid", "Aliases": ["web"]}]
    extra = "networks:\n  shared: {external: true, name: outside_net}\n"
    spec = spec_of(WEB + "    networks: [shared]\n", extra)
    desired = desired_service_view(spec, "web")
    observed = observed_service_view(engine, STACK, {"extid": "outside_net"})
    assert compare_views(align(desired, observed, none_unmanaged=False), desired) == []
