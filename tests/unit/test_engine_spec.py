"""``service_engine_spec`` and ``network_create_body``: the bodies apply sends.

Ground truth first: for ``tests/fixtures/stackdeploy/everything.yml`` converge must send exactly
the request bodies ``docker stack deploy`` sent (recorded on the lab by
``scripts/record_stack_deploy.py``). Then the round trip: a body built from a file, read back as
the engine would report it, aligns to the file's own view, so a plan right after an apply is
empty; and an update keeps what it must keep (the ForceUpdate counter, ignored fields).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from converge.diff import compare_views
from converge.engine_spec import (
    IGNORED_ENGINE_PATHS,
    effective_capabilities,
    network_create_body,
    service_engine_spec,
)
from converge.loader import load_spec, load_spec_text
from converge.normalize import (
    align,
    desired_network_view,
    desired_service_view,
    observed_network_view,
    observed_service_view,
)
from converge.spec import IGNORABLE_FIELDS, Spec

STACK_DEPLOY = Path(__file__).resolve().parents[1] / "fixtures" / "stackdeploy"
RECORDED = json.loads((STACK_DEPLOY / "everything.requests.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def everything() -> Spec:
    # As recorded: BARE unset in the environment, the env file beside the compose file.
    return load_spec([STACK_DEPLOY / "everything.yml"], environ={}, stack="sd").spec


def _as_sent(body: dict[str, Any]) -> dict[str, Any]:
    """A body as JSON carries it (tuples as lists), without the fields newer CLIs add for
    newer engines (NoNewPrivileges, unknown to API 1.41)."""
    sent: dict[str, Any] = json.loads(json.dumps(body))
    privileges = sent.get("TaskTemplate", {}).get("ContainerSpec", {}).get("Privileges", {})
    privileges.pop("NoNewPrivileges", None)
    return sent


@pytest.mark.parametrize("name", sorted(RECORDED["services"]))
def test_services_are_sent_exactly_as_docker_stack_deploy_sends_them(
    everything: Spec, name: str
) -> None:
    key = name.removeprefix("sd_")
    assert _as_sent(service_engine_spec(everything, key)) == _as_sent(RECORDED["services"][name])


def _meaningful(body: dict[str, Any]) -> dict[str, Any]:
    """A NetworkCreate body without the null and false fields the CLI's struct always has."""
    return {
        key: value
        for key, value in body.items()
        if value not in (None, False, "", {}) and key not in ("CheckDuplicate", "Scope")
    }


@pytest.mark.parametrize("name", sorted(RECORDED["networks"]))
def test_networks_are_created_as_docker_stack_deploy_creates_them(
    everything: Spec, name: str
) -> None:
    body = network_create_body(everything, name.removeprefix("sd_"))
    recorded = _meaningful(RECORDED["networks"][name])
    if "IPAM" in recorded:
        recorded["IPAM"] = {k: v for k, v in recorded["IPAM"].items() if v is not None}
    assert _meaningful(body) == recorded


def test_only_networks_in_use_are_created(everything: Spec) -> None:
    # "unused" is declared but no service joins it; "default" is implicit.
    assert {f"sd_{key}" for key in everything.stack_networks()} == set(RECORDED["networks"])


@pytest.mark.parametrize(
    ("add", "drop", "expected"),
    [
        (["net_admin"], [], (["CAP_NET_ADMIN"], [])),
        (["NET_ADMIN", "cap_net_admin"], [], (["CAP_NET_ADMIN"], [])),
        (["ALL", "NET_ADMIN"], [], (["ALL"], [])),
        (["NET_ADMIN"], ["net_admin", "chown"], (["CAP_NET_ADMIN"], ["CAP_CHOWN"])),
        ([], ["ALL", "chown"], ([], ["ALL"])),
        (["RESET"], ["RESET"], ([], [])),
    ],
)
def test_capabilities_as_docker_normalises_them(
    add: list[str], drop: list[str], expected: tuple[list[str], list[str]]
) -> None:
    assert effective_capabilities(add, drop) == expected


def read_back(spec: Spec, payload: dict[str, Any]) -> dict[str, Any]:
    """The view of ``payload`` as the engine would report it (network targets as sent)."""
    names = {spec.network_name(key): spec.network_name(key) for key in spec.stack_networks()}
    return observed_service_view(payload, spec.stack, names)


@pytest.mark.parametrize("key", ["rich", "plain", "restarts", "always", "job", "globaljob"])
def test_a_created_payload_reads_back_as_the_spec(everything: Spec, key: str) -> None:
    payload = service_engine_spec(everything, key)
    desired = desired_service_view(everything, key)
    aligned = align(desired, read_back(everything, payload), none_unmanaged=False)
    assert compare_views(aligned, desired) == []


BARE = """
x-converge:
  stack: shop
services:
  web:
    image: converge-lab/app:v1
    x-converge:
      ignore: [image, deploy.replicas, deploy.resources.limits, environment]
"""


