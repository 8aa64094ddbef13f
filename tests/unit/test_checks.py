"""Checks beyond types: constraint evaluation, references, ports, placement, load balancer."""

from __future__ import annotations

from typing import Any

import pytest

from converge.checks import NodeFacts, check_spec, evaluate_constraint, node_facts_from_spec
from converge.spec import NodeSpec, Spec

WORKER = NodeFacts(
    hostname="Worker1",
    role="worker",
    labels={"type": "web", "zone": "east"},
    node_id="abc123",
    engine_labels={"region": "eu"},
    os="linux",
    arch="x86_64",
)
UNKNOWN = NodeFacts(hostname="mystery", role=None, labels=None)


@pytest.mark.parametrize(
    ("constraint", "node", "result"),
    [
        ("node.hostname == worker1", WORKER, True),  # hostnames compare case-insensitively
        ("node.hostname != WORKER1", WORKER, False),
        ("node.role == worker", WORKER, True),
        ("node.role == manager", WORKER, False),
        ("node.role != manager", WORKER, True),
        ("node.id == abc123", WORKER, True),
        ("node.labels.type == web", WORKER, True),
        ("node.labels.type == Web", WORKER, False),  # label values are case-sensitive
        ("node.labels.type != db", WORKER, True),
        ("node.labels.missing == x", WORKER, False),  # an absent label fails ==
        ("node.labels.missing != x", WORKER, True),  # ... and satisfies !=
        ("engine.labels.region == eu", WORKER, True),
        ("node.platform.os == linux", WORKER, True),
        ("node.platform.arch != x86_64", WORKER, False),
        ("node.role == worker", UNKNOWN, None),
        ("node.labels.type == web", UNKNOWN, None),
        ("node.id == abc", UNKNOWN, None),
        ("engine.labels.region == eu", UNKNOWN, None),
        ("node.platform.os == linux", UNKNOWN, None),
        ("node.hostname == mystery", UNKNOWN, True),
    ],
)
def test_evaluate_constraint(constraint: str, node: NodeFacts, result: bool | None) -> None:
    assert evaluate_constraint(constraint, node) is result


def test_evaluate_constraint_refuses_bad_syntax() -> None:
    with pytest.raises(ValueError, match="must be KEY == VALUE"):
        evaluate_constraint("node.labels.x = y", WORKER)


def test_node_facts_from_spec() -> None:
    node = NodeSpec(role="manager", labels={"a": "b"}, availability="drain")
    assert node_facts_from_spec("m1", node) == NodeFacts("m1", "manager", {"a": "b"})


def _spec(**sections: Any) -> Spec:
    extension = {"stack": "shop"}
    for key in ("nodes", "loadbalancer"):
        if key in sections:
            extension[key] = sections.pop(key)
    return Spec.model_validate({"x-converge": extension, **sections})


NODES = {
    "manager": {"role": "manager"},
    "w1": {"role": "worker", "labels": {"type": "web"}},
    "w2": {"role": "worker", "labels": {"type": "web"}, "availability": "drain"},
    "w3": {"role": "worker", "labels": {"type": "db"}, "availability": "pause"},
}


def test_a_consistent_spec_has_no_findings() -> None:
    spec = _spec(
        nodes=NODES,
        networks={"net": {"attachable": True}},
        volumes={"data": {}},
        services={
            "web": {
                "image": "a",
                "ports": ["8080:80"],
                "networks": ["net"],
                "volumes": ["data:/d", "/host:/h", "/anonymous"],
                "deploy": {
                    "replicas": 2,
                    "placement": {"constraints": ["node.labels.type == web"]},
                },
            },
            "zero": {
                "image": "a",
                "deploy": {"replicas": 0, "placement": {"constraints": ["node.id == x"]}},
            },
        },
        loadbalancer={
            "image": "haproxy",
            "node": "manager",
            "frontends": {"http": {"port": 80, "backend": "web"}},
            "backends": {"web": {"service": "web", "port": 80}},
        },
    )
    assert check_spec(spec) == []


def test_placement_is_not_checked_without_declared_nodes() -> None:
    deploy = {"placement": {"constraints": ["node.id == x"]}}
    spec = _spec(services={"web": {"image": "a", "deploy": deploy}})
    assert check_spec(spec) == []


