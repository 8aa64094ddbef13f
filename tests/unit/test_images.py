"""Tags pinned to digests (--resolve-image) and registry credentials (--with-registry-auth):
the pure rules, then plan and apply on the fake swarm, whose ``registry`` answers the
distribution endpoint."""

from __future__ import annotations

from dataclasses import replace
from typing import cast

import pytest
from fake_engine import FakeClock, FakeSwarm
from test_planner import BASE_SPEC, ENVIRON

from converge.actions import format_change
from converge.api import ApplyRequest, apply, make_plan
from converge.diff import FieldChange
from converge.engine import Engine
from converge.executor import ApplyOptions
from converge.images import (
    images_to_resolve,
    pinned,
    pull_failure_hint,
    registry_of,
    service_images,
    short_digest,
)
from converge.loader import LoadedSpec, load_spec
from converge.naming import STACK_IMAGE_LABEL
from converge.planner import PlanOptions
from converge.render import plan_text

FAST = ApplyOptions(clock=FakeClock(), poll_interval=0.01)
OLD = "sha256:" + "a" * 64
NEW = "sha256:" + "b" * 64


@pytest.mark.parametrize(
    ("image", "registry"),
    [
        ("mysql", "docker.io"),
        ("converge-lab/app:v1", "docker.io"),
        ("docker.io/library/mysql:8", "docker.io"),
        ("10.222.0.1:5000/shop/app:1.2", "10.222.0.1:5000"),
        ("registry.example.com/app@" + OLD, "registry.example.com"),
        ("localhost/app", "localhost"),
    ],
)
def test_the_registry_of_an_image_is_read_as_the_docker_cli_reads_it(
    image: str, registry: str
) -> None:
    assert registry_of(image) == registry


def test_a_pinned_image_keeps_its_tag_and_adds_the_digest() -> None:
    assert pinned("mysql", NEW) == f"mysql:latest@{NEW}"
    assert pinned("10.222.0.1:5000/app:1.2", NEW) == f"10.222.0.1:5000/app:1.2@{NEW}"
    assert short_digest(NEW) == "sha256:bbbbbbbbbbbb…"


def test_a_re_pushed_tag_reads_as_a_digest_change() -> None:
    change = FieldChange(("image",), f"app:1.2@{OLD}", f"app:1.2@{NEW}")
    assert format_change(change) == "image: app:1.2 (sha256:aaaaaaaaaaaa… → sha256:bbbbbbbbbbbb…)"
    unpinned = FieldChange(("image",), "app:1.2", f"app:1.2@{NEW}")
    assert format_change(unpinned) == "image: app:1.2 (no digest → sha256:bbbbbbbbbbbb…)"
    retagged = FieldChange(("image",), f"app:1.2@{OLD}", f"app:1.3@{NEW}")
    assert format_change(retagged) == f"image: app:1.2@{OLD} -> app:1.3@{NEW}"


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        (None, "apply with --with-registry-auth"),
        (False, "found no credentials for registry 10.222.0.1:5000"),
        (True, "with the credentials sent"),
    ],
)
def test_the_pull_hint_names_the_image_the_registry_and_what_to_do(
    sent: bool | None, expected: str
) -> None:
    hint = pull_failure_hint(f"10.222.0.1:5000/shop/app:1.2@{NEW}", sent)
    assert "10.222.0.1:5000/shop/app:1.2" in hint
    assert "docker login 10.222.0.1:5000" in hint
    assert expected in hint
    assert NEW not in hint


def _loaded() -> LoadedSpec:
    return load_spec([BASE_SPEC], environ=ENVIRON)


def _swarm() -> tuple[FakeSwarm, Engine]:
    swarm = FakeSwarm.recorded("empty")
    return swarm, cast(Engine, swarm)


def _images_sent(swarm: FakeSwarm) -> dict[str, tuple[str, str]]:
    return {
        service["Spec"]["Name"]: (
            service["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"],
            service["Spec"]["Labels"][STACK_IMAGE_LABEL],
        )
        for service in swarm.services()
    }


def test_tags_are_pinned_and_a_re_pushed_tag_rolls_the_services_onto_it() -> None:
    loaded = _loaded()
    swarm, engine = _swarm()
    swarm.registry = {"converge-lab/app:v1": OLD}
    assert apply(loaded, engine, ApplyRequest(apply_options=FAST)).ok
    sent = _images_sent(swarm)
    assert sent["fxrec_db"] == (f"converge-lab/app:v1@{OLD}", "converge-lab/app:v1")
    # No registry knows the others: sent as written, as docker stack deploy does.
    assert sent["fxrec_latest"] == ("mysql", "mysql")
    assert not make_plan(loaded, engine).plan.has_changes  # same digest: nothing to do

    swarm.registry = {"converge-lab/app:v1": NEW}
    result = make_plan(loaded, engine)
    moved = [action for action in result.plan.actions if action.kind == "update"]
    assert {action.name for action in moved} == {
        name for name, (image, _) in sent.items() if image.endswith(OLD)
    }
    assert all([change.field for change in action.changes] == ["image"] for action in moved)
    assert "image: converge-lab/app:v1 (sha256:aaaaaaaaaaaa… → sha256:bbbbbbbbbbbb…)" in (
        plan_text(result.plan, loaded)
    )
    assert apply(loaded, engine, ApplyRequest(apply_options=FAST)).ok
    assert _images_sent(swarm)["fxrec_db"][0] == f"converge-lab/app:v1@{NEW}"


