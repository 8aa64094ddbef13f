"""The pure side of rollouts: weights, HAProxy's counters, gates, and the plan's action."""

from __future__ import annotations

from pathlib import Path

import pytest

from converge.lb.config import render_config
from converge.lb.rollout import (
    Figures,
    GateFailure,
    candidate_figures,
    current_share,
    judge,
    parse_stats,
    remaining_shares,
    share_weights,
    weight_commands,
)
from converge.loader import load_spec_text
from converge.spec import RolloutGates, RolloutSpec

HEADER = (
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,"
    "wretr,wredis,status,weight,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other"
)


def row(server: str, status: str, weight: int, ok: int = 0, failed: int = 0, econ: int = 0) -> str:
    return f"web,{server},0,0,0,0,,0,0,0,,0,,{econ},0,0,0,{status},{weight},0,{ok},0,0,{failed},0"


def stats(*rows: str) -> str:
    return "\n".join([HEADER, "web,FRONTEND,,,", *rows, "web,BACKEND,0"]) + "\n"


SPEC = """
x-converge:
  stack: shop
  loadbalancer:
    image: haproxy:2.6
    node: manager
    frontends: {web: {port: 80, backend: web}}
    backends: {web: {service: web, port: 80, method: dns, max_servers: 2}}
services:
  web:
    image: app:v1
    networks: [backend]
    x-converge:
      rollout: {strategy: canary, steps: [10, 50, 100], pause: 5s}
networks:
  backend: {attachable: true}
"""


@pytest.mark.parametrize(
    ("share", "home", "candidate", "expected"),
    [
        (0, 3, 3, (100, 0)),
        (100, 3, 3, (0, 100)),
        (10, 2, 2, (9, 1)),
        (50, 3, 1, (1, 3)),
        (10, 1, 10, (90, 1)),
        (1, 1, 3, (256, 1)),  # 99*3 : 1*1, scaled under HAProxy's largest weight
        (30, 2, 0, (100, 0)),  # no server of the new version answers: nothing to share
    ],
)
def test_share_weights(share: int, home: int, candidate: int, expected: tuple[int, int]) -> None:
    assert share_weights(share, home, candidate) == expected
    old, new = expected
    if 0 < share < 100 and candidate:
        assert abs(100 * candidate * new / (home * old + candidate * new) - share) < 2


def test_stats_give_the_share_and_the_new_versions_figures() -> None:
    before = parse_stats(stats(row("web1", "UP", 9), row("web-next1", "UP", 1)))
    after = parse_stats(
        stats(
            row("web1", "UP", 9, ok=90),
            row("web-next1", "UP", 1, ok=7, failed=3, econ=1),
            row("web-next2", "MAINT (resolution)", 1),
        )
    )
    assert current_share(before, ["web"]) == 10
    figures = candidate_figures(before, after, ["web"])
    assert figures == Figures(requests=11, server_errors=3, connection_errors=1)
    assert figures.line() == ("36.4% errors (4 of 11 requests: 3 HTTP 5xx, 1 connection failures)")
    commands, weights = weight_commands(after, ["web"], 50)
    assert weights == {"home": 1, "next": 1}
    assert commands == [
        "set weight web/web1 1",
        "set weight web/web-next1 1",
        "set weight web/web-next2 1",
    ]
    # All traffic to the new version: its weights are raised before the old one's go to 0.
    commands, _ = weight_commands(after, ["web"], 100)
    assert commands[0] == "set weight web/web-next1 100"
    assert commands[-1] == "set weight web/web1 0"


def test_gates() -> None:
    gates = RolloutGates(max_error_rate=1, min_requests=20)
    assert judge(gates, Figures(10, 5, 0), up=1, share=10, held_enough=True) is False
    assert judge(gates, Figures(100, 0, 1), up=1, share=10, held_enough=False) is False
    assert judge(gates, Figures(100, 0, 1), up=1, share=10, held_enough=True) is True
    tripped = judge(gates, Figures(40, 2, 0), up=1, share=10, held_enough=False)
    assert isinstance(tripped, GateFailure)
    assert str(tripped) == (
        "gate max_error_rate: 5.0% errors (2 of 40 requests: 2 HTTP 5xx, 0 connection "
        "failures) > 1% allowed"
    )
    # A server marked down by one failed connection is back two checks later: no verdict.
    assert judge(gates, Figures(100, 0, 1), up=0, share=10, held_enough=True, down_for=2) is False
    down = judge(gates, Figures(), up=0, share=10, held_enough=False, down_for=6)
    assert isinstance(down, GateFailure)
    assert str(down) == "gate health: no server of the new version passed its health check for 6s"