def test_unknown_facts_do_not_fail_placement() -> None:
    spec = _spec(
        nodes={"manager": {}},
        services={
            "web": {"image": "a", "deploy": {"placement": {"constraints": ["node.labels.x == y"]}}}
        },
    )
    assert check_spec(spec) == []


def test_placement_explains_the_closest_nodes() -> None:
    spec = _spec(
        nodes=NODES,
        services={
            "db": {
                "image": "a",
                "deploy": {
                    "placement": {"constraints": ["node.labels.type == db", "node.role == worker"]}
                },
            }
        },
    )
    assert check_spec(spec) == [
        (
            ("services", "db", "deploy", "placement", "constraints"),
            # The manager's labels are not managed (unknown), so only its role fails.
            "no active declared node satisfies every constraint; closest: manager fails "
            "node.role == worker; w1 fails node.labels.type == db (would match but is drained "
            "or paused: w3)",
        )
    ]


def test_no_active_node_at_all() -> None:
    spec = _spec(
        nodes={"manager": {"role": "manager", "availability": "drain"}},
        services={"web": {"image": "a"}},
    )
    assert check_spec(spec) == [
        (
            ("services", "web", "deploy", "placement", "constraints"),
            "no declared node is active, so no task can run",
        )
    ]


def test_max_replicas_per_node_counts_matching_nodes() -> None:
    def spec(replicas: int) -> Spec:
        placement = {"constraints": ["node.role == worker"], "max_replicas_per_node": 2}
        service = {"image": "a", "deploy": {"replicas": replicas, "placement": placement}}
        return _spec(nodes=NODES, services={"web": service})

    assert check_spec(spec(2)) == []
    assert check_spec(spec(3)) == [
        (
            ("services", "web", "deploy", "replicas"),
            "3 replicas cannot fit: max_replicas_per_node is 2 and 1 node(s) can run the "
            "service (w1)",
        )
    ]


def test_references_and_ports() -> None:
    spec = _spec(
        networks={"backend": {}},
        volumes={"data": {}},
        services={
            "a": {"image": "a", "ports": ["80:80", "53:53/udp"], "networks": ["backnd"]},
            "b": {"image": "b", "ports": ["53:53", "80:8080"], "volumes": ["dta:/x"]},
        },
    )
    assert check_spec(spec) == [
        (
            ("services", "a", "networks", "backnd"),
            "network 'backnd' is not declared under 'networks'; did you mean 'backend'?",
        ),
        (
            ("services", "b", "volumes", 0),
            "volume 'dta' is not declared under 'volumes'; did you mean 'data'?",
        ),
        (("services", "b", "ports", 1), "port 80/tcp is already published by service 'a'"),
    ]


def test_external_networks_count_as_declared() -> None:
    spec = _spec(networks={"proxy": {"external": True}}, services={"w": {"image": "a"}})
    assert check_spec(spec) == []


def _balancer(**backend: Any) -> dict[str, Any]:
    return {
        "image": "haproxy",
        "node": "manager",
        "frontends": {"http": {"port": 80, "backend": "web"}},
        "backends": {"web": {"service": "web", **backend}},
    }


@pytest.mark.parametrize(
    ("service", "backend", "networks", "findings"),
    [
        ({"ports": ["8080:80"]}, {"port": 8080, "method": "ingress"}, {}, []),
        (
            {"ports": [{"target": 80, "published": 8080, "mode": "host"}]},
            {"port": 8080, "method": "tasks"},
            {},
            [],
        ),
        (
            {"ports": ["8080:80"]},
            {"port": 8080, "method": "tasks"},
            {},
            [
                (
                    ("x-converge", "loadbalancer", "backends", "web", "method"),
                    "the tasks method needs port 8080 of service 'web' published in host mode "
                    "(ports: [{target: ..., published: ..., mode: host}])",
                )
            ],
        ),
        (
            {},
            {"port": 8080, "method": "ingress"},
            {},
            [
                (
                    ("x-converge", "loadbalancer", "backends", "web", "port"),
                    "service 'web' does not publish port 8080",
                )
            ],
        ),
        (
            {"networks": ["net"], "ports": ["8080:80"]},
            {"port": 81},
            {"net": {"attachable": True}},
            [
                (
                    ("x-converge", "loadbalancer", "backends", "web", "port"),
                    "service 'web' listens on 80, not on port 81",
                )
            ],
        ),
        (
            {"networks": ["net"]},
            {"port": 80, "network": "other"},
            {"net": {"attachable": True}, "other": {"attachable": True}},
            [
                (
                    ("x-converge", "loadbalancer", "backends", "web", "network"),
                    "service 'web' is not attached to network 'other'",
                )
            ],
        ),
        ({"networks": ["proxy"]}, {"port": 80}, {"proxy": {"external": True}}, []),
    ],
)
def test_load_balancer_backends(
    service: dict[str, Any],
    backend: dict[str, Any],
    networks: dict[str, Any],
    findings: list[tuple[tuple[str | int, ...], str]],
) -> None:
    spec = _spec(
        networks=networks,
        services={"web": {"image": "a", **service}},
        loadbalancer=_balancer(**backend),
    )
    assert check_spec(spec) == findings