def test_tags_no_registry_resolves_are_used_as_written_with_a_warning() -> None:
    loaded = _loaded()
    swarm, engine = _swarm()
    result = make_plan(loaded, engine)
    images = {service.image for service in loaded.spec.services.values()}
    assert result.plan.images == {key: s.image for key, s in loaded.spec.services.items()}
    assert len(result.warnings) == len(images)
    assert all("could not be resolved to a digest" in warning for warning in result.warnings)
    assert swarm.calls["GET /distribution/{id}/json"] == len(images)  # each tag asked once


def test_never_and_changed_keep_the_digest_a_service_runs() -> None:
    loaded = _loaded()
    swarm, engine = _swarm()
    swarm.registry = {"converge-lab/app:v1": OLD}
    assert apply(loaded, engine, ApplyRequest(apply_options=FAST)).ok
    swarm.registry = {"converge-lab/app:v1": NEW}
    for mode in ("never", "changed"):
        swarm.calls.clear()
        result = make_plan(loaded, engine, PlanOptions(resolve_image=mode))
        assert not result.plan.has_changes, mode
        assert result.plan.images["db"] == f"converge-lab/app:v1@{OLD}"
        assert swarm.calls["GET /distribution/{id}/json"] == 0  # unchanged images: not asked
    # The spec can ask for it too; the command line wins.
    spec = loaded.spec.model_copy(
        update={"x_converge": loaded.spec.x_converge.model_copy(update={"resolve_image": "never"})}
    )
    pinned_spec = replace(loaded, spec=spec)
    assert not make_plan(pinned_spec, engine).plan.has_changes
    assert make_plan(pinned_spec, engine, PlanOptions(resolve_image="always")).plan.has_changes


def test_changed_resolves_a_changed_image() -> None:
    loaded = _loaded()
    _, engine = _swarm()
    assert apply(loaded, engine, ApplyRequest(apply_options=FAST)).ok
    observed = make_plan(loaded, engine).observed
    spec = loaded.spec.model_copy(
        update={
            "services": {
                **loaded.spec.services,
                "db": loaded.spec.services["db"].model_copy(update={"image": "app:2"}),
            }
        }
    )
    assert images_to_resolve(spec, observed, "changed") == ["app:2"]
    assert service_images(spec, observed, {"app:2": NEW})["db"] == f"app:2@{NEW}"


def test_registry_credentials_go_with_creates_and_updates_only_when_asked() -> None:
    loaded = _loaded()
    swarm, engine = _swarm()
    swarm.credentials = {"converge-lab/app:v1": "eyJ1c2VybmFtZSI6ICJjb252ZXJnZSJ9"}
    assert apply(loaded, engine, ApplyRequest(apply_options=FAST)).ok
    assert {header for _, header in swarm.sent_auth} == {None}
    _, other = _swarm()
    asked = ApplyRequest(plan_options=PlanOptions(with_registry_auth=True), apply_options=FAST)
    fresh = cast(FakeSwarm, other)
    fresh.credentials = swarm.credentials
    assert apply(loaded, other, asked).ok
    sent = dict(fresh.sent_auth)
    assert sent["fxrec_db"] == "eyJ1c2VybmFtZSI6ICJjb252ZXJnZSJ9"
    assert sent["fxrec_latest"] is None  # the config has nothing for docker.io's mysql
    # The file can ask for it too.
    by_file = replace(
        loaded,
        spec=loaded.spec.model_copy(
            update={
                "x_converge": loaded.spec.x_converge.model_copy(update={"with_registry_auth": True})
            }
        ),
    )
    third, engine3 = _swarm()
    third.credentials = swarm.credentials
    assert apply(by_file, engine3, ApplyRequest(apply_options=FAST)).ok
    assert dict(third.sent_auth)["fxrec_db"] == "eyJ1c2VybmFtZSI6ICJjb252ZXJnZSJ9"


def test_a_rejected_private_image_names_the_registry_and_the_hint() -> None:
    loaded = _loaded()
    private = "10.222.0.1:5000/shop/app:1.2"
    spec = loaded.spec.model_copy(
        update={
            "services": {"db": loaded.spec.services["db"].model_copy(update={"image": private})}
        }
    )
    swarm, engine = _swarm()
    swarm.registry = {private: NEW}
    swarm.reject_tasks("fxrec_db", f"No such image: {private}@{NEW}")
    run = apply(replace(loaded, spec=spec), engine, ApplyRequest(apply_options=FAST))
    assert run.status == "failed"
    assert run.result is not None
    error = str(run.result.error)
    assert f"No such image: {private}@{NEW}" in error
    assert (
        f"image {private} could not be pulled from registry 10.222.0.1:5000 without "
        "credentials: if it is private, run `docker login 10.222.0.1:5000` and apply with "
        "--with-registry-auth"
    ) in error


def test_an_image_changed_by_hand_is_planned_back_whatever_the_mode() -> None:
    loaded = _loaded()
    swarm, engine = _swarm()
    swarm.registry = {"converge-lab/app:v1": OLD}
    assert apply(loaded, engine, ApplyRequest(apply_options=FAST)).ok
    # docker service update --image: the image changes, the stack's image label does not.
    service = next(s for s in swarm._services if s["Spec"]["Name"] == "fxrec_db")
    service["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] = f"converge-lab/app:v2@{NEW}"
    for mode in ("always", "changed", "never"):
        result = make_plan(loaded, engine, PlanOptions(resolve_image=mode))
        [action] = result.plan.actions
        [change] = action.changes
        # Unpinned on the spec's side (never), digests are not compared.
        before, after = (
            ("converge-lab/app:v2", "converge-lab/app:v1")
            if mode == "never"
            else (f"converge-lab/app:v2@{NEW}", f"converge-lab/app:v1@{OLD}")
        )
        assert (change.field, change.before, change.after) == ("image", before, after), mode