def test_an_update_keeps_the_force_update_counter_and_nothing_else() -> None:
    spec = load_spec_text(BARE.replace("ignore: [", "ignore: [labels, "), environ={}).spec
    base = service_engine_spec(spec, "web")
    base["TaskTemplate"]["ContainerSpec"].update({"User": "nobody", "StopGracePeriod": 1})
    base["TaskTemplate"]["ForceUpdate"] = 3
    base["TaskTemplate"]["LogDriver"] = {"Name": "json-file"}
    base["UpdateConfig"] = {"Parallelism": 3, "Order": "start-first"}
    before = copy.deepcopy(base)

    payload = service_engine_spec(spec, "web", base=base)

    assert base == before  # the observed spec is not modified
    assert payload["TaskTemplate"]["ForceUpdate"] == 3
    # The file is the full desired state: what it leaves unset goes back to the default.
    assert "User" not in payload["TaskTemplate"]["ContainerSpec"]
    assert "LogDriver" not in payload["TaskTemplate"]
    assert "UpdateConfig" not in payload
    assert payload == {
        **service_engine_spec(spec, "web"),
        "TaskTemplate": {**service_engine_spec(spec, "web")["TaskTemplate"], "ForceUpdate": 3},
    }


def test_an_update_keeps_the_fields_another_tool_owns() -> None:
    spec = load_spec_text(BARE, environ={}).spec
    base = service_engine_spec(spec, "web")
    base["TaskTemplate"]["ContainerSpec"]["Image"] = "converge-lab/app:v7@sha256:" + "a" * 64
    base["Labels"]["com.docker.stack.image"] = "converge-lab/app:v7"
    base["Mode"] = {"Replicated": {"Replicas": 9}}
    base["TaskTemplate"]["Resources"] = {"Limits": {"NanoCPUs": 10**9}, "Reservations": {}}
    base["TaskTemplate"]["ContainerSpec"]["Env"] = ["SET_BY=autoscaler"]
    base["TaskTemplate"]["ContainerSpec"]["User"] = "nobody"

    payload = service_engine_spec(spec, "web", base=base)

    container = payload["TaskTemplate"]["ContainerSpec"]
    assert container["Image"] == base["TaskTemplate"]["ContainerSpec"]["Image"]
    assert payload["Labels"]["com.docker.stack.image"] == "converge-lab/app:v7"
    assert payload["Mode"] == {"Replicated": {"Replicas": 9}}
    assert payload["TaskTemplate"]["Resources"]["Limits"] == {"NanoCPUs": 10**9}
    assert container["Env"] == ["SET_BY=autoscaler"]
    assert "User" not in container  # not ignored: back to the default
    # Created, the file's values apply.
    created = service_engine_spec(spec, "web")
    assert created["Mode"] == {"Replicated": {}}
    assert "Env" not in created["TaskTemplate"]["ContainerSpec"]


def test_an_ignored_field_the_swarm_lacks_is_left_out() -> None:
    spec = load_spec_text(BARE, environ={}).spec
    base = service_engine_spec(spec, "web")
    base["Mode"] = {"Replicated": {}}
    payload = service_engine_spec(spec, "web", base=base)
    assert payload["Mode"] == {"Replicated": {}}
    assert "Env" not in payload["TaskTemplate"]["ContainerSpec"]


def test_every_ignorable_field_has_its_engine_paths() -> None:
    assert set(IGNORED_ENGINE_PATHS) == set(IGNORABLE_FIELDS)


def test_force_update_increments_the_counter() -> None:
    spec = load_spec_text(BARE, environ={}).spec
    base = service_engine_spec(spec, "web")
    base["TaskTemplate"]["ForceUpdate"] = 4
    payload = service_engine_spec(spec, "web", base=base, force_update=True)
    assert payload["TaskTemplate"]["ForceUpdate"] == 5
    assert service_engine_spec(spec, "web", force_update=True)["TaskTemplate"]["ForceUpdate"] == 1


def test_network_create_body_reads_back_as_the_spec() -> None:
    spec = load_spec_text(
        "x-converge:\n  stack: s\nnetworks:\n"
        "  backend: {attachable: true, internal: true,\n"
        "            driver_opts: {encrypted: '', mtu: 1400}, labels: {a: b},\n"
        "            ipam: {config: [{subnet: 10.30.0.0/24, gateway: 10.30.0.1}]}}\n"
        "  plain: {}\n"
        "services:\n  web:\n    image: x\n    networks: [backend, plain]\n",
        environ={},
    ).spec
    for key in ("backend", "plain"):
        body = network_create_body(spec, key)
        assert body["Labels"]["com.docker.stack.namespace"] == "s"
        # What the engine reports: the body plus its own vxlan option and address pool.
        reported = {
            **body,
            "Name": f"s_{key}",
            "Options": {
                **body["Options"],
                "com.docker.network.driver.overlay.vxlanid_list": "4098",
            },
            "IPAM": body.get("IPAM")
            or {"Driver": "default", "Config": [{"Subnet": "10.0.9.0/24", "Gateway": "10.0.9.1"}]},
        }
        desired = desired_network_view(spec.networks[key])
        assert compare_views(align(desired, observed_network_view(reported)), desired) == []
    # converge goes further than stack deploy here: the gateway is sent.
    assert network_create_body(spec, "backend")["IPAM"]["Config"] == [
        {"Subnet": "10.30.0.0/24", "Gateway": "10.30.0.1"}
    ]
