"""The spec models on their own: short forms, canonical spellings, and model-level rules."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from converge.spec import (
    IGNORABLE_FIELDS,
    IGNORED_SERVICE_KEYS,
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
    "written",
    [
        "node.labels.type==mvc",
        "  node.labels.type  ==  mvc  ",
        "node.hostname!=dbhost",
        "node.role == manager",
        "node.id == abc123",
        "node.platform.os == linux",
        "node.platform.arch != arm64",
        "engine.labels.region == eu west",
        "node.labels.a.b-c == x==y",
    ],
)
def test_constraints_are_kept_as_written(written: str) -> None:
    # docker stack deploy sends them as written: so does converge (views compare one spelling).
    service = _service(deploy={"placement": {"constraints": [written]}})
    assert service.deploy.placement.constraints == (written,)


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
        _service(deploy={"placement": {"constraints": [text]}})


def test_parse_constraint() -> None:
    assert parse_constraint("node.labels.type==mvc") == ("node.labels.type", "==", "mvc")
    assert parse_constraint("engine.labels.x != y z") == ("engine.labels.x", "!=", "y z")


def test_node_role_constraint_values() -> None:
    data = {"image": "a", "deploy": {"placement": {"constraints": ["node.role==boss"]}}}
    assert (
        _error(ServiceSpec, data) == "constraint 'node.role==boss': node.role is manager or worker"
    )


def _short(target: int, published: int | None = None, protocol: str = "tcp") -> PortSpec:
    """A port as the short syntax gives it: protocol and mode always set, as stack deploy."""
    return PortSpec(target=target, published=published, protocol=protocol, mode="ingress")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("written", "ports"),
    [
        ("80", [_short(80)]),
        (80, [_short(80)]),
        ("3000:80", [_short(80, 3000)]),
        ("3000:80/udp", [_short(80, 3000, "udp")]),
        ("53/sctp", [_short(53, None, "sctp")]),
        ("8000-8001:80-81", [_short(80, 8000), _short(81, 8001)]),
        ("80-81", [_short(80), _short(81)]),
        # A published range to one target publishes each port of the range (nat's rule).
        ("8000-8001:80", [_short(80, 8000), _short(80, 8001)]),
        # The host IP is ignored (with a warning from the loader), as by stack deploy.
        ("127.0.0.1:3000:80", [_short(80, 3000)]),
        ("[::1]:3000:80", [_short(80, 3000)]),
        (
            {"target": 80, "published": 3000, "mode": "host"},
            [PortSpec(target=80, published=3000, mode="host")],
        ),
        ({"target": 80, "published": "3000"}, [PortSpec(target=80, published=3000)]),
    ],
)
def test_port_forms(written: object, ports: list[PortSpec]) -> None:
    assert list(_service(ports=[written]).ports) == ports


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("80:http", "port '80:http' is not of the form [[IP:]PUBLISHED:]TARGET[/PROTOCOL]"),
        ("80/icmp", "port '80/icmp' is not of the form [[IP:]PUBLISHED:]TARGET[/PROTOCOL]"),
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
        (
            "data:/srv:ro,nocopy",
            MountSpec.model_validate(
                {"source": "data", "target": "/srv", "read_only": True, "volume": {"nocopy": True}}
            ),
        ),
        ("/host:/srv", MountSpec(type="bind", source="/host", target="/srv")),
        (
            "/host:/srv:rshared",
            MountSpec.model_validate(
                {
                    "type": "bind",
                    "source": "/host",
                    "target": "/srv",
                    "bind": {"propagation": "rshared"},
                }
            ),
        ),
        ("/host:/srv:z", MountSpec(type="bind", source="/host", target="/srv")),
        ("/srv", MountSpec(type="volume", target="/srv")),
    ],
)
def test_mount_forms(written: str, mount: MountSpec) -> None:
    assert _service(volumes=[written]).volumes == (mount,)


def test_relative_bind_sources_follow_the_first_file() -> None:
    context = {"working_dir": "/srv/app", "home": "/home/ops"}
    service = ServiceSpec.model_validate(
        {"image": "a", "volumes": ["./site:/a", "../etc:/b", "~/cache:/c"]}, context=context
    )
    assert [mount.source for mount in service.volumes] == [
        "/srv/app/site",
        "/srv/etc",
        "/home/ops/cache",
    ]


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("a:/b:ro:x", "volume 'a:/b:ro:x' is not of the form [SOURCE:]TARGET[:MODE]"),
        ("a::/b", "volume 'a::/b' has an empty section between colons"),
        ("./site:/srv", "a bind mount needs an absolute host path, got './site'"),
    ],
)
def test_bad_mount_forms(written: str, message: str) -> None:
    assert _error(ServiceSpec, {"image": "a", "volumes": [written]}) == message


def test_two_mounts_on_one_target() -> None:
    message = _error(ServiceSpec, {"image": "a", "volumes": ["a:/srv", "b:/srv"]})
    assert message == "two volumes share the target /srv"


def test_environment_and_labels_forms() -> None:
    as_list = _service(environment=["A=1", "B=x=y", "C=", "D"], labels=["team=web", "bare"])
    as_map = _service(
        environment={"A": 1, "B": "x=y", "C": "", "D": None}, labels={"team": "web", "bare": ""}
    )
    assert as_list == as_map
    # A bare name (null value) is sent as the name alone: the task takes it from nowhere.
    assert as_list.environment == {"A": "1", "B": "x=y", "C": "", "D": None}
    assert _service(environment={"ON": True, "OFF": False, "RATIO": 0.5}).environment == {
        "ON": "true",
        "OFF": "false",
        "RATIO": "0.5",
    }
    message = _error(ServiceSpec, {"image": "a", "environment": ["=1"]})
    assert message == "environment entry '=1' has an empty name"


def test_networks_forms() -> None:
    assert _service(networks=["a", "b"]) == _service(networks={"a": None, "b": {}})
    service = _service(networks={"a": {"aliases": ["x"], "driver_opts": {"k": 1}}})
    assert service.networks["a"].aliases == ("x",)
    assert service.networks["a"].driver_opts == {"k": "1"}


def test_command_forms() -> None:
    assert _service(command="run --flag 'two words'").command == ("run", "--flag", "two words")
    assert _service(command=["run", "a b"]).command == ("run", "a b")
    assert _service(entrypoint="/bin/sh -c").entrypoint == ("/bin/sh", "-c")
    message = _error(ServiceSpec, {"image": "a", "command": "run 'unclosed"})
    assert message == 'cannot split command "run \'unclosed": No closing quotation'


def test_healthcheck_forms() -> None:
    service = _service(healthcheck={"test": "curl -f localhost", "interval": "30s"})
    assert service.healthcheck is not None
    assert service.healthcheck.test == ("CMD-SHELL", "curl -f localhost")
    assert service.healthcheck.interval == 30_000_000_000
    message = _error(ServiceSpec, {"image": "a", "healthcheck": {"disable": True, "test": "x"}})
    assert message == "a disabled healthcheck takes no test"


def test_service_modes() -> None:
    assert _service(deploy={"mode": "global"}).deploy.replicas is None
    for mode in ("global", "global-job"):
        message = _error(ServiceSpec, {"image": "a", "deploy": {"mode": mode, "replicas": 2}})
        assert message == f"a {mode} service runs one task per node: remove 'replicas'"
    data = {"image": "a", "deploy": {"mode": "global", "placement": {"max_replicas_per_node": 1}}}
    assert _error(ServiceSpec, data) == "max_replicas_per_node is for replicated services only"
    job = _service(deploy={"mode": "replicated-job", "replicas": 3}).deploy
    assert (job.is_job, job.is_global, job.replicas) == (True, False, 3)


def test_resources() -> None:
    service = _service(deploy={"resources": {"limits": {"cpus": 1, "memory": "1G", "pids": 50}}})
    limits = service.deploy.resources.limits
    assert limits is not None
    assert (limits.cpus, limits.memory, limits.pids) == (1_000_000_000, 1024**3, 50)
    data = {
        "image": "a",
        "deploy": {"resources": {"limits": {"cpus": 1}, "reservations": {"cpus": 2}}},
    }
    assert _error(ServiceSpec, data) == "the cpus reservation is larger than the cpus limit"
    data = {"image": "a", "deploy": {"resources": {"reservations": {"pids": 2}}}}
    assert _error(ServiceSpec, data) == "pids is a limit, not a reservation"


def test_container_settings() -> None:
    service = _service(
        extra_hosts={"b.local": "10.0.0.2", "a.local": ["10.0.0.1", "[::1]"]},
        ulimits={"nofile": 1024, "nproc": {"soft": 10, "hard": 20}},
        sysctls=["net.core.somaxconn=1024"],
        dns="1.1.1.1",
        logging={"driver": "syslog", "options": {"tag": 7}},
    )
    assert service.extra_hosts == ("a.local:10.0.0.1", "a.local:::1", "b.local:10.0.0.2")
    assert (service.ulimits["nofile"].soft, service.ulimits["nofile"].hard) == (1024, 1024)
    assert service.sysctls == {"net.core.somaxconn": "1024"}
    assert service.dns == ("1.1.1.1",)
    assert service.logging is not None
    assert service.logging.options == {"tag": "7"}
    assert _error(ServiceSpec, {"image": "a", "extra_hosts": ["nocolon"]}) == (
        "extra host 'nocolon' is not HOST:IP"
    )


def test_keys_swarm_ignores_are_accepted() -> None:
    service = _service(build=".", container_name="x", links=["db"])
    assert service.image == "app"
    assert {"build", "container_name", "links"} <= set(IGNORED_SERVICE_KEYS)


def test_x_keys_are_allowed_everywhere_but_x_converge_is_checked() -> None:
    service = _service(**{"x-notes": "anything", "deploy": {"x-team": "web"}})
    assert service.x_converge.ignore == ()
    with pytest.raises(ValidationError):
        _service(**{"x-converge": {"ignroe": ["image"]}})
    ignoring = _service(**{"x-converge": {"ignore": ["image", "deploy.replicas"]}})
    assert ignoring.ignored == {"image", "deploy.replicas"}
    assert set(ignoring.x_converge.ignore) <= set(IGNORABLE_FIELDS)


def test_networks_and_volumes() -> None:
    network = NetworkSpec.model_validate(
        {"ipam": {"config": [{"subnet": " 10.1.0.0/16 ", "gateway": "10.1.0.1"}]}}
    )
    assert network.ipam is not None
    assert (network.ipam.config[0].subnet, network.ipam.config[0].gateway) == (
        "10.1.0.0/16",
        "10.1.0.1",
    )
    data = {"ipam": {"config": [{"subnet": "10.1.0.1/16"}]}}
    assert _error(NetworkSpec, data) == "'10.1.0.1/16' is not a subnet such as 10.20.0.0/16"
    assert NetworkSpec.model_validate({"external": True, "name": "x"}).name == "x"
    # compose's older spelling of an external name
    assert NetworkSpec.model_validate({"external": {"name": "x"}}).name == "x"
    assert NetworkSpec.model_validate({"name": "custom"}).name == "custom"
    assert NetworkSpec.model_validate({"driver_opts": {"encrypted": ""}}).encrypted
    assert _error(VolumeSpec, {"external": True, "driver": "nfs"}) == (
        "an external volume takes only 'name'"
    )
    # Settings given at their default value are not settings: a full dump validates.
    assert NetworkSpec.model_validate({"external": True, "attachable": False}).external


def test_stack_networks_and_names() -> None:
    spec = Spec.model_validate(
        {
            "x-converge": {"stack": "shop"},
            "services": {
                "web": {"image": "a", "networks": ["front"]},
                "worker": {"image": "a"},
            },
            "networks": {
                "front": {"name": "shop-front"},
                "unused": {},
                "proxy": {"external": True},
            },
            "volumes": {"data": {}, "named": {"name": "kept"}},
        }
    )
    # As stack deploy: only networks a service joins, and default for those that name none.
    assert list(spec.stack_networks()) == ["default", "front"]
    assert spec.network_name("front") == "shop-front"
    assert spec.network_name("default") == "shop_default"
    assert spec.network_name("proxy") == "proxy"
    assert spec.volume_name("data") == "shop_data"
    assert spec.volume_name("named") == "kept"
    assert list(spec.service_networks("worker")) == ["default"]


def test_models_are_frozen_and_strict_about_keys() -> None:
    spec = Spec.model_validate({"x-converge": {"stack": "shop"}})
    with pytest.raises(ValidationError):
        spec.name = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Spec.model_validate({"name": "shop", "extra": 1})
    # A version key is accepted and ignored, as by compose; other x- keys too.
    assert Spec.model_validate({"version": "3.8", "name": "shop", "x-anchors": [1]}).stack == "shop"


@pytest.mark.parametrize("stack", ["shop", "a", "my-shop_2", "0day", "a" * 40])
def test_good_stack_names(stack: str) -> None:
    assert Spec.model_validate({"x-converge": {"stack": stack}}).stack == stack
    assert Spec.model_validate({"name": stack}).stack == stack


@pytest.mark.parametrize("stack", ["Shop", "my shop", "-shop", "_shop", "a" * 41, "", "sh.op"])
def test_bad_stack_names(stack: str) -> None:
    with pytest.raises(ValidationError):
        Spec.model_validate({"x-converge": {"stack": stack}})