def test_steps_left_from_the_share_in_force() -> None:
    canary = RolloutSpec(strategy="canary", steps=(10, 50, 100))
    assert remaining_shares(canary, 0) == (10, 50, 100)
    assert remaining_shares(canary, 50) == (50, 100)
    assert RolloutSpec(strategy="blue-green").shares == (100,)


def test_steps_must_increase_to_100() -> None:
    with pytest.raises(ValueError, match="end at 100"):
        RolloutSpec(strategy="canary", steps=(10, 50))


def test_the_config_holds_both_versions_and_the_runtime_api() -> None:
    text = render_config(load_spec_text(SPEC).spec, None)
    assert "    stats socket ipv4@127.0.0.1:19999 level admin\n" in text
    assert (
        "    server-template web 2 tasks.shop_web:80 check resolvers docker init-addr none "
        "weight 100\n"
        "    server-template web-next 2 tasks.shop_web-next:80 check resolvers docker "
        "init-addr none weight 0\n"
    ) in text


def test_a_rollout_needs_a_dns_backend() -> None:
    from converge.errors import SpecError

    with pytest.raises(SpecError, match="method: dns"):
        load_spec_text(SPEC.replace("method: dns", "method: tasks"))


def _observed_with(spec_text: str, *, home_spec: str, candidate: bool) -> tuple[object, object]:
    """The spec and an observation of its stack: the home service as ``home_spec`` would have
    made it, the balancer running, and (optionally) a rollout's new version beside it."""
    from dataclasses import replace

    from converge.engine_spec import service_engine_spec
    from converge.observe import state_from_engine_json
    from converge.rollout import candidate_engine_spec
    from converge.state import ObservedLoadBalancer

    spec = load_spec_text(spec_text).spec
    made = load_spec_text(home_spec).spec
    networks = [
        {
            "Id": "n1",
            "Name": "shop_backend",
            "Driver": "overlay",
            "Scope": "swarm",
            "Attachable": True,
            "Labels": {"com.docker.stack.namespace": "shop"},
        }
    ]

    def engine_json(service_id: str, payload: dict[str, object]) -> dict[str, object]:
        task = payload["TaskTemplate"]
        assert isinstance(task, dict)
        task["Networks"] = [{**net, "Target": "n1"} for net in task["Networks"]]
        return {"ID": service_id, "Version": {"Index": 5}, "Spec": payload}

    services = [engine_json("home", service_engine_spec(made, "web"))]
    if candidate:
        services.append(engine_json("next", candidate_engine_spec(spec, "web")))
    observed = state_from_engine_json(
        "shop", "manager", nodes=[], networks=networks, services=services, tasks=[]
    )
    from converge.lb.config import desired_view

    view = desired_view(spec, observed)
    balancer = ObservedLoadBalancer("lb1", "shop_loadbalancer", True, view, view["config"])
    return spec, replace(observed, loadbalancers=(balancer,))


def _service_plan(spec: object, observed: object) -> object:
    from converge.diff import diff
    from converge.planner import plan

    return plan(spec, diff(spec, observed), observed)  # type: ignore[arg-type]


def test_a_changed_canary_service_is_planned_as_a_rollout_with_its_steps() -> None:
    spec, observed = _observed_with(
        SPEC.replace("app:v1", "app:v2"), home_spec=SPEC, candidate=False
    )
    planned = _service_plan(spec, observed)
    service = [a for a in planned.actions if a.object_kind == "service"]  # type: ignore[attr-defined]
    assert [(a.key, a.kind) for a in service] == [("web", "rollout")]
    assert service[0].description == (
        "~ service shop_web: canary: start shop_web-next beside it, traffic 10% -> 50% -> 100%, "
        "each held 5s (gates: errors <= 1% over >= 20 requests, backend health checks), then "
        "the service runs the new version and shop_web-next is removed"
    )


def test_the_new_version_of_a_rollout_in_progress_is_neither_drift_nor_a_removal() -> None:
    # An apply died after the home service took the new spec: the plan finishes the rollout.
    new = SPEC.replace("app:v1", "app:v2")
    spec, observed = _observed_with(new, home_spec=new, candidate=True)
    assert list(observed.owned_services()) == ["web"]  # type: ignore[attr-defined]
    assert list(observed.rollout_candidates()) == ["web"]  # type: ignore[attr-defined]
    planned = _service_plan(spec, observed)
    # No "owned but no longer in the spec" for shop_web-next.
    assert "not_in_spec" not in {f.code for f in planned.findings}  # type: ignore[attr-defined]
    service = [a for a in planned.actions if a.object_kind == "service"]  # type: ignore[attr-defined]
    assert [(a.key, a.kind) for a in service] == [("web", "rollout")]
    assert "an interrupted rollout left shop_web-next" in service[0].reason

    # The spec went back to rolling updates: the abandoned new version is removed.
    rolling = new.replace("strategy: canary", "strategy: rolling")
    spec, observed = _observed_with(rolling, home_spec=new, candidate=True)
    planned = _service_plan(spec, observed)
    assert [(a.address, a.kind, a.name) for a in planned.actions if a.object_kind == "service"] == [  # type: ignore[attr-defined]
        ("service.web-next", "remove", "shop_web-next")
    ]


