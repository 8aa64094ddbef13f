"""The spec models on their own: short forms, canonical spellings, and model-level rules."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from converge.spec import (
    MountSpec,
    NetworkSpec,
    PortSpec,
    ServiceSpec,
    Spec,
    VolumeSpec,
    parse_constraint,
)


def _service(**fields: Any) -> ServiceSpec:
    return ServiceSpec.model_validate({"image": "app", **fields})


def _error(model: type[Any], data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    errors = caught.value.errors()
    assert len(errors) == 1
    return str(errors[0]["msg"]).removeprefix("Value error, ")


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("node.labels.type==mvc", "node.labels.type == mvc"),
        ("  node.labels.type  ==  mvc  ", "node.labels.type == mvc"),
        ("node.hostname!=dbhost", "node.hostname != dbhost"),
        ("node.role == manager", "node.role == manager"),
        ("node.id == abc123", "node.id == abc123"),
        ("node.platform.os == linux", "node.platform.os == linux"),
        ("node.platform.arch != arm64", "node.platform.arch != arm64"),
        ("engine.labels.region == eu west", "engine.labels.region == eu west"),
        ("node.labels.a.b-c == x==y", "node.labels.a.b-c == x==y"),
    ],
)
def test_constraints_are_canonicalised(written: str, canonical: str) -> None:
    service = _service(placement={"constraints": [written]})
    assert service.placement.constraints == (canonical,)
    assert _service(placement={"constraints": [canonical]}) == service


@pytest.mark.parametrize(
    "text",
    [
        "node.labels.zone = east",
        "node.label.type == web",
        "labels.type == web",
        "node.labels == web",
        "node.role ==",
        "== worker",
        "node.platform == linux",
        "node.labels.type <> web",
        "",
    ],
)
def test_bad_constraints(text: str) -> None:
    with pytest.raises(ValueError, match="must be KEY == VALUE or KEY != VALUE"):
        parse_constraint(text)
    with pytest.raises(ValidationError):
        _service(placement={"constraints": [text]})


def test_parse_constraint() -> None:
    assert parse_constraint("node.labels.type==mvc") == ("node.labels.type", "==", "mvc")
    assert parse_constraint("engine.labels.x != y z") == ("engine.labels.x", "!=", "y z")


def test_node_role_constraint_values() -> None:
    message = _error(ServiceSpec, {"image": "a", "placement": {"constraints": ["node.role==boss"]}})
    assert message == "constraint 'node.role==boss': node.role is manager or worker"


@pytest.mark.parametrize(
    ("written", "ports"),
    [
        ("80", [PortSpec(target=80)]),
        (80, [PortSpec(target=80)]),
        ("3000:80", [PortSpec(target=80, published=3000)]),
        ("3000:80/udp", [PortSpec(target=80, published=3000, protocol="udp")]),
        ("53/sctp", [PortSpec(target=53, protocol="sctp")]),
        (
            "8000-8001:80-81",
            [PortSpec(target=80, published=8000), PortSpec(target=81, published=8001)],
        ),
        ("80-81", [PortSpec(target=80), PortSpec(target=81)]),
        (
            {"target": 80, "published": 3000, "mode": "host"},
            [PortSpec(target=80, published=3000, mode="host")],
        ),
    ],
)
def test_port_forms(written: object, ports: list[PortSpec]) -> None:
    assert list(_service(ports=[written]).ports) == ports


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("80:http", "port '80:http' is not of the form [PUBLISHED:]TARGET[/PROTOCOL]"),
        ("80/icmp", "port '80/icmp' is not of the form [PUBLISHED:]TARGET[/PROTOCOL]"),
        (
            "1.2.3.4:80:80",
            "port '1.2.3.4:80:80': a host IP cannot be given in swarm mode; write PUBLISHED:TARGET",
        ),
        ("8000-8002:80-81", "port '8000-8002:80-81': the two ranges differ in length"),
        ("81-80", "port range '81-80' runs backwards"),
    ],
)
def test_bad_port_forms(written: str, message: str) -> None:
    assert _error(ServiceSpec, {"image": "a", "ports": [written]}) == message


@pytest.mark.parametrize("port", [0, 65536, "0", "70000:80"])
def test_ports_out_of_range(port: object) -> None:
    with pytest.raises(ValidationError):
        _service(ports=[port])


def test_same_port_with_two_protocols_is_fine() -> None:
    service = _service(ports=["53:53/udp", "53:53/tcp"])
    assert [port.protocol for port in service.ports] == ["udp", "tcp"]
    message = _error(ServiceSpec, {"image": "a", "ports": ["53:53", "53:5353"]})
    assert message == "port 53/tcp is published twice"


@pytest.mark.parametrize(
    ("written", "mount"),
    [
        ("data:/srv", MountSpec(type="volume", source="data", target="/srv")),
        ("data:/srv:ro", MountSpec(type="volume", source="data", target="/srv", read_only=True)),
        ("data:/srv:rw", MountSpec(type="volume", source="data", target="/srv")),
        ("/host:/srv", MountSpec(type="bind", source="/host", target="/srv")),
        ("/srv", MountSpec(type="volume", target="/srv")),
    ],
)
def test_mount_forms(written: str, mount: MountSpec) -> None:
    assert _service(mounts=[written]).mounts == (mount,)


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("data:/srv:rx", "mount 'data:/srv:rx': the mode must be ro or rw, got 'rx'"),
        ("a:/b:ro:x", "mount 'a:/b:ro:x' is not of the form SOURCE:TARGET[:ro|rw]"),
        ("./site:/srv", "a bind mount needs an absolute host path as source"),
        ("~/site:/srv", "a bind mount needs an absolute host path as source"),
    ],
)
def test_bad_mount_forms(written: str, message: str) -> None:
    assert _error(ServiceSpec, {"image": "a", "mounts": [written]}) == message


def test_two_mounts_on_one_target() -> None:
    message = _error(ServiceSpec, {"image": "a", "mounts": ["a:/srv", "b:/srv"]})
    assert message == "two mounts share the target /srv"


def test_env_and_labels_forms() -> None:
    as_list = _service(env=["A=1", "B=x=y", "C="], labels=["team=web"])
    as_map = _service(env={"A": 1, "B": "x=y", "C": ""}, labels={"team": "web"})
    assert as_list == as_map
    assert as_list.env == {"A": "1", "B": "x=y", "C": ""}
    assert _service(env={"ON": True, "OFF": False, "RATIO": 0.5}).env == {
        "ON": "true",
        "OFF": "false",
        "RATIO": "0.5",
    }
    assert _error(ServiceSpec, {"image": "a", "env": ["=1"]}) == "env entry '=1' has an empty name"


def test_networks_forms() -> None:
    assert _service(networks=["a", "b"]) == _service(networks={"a": None, "b": {}})
    service = _service(networks={"a": {"aliases": ["x"]}})
    assert service.networks["a"].aliases == ("x",)


def test_command_forms() -> None:
    assert _service(command="run --flag 'two words'").command == ("run", "--flag", "two words")
    assert _service(command=["run", "a b"]).command == ("run", "a b")
    message = _error(ServiceSpec, {"image": "a", "command": "run 'unclosed"})
    assert message == 'cannot split command "run \'unclosed": No closing quotation'


def test_healthcheck_forms() -> None:
    service = _service(healthcheck={"test": "curl -f localhost", "interval": "30s"})
    assert service.healthcheck is not None
    assert service.healthcheck.test == ("CMD-SHELL", "curl -f localhost")
    assert service.healthcheck.interval == 30_000_000_000
    message = _error(ServiceSpec, {"image": "a", "healthcheck": {"disable": True, "test": "x"}})
    assert message == "a disabled healthcheck takes no test"


def test_global_services() -> None:
    assert _service(mode="global").replicas is None
    message = _error(ServiceSpec, {"image": "a", "mode": "global", "replicas": 2})
    assert message == "a global service runs one task per node: remove 'replicas'"
    data = {"image": "a", "mode": "global", "placement": {"max_replicas_per_node": 1}}
    assert _error(ServiceSpec, data) == "max_replicas_per_node is for replicated services only"


def test_resources() -> None:
    service = _service(resources={"limits": {"cpus": 1, "memory": "1G"}})
    assert service.resources is not None
    assert service.resources.limits is not None
    assert service.resources.limits.cpus == 1_000_000_000
    data = {"image": "a", "resources": {"limits": {"cpus": 1}, "reservations": {"cpus": 2}}}
    assert _error(ServiceSpec, data) == "the cpus reservation is larger than the cpus limit"


def test_networks_and_volumes() -> None:
    network = NetworkSpec.model_validate({"subnet": " 10.1.0.0/16 ", "gateway": "10.1.0.1"})
    assert (network.subnet, network.gateway) == ("10.1.0.0/16", "10.1.0.1")
    assert _error(NetworkSpec, {"gateway": "10.1.0.1"}) == "a gateway needs a subnet"
    assert _error(NetworkSpec, {"subnet": "10.1.0.1/16"}) == (
        "'10.1.0.1/16' is not a subnet such as 10.20.0.0/16"
    )
    assert _error(NetworkSpec, {"name": "x"}) == "'name' is only for external networks"
    assert NetworkSpec.model_validate({"external": True, "name": "x"}).name == "x"
    assert _error(VolumeSpec, {"external": True, "driver": "nfs"}) == (
        "an external volume takes no other settings"
    )
    # Settings given at their default value are not settings: a full dump validates.
    assert NetworkSpec.model_validate({"external": True, "driver": "overlay"}).external


def test_models_are_frozen_and_strict_about_keys() -> None:
    spec = Spec.model_validate({"version": 1, "stack": "shop"})
    with pytest.raises(ValidationError):
        spec.stack = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Spec.model_validate({"version": 1, "stack": "shop", "extra": 1})


@pytest.mark.parametrize("stack", ["shop", "a", "my-shop_2", "0day", "a" * 40])
def test_good_stack_names(stack: str) -> None:
    assert Spec.model_validate({"version": 1, "stack": stack}).stack == stack


@pytest.mark.parametrize("stack", ["Shop", "my shop", "-shop", "_shop", "a" * 41, "", "sh.op"])
def test_bad_stack_names(stack: str) -> None:
    with pytest.raises(ValidationError):
        Spec.model_validate({"version": 1, "stack": stack})