def test_load_balancer_frontends_and_stats() -> None:
    balancer = _balancer(port=8080, method="ingress")
    balancer["frontends"]["alt"] = {"port": 81, "backend": "wbe"}
    balancer["stats"] = {"port": 81}
    spec = _spec(services={"web": {"image": "a", "ports": ["8080:80"]}}, loadbalancer=balancer)
    assert check_spec(spec) == [
        (
            ("x-converge", "loadbalancer", "frontends", "alt", "backend"),
            "backend 'wbe' is not declared under 'x-converge.loadbalancer.backends'; "
            "did you mean 'web'?",
        ),
        (
            ("x-converge", "loadbalancer", "stats", "port"),
            "port 81 is already used by frontend 'alt'",
        ),
    ]


def test_only_workers() -> None:
    spec = _spec(nodes={"w1": {"role": "worker"}})
    assert check_spec(spec) == [
        (("x-converge", "nodes"), "every declared node is a worker; a swarm needs a manager")
    ]


def test_a_service_without_networks_is_on_the_default_network() -> None:
    spec = _spec(
        services={"web": {"image": "a", "ports": ["8080:80"]}},
        loadbalancer=_balancer(port=80),
    )
    # The dns method joins the service's network: stack deploy's default is not attachable.
    assert check_spec(spec) == [
        (
            ("x-converge", "loadbalancer", "backends", "web", "network"),
            "network 'default' must be attachable for the load balancer to join it "
            "(attachable: true)",
        )
    ]
    attachable = _spec(
        networks={"default": {"attachable": True}},
        services={"web": {"image": "a", "ports": ["8080:80"]}},
        loadbalancer=_balancer(port=80),
    )
    assert check_spec(attachable) == []


def test_dnsrr_refuses_ports_on_the_routing_mesh() -> None:
    service = {
        "image": "a",
        "ports": ["8080:80", {"target": 81, "published": 8081, "mode": "host"}, "9000"],
        "deploy": {"endpoint_mode": "dnsrr"},
    }
    assert check_spec(_spec(services={"dns": service})) == [
        (
            ("services", "dns", "ports", 0),
            "port 8080 is published on the routing mesh (ingress), which endpoint_mode dnsrr "
            "does not support: publish it with mode: host",
        )
    ]


def test_secrets_and_configs_must_be_declared_and_a_secret_never_holds_its_value() -> None:
    spec = _spec(
        secrets={"key": {"content": "inline"}, "pem": {"file": "./key.pem"}},
        configs={"site": {"file": "./site.conf", "template_driver": "jinja"}},
        services={"web": {"image": "a", "secrets": ["key", "pem"], "configs": ["missing"]}},
    )
    assert check_spec(spec) == [
        (
            ("services", "web", "configs", 0),
            "config 'missing' is not declared under 'configs'",
        ),
        (
            ("secrets", "key", "content"),
            "a secret's value never sits in the file: use file, environment, "
            "x-converge.age or x-converge.command",
        ),
        (
            ("configs", "site", "template_driver"),
            "template_driver 'jinja' is unknown; the engine knows 'golang'",
        ),
    ]


def test_a_field_the_engine_api_converge_speaks_lacks_is_refused() -> None:
    service = {"image": "a", "healthcheck": {"test": "true", "start_interval": "1s"}}
    assert check_spec(_spec(services={"web": service})) == [
        (
            ("services", "web", "healthcheck", "start_interval"),
            "start_interval needs Engine API 1.44 (Docker 25); converge speaks API 1.41, "
            "where the engine ignores it",
        )
    ]