def test_rollout_status_text_says_where_it_stands() -> None:
    from converge.render.rollout import rollout_status_json, rollout_status_text
    from converge.rollout import RolloutStatus

    status = RolloutStatus(
        stack="shop",
        key="web",
        service="shop_web",
        strategy="canary",
        steps=(10, 50, 100),
        candidate="shop_web-next",
        share=50,
        candidate_up=2,
        candidate_running=2,
        candidate_desired=2,
        figures=Figures(200, 1, 0),
    )
    assert rollout_status_text(status).startswith(
        "service shop_web: canary rollout in progress: shop_web-next (2/2 running, 2 servers "
        "up) takes 50% of the traffic (step 2 of 3: 10% -> 50% -> 100%); new version so far: "
        "0.5% errors (1 of 200 requests: 1 HTTP 5xx, 0 connection failures)."
    )
    assert '"in_progress": true' in rollout_status_json(status)
    idle = RolloutStatus("shop", "web", "shop_web", "canary", (10, 100), None, None, pending=True)
    assert rollout_status_text(idle) == (
        "service shop_web: no rollout in progress; the next apply rolls out the new spec "
        "(canary: 10% -> 100%)"
    )


def test_the_service_is_the_last_argument_that_is_not_a_file() -> None:
    from converge.cli import _rollout_arguments

    given, service = _rollout_arguments(["spec.yml", "shop", "web"], None, None)
    assert (given.files[0].name, given.stack, service) == ("spec.yml", "shop", "web")
    given, service = _rollout_arguments(["web"], [Path("a.yml")], None)
    assert (given.stack, service) == (None, "web")


def test_the_new_version_is_reached_only_through_the_balancer() -> None:
    from converge.rollout import ROLLOUT_DIGEST_LABEL, candidate_engine_spec

    text = SPEC.replace(
        "    networks: [backend]\n", "    networks: [backend]\n    ports: ['8080:80']\n"
    )
    payload = candidate_engine_spec(load_spec_text(text).spec, "web")
    assert payload["Name"] == "shop_web-next"
    assert payload["Labels"]["io.converge.rollout.of"] == "web"
    assert payload["Labels"]["com.docker.stack.namespace"] == "shop"
    assert len(payload["Labels"][ROLLOUT_DIGEST_LABEL]) == 16
    assert "Ports" not in payload["EndpointSpec"]
    assert all("Aliases" not in network for network in payload["TaskTemplate"]["Networks"])


@pytest.mark.parametrize("what", ["promote", "abort"])
def test_a_failed_promote_or_abort_shows_no_secret_of_the_spec(
    what: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rollout commands' errors quote task errors, which may quote the spec's values: they
    are masked as apply's are, not only by rule (URL passwords) as errors without a spec."""
    from fake_engine import FakeSwarm
    from typer.testing import CliRunner

    from converge import cli
    from converge.errors import RolloutError

    secret = "rollout-tag-secret-0042"
    spec = tmp_path / "spec.yml"
    spec.write_text(SPEC.replace("image: app:v1", "image: app:${APP_TOKEN}"), encoding="utf-8")
    monkeypatch.setenv("APP_TOKEN", secret)
    fake = FakeSwarm.recorded("empty")
    monkeypatch.setattr("converge.engine.connect", lambda host=None, context=None: fake)

    def failing(*args: object, **kwargs: object) -> str:
        raise RolloutError(
            f"the new version: service shop_web-next: task rejected: No such image: app:{secret}"
        )

    monkeypatch.setattr("converge.api.rollout_command", failing)
    result = CliRunner().invoke(cli.rollout_app, [what, "-c", str(spec), "web"])
    shown = result.output + str(result.exception or "")
    assert result.exit_code == 1
    assert secret not in shown
    assert "No such image: (sensitive)" in shown


def test_destroy_removes_the_new_version_of_a_rollout_in_progress_too() -> None:
    """``<stack>_<key>-next`` is converge's, however briefly it lives: destroy finds it."""
    from converge.diff import diff
    from converge.planner import PlanOptions, plan

    new = SPEC.replace("app:v1", "app:v2")
    spec, observed = _observed_with(new, home_spec=SPEC, candidate=True)
    destroyed = plan(spec, diff(spec, observed), observed, PlanOptions(destroy=True))
    assert sorted(
        (a.address, a.kind, a.name) for a in destroyed.actions if a.object_kind == "service"
    ) == [
        ("service.web", "remove", "shop_web"),
        ("service.web-next", "remove", "shop_web-next"),
    ]
