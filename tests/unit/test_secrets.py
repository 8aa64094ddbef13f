"""Secrets and configs on the fake swarm: names and references as stack deploy makes them,
rotation, retention, the fingerprint, unverifiable secrets, sources, destroy and masking."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, cast

import pytest
from fake_engine import FakeClock, FakeSwarm

from converge.api import (
    ApplyRequest,
    apply,
    destroy,
    make_plan,
    resolved_spec_hash,
    save_plan,
)
from converge.engine import Engine
from converge.engine_spec import service_engine_spec
from converge.errors import SourceError
from converge.executor import ApplyOptions
from converge.fileobjects import fingerprint, fingerprint_matches, version_name
from converge.loader import LoadedSpec, load_spec
from converge.naming import FINGERPRINT_LABEL, STACK_LABEL, VERSION_OF_LABEL
from converge.planner import PlanOptions
from converge.render import plan_document, plan_markdown, plan_text

FAST = ApplyOptions(clock=FakeClock(), poll_interval=0.01)
STACK = "sec"
PASSWORD = "fake-db-password-4417"

SPEC = """
x-converge:
  stack: sec
services:
  api:
    image: converge-lab/app:v1
    secrets:
      - db_password
      - source: api_key
        target: api.key
        uid: "1000"
        gid: "1000"
        mode: 0400
    configs: [site]
  worker:
    image: converge-lab/app:v1
    secrets: [db_password]
secrets:
  db_password:
    file: ./db_password.txt
  api_key:
    environment: API_KEY
    labels: {team: web}
configs:
  site:
    content: "listen {{ env \\"PORT\\" }}\\n"
    template_driver: golang
"""


def _write(tmp_path: Path, password: str = PASSWORD, keep: int | None = None) -> Path:
    (tmp_path / "db_password.txt").write_text(password + "\n")
    text = SPEC
    if keep is not None:
        text = text.replace(
            "    file: ./db_password.txt\n",
            f"    file: ./db_password.txt\n    x-converge: {{keep: {keep}}}\n",
        )
    path = tmp_path / "stack.yml"
    path.write_text(text)
    return path


def _load(path: Path, api_key: str = "fake-api-key-0001") -> LoadedSpec:
    return load_spec([path], environ={"API_KEY": api_key})


def _swarm() -> tuple[FakeSwarm, Engine]:
    swarm = FakeSwarm.recorded("empty")
    return swarm, cast(Engine, swarm)


def _apply(loaded: LoadedSpec, engine: Engine, **options: Any) -> None:
    run = apply(loaded, engine, ApplyRequest(PlanOptions(**options), apply_options=FAST))
    assert run.ok, run.result


def _secrets(engine: Engine) -> dict[str, dict[str, Any]]:
    return {item["Spec"]["Name"]: item for item in engine.secrets()}


def _service(engine: Engine, name: str) -> dict[str, Any]:
    return next(item for item in engine.services() if item["Spec"]["Name"] == name)


def test_references_are_sent_as_stack_deploy_sends_them(tmp_path: Path) -> None:
    spec = _load(_write(tmp_path)).spec
    container = service_engine_spec(spec, "api")["TaskTemplate"]["ContainerSpec"]
    assert container["Secrets"] == [
        {
            "File": {"Name": "api.key", "UID": "1000", "GID": "1000", "Mode": 0o400},
            "SecretID": "",
            "SecretName": "sec_api_key",
        },
        {
            "File": {"Name": "db_password", "UID": "0", "GID": "0", "Mode": 0o444},
            "SecretID": "",
            "SecretName": "sec_db_password",
        },
    ]
    assert container["Configs"] == [
        {
            "File": {"Name": "site", "UID": "0", "GID": "0", "Mode": 0o444},
            "ConfigID": "",
            "ConfigName": "sec_site",
        }
    ]


def test_first_apply_creates_them_under_stack_deploys_names_and_then_plans_nothing(
    tmp_path: Path,
) -> None:
    loaded = _load(_write(tmp_path))
    _, engine = _swarm()
    planned = make_plan(loaded, engine)
    files = [a for a in planned.plan.actions if a.object_kind in ("secret", "config")]
    assert [action.description for action in files] == [
        "+ config site (sec_site): create",
        "+ secret api_key (sec_api_key): create",
        "+ secret db_password (sec_db_password): create",
    ]
    _apply(loaded, engine)
    secrets = _secrets(engine)
    assert set(secrets) == {"sec_db_password", "sec_api_key"}
    labels = secrets["sec_api_key"]["Spec"]["Labels"]
    assert labels[STACK_LABEL] == STACK
    assert labels["team"] == "web"
    assert labels[VERSION_OF_LABEL] == "api_key"
    assert fingerprint_matches(labels[FINGERPRINT_LABEL], b"fake-api-key-0001")
    assert "fake-api-key-0001" not in json.dumps(labels)
    config = next(item for item in engine.configs() if item["Spec"]["Name"] == "sec_site")
    assert base64.b64decode(config["Spec"]["Data"]) == b'listen {{ env "PORT" }}\n'
    assert config["Spec"]["Templating"] == {"Name": "golang"}
    refs = _service(engine, "sec_api")["Spec"]["TaskTemplate"]["ContainerSpec"]["Secrets"]
    assert {ref["SecretName"]: ref["SecretID"] for ref in refs} == {
        name: secrets[name]["ID"] for name in ("sec_api_key", "sec_db_password")
    }
    assert not make_plan(loaded, engine).plan.has_changes


def test_a_changed_secret_gets_a_new_version_the_services_roll_and_old_ones_go(
    tmp_path: Path,
) -> None:
    _, engine = _swarm()
    path = _write(tmp_path, keep=1)
    _apply(_load(path), engine)
    _write(tmp_path, "second-password-5521", keep=1)
    rotated = _load(path)
    planned = make_plan(rotated, engine)
    second = version_name(rotated.spec, "secret", "db_password", b"second-password-5521\n")
    descriptions = [action.description for action in planned.plan.actions]
    assert f"+ secret db_password ({second}): new version; 2 services roll" in descriptions
    assert {action.key for action in planned.plan.actions if action.kind == "update"} == {
        "api",
        "worker",
    }
    assert not any(action.kind == "remove" for action in planned.plan.actions)
    _apply(rotated, engine)
    assert {"sec_db_password", second} <= set(_secrets(engine))  # the old one is kept (keep 1)
    refs = _service(engine, "sec_worker")["Spec"]["TaskTemplate"]["ContainerSpec"]["Secrets"]
    assert [ref["SecretName"] for ref in refs] == [second]
    assert not make_plan(rotated, engine).plan.has_changes
    # A third value: the second is kept for rollback, the first (stack deploy's name) removed.
    _write(tmp_path, "third-password-6632", keep=1)
    third_spec = _load(path)
    third = version_name(third_spec.spec, "secret", "db_password", b"third-password-6632\n")
    planned = make_plan(third_spec, engine)
    removals = [action.description for action in planned.plan.actions if action.kind == "remove"]
    assert removals == [
        "- secret db_password (sec_db_password): remove an old version no service uses"
    ]
    _apply(third_spec, engine)
    names = set(_secrets(engine))
    assert {second, third} <= names
    assert "sec_db_password" not in names
    assert not make_plan(third_spec, engine).plan.has_changes


def test_a_secret_without_a_fingerprint_is_left_alone_unless_rotated(tmp_path: Path) -> None:
    _, engine = _swarm()
    # As docker stack deploy makes it: the stack's label, no fingerprint.
    engine.create_secret("sec_db_password", b"by-hand", {STACK_LABEL: STACK})
    loaded = _load(_write(tmp_path))
    planned = make_plan(loaded, engine)
    assert not any(action.address == "secret.db_password" for action in planned.plan.actions)
    (warning,) = [item for item in planned.plan.findings if item.address == "secret.db_password"]
    assert "cannot be compared" in warning.message
    assert "--rotate db_password" in warning.message
    rotated = make_plan(loaded, engine, PlanOptions(rotate=("db_password",)))
    (action,) = [item for item in rotated.plan.actions if item.address == "secret.db_password"]
    assert action.kind == "create"
    assert action.name.startswith("sec_db_password_")


def test_an_unowned_secret_of_the_same_name_is_a_collision(tmp_path: Path) -> None:
    _, engine = _swarm()
    engine.create_secret("sec_db_password", b"someone else's", {})
    planned = make_plan(_load(_write(tmp_path)), engine)
    assert any(
        item.address == "secret.db_password" and item.code == "collision"
        for item in planned.plan.errors
    )


def test_destroy_removes_owned_secrets_and_configs_after_services_never_others(
    tmp_path: Path,
) -> None:
    _, engine = _swarm()
    engine.create_secret("unrelated", b"keep me", {})
    engine.create_secret("other_db", b"keep me too", {STACK_LABEL: "other"})
    loaded = _load(_write(tmp_path))
    _apply(loaded, engine)
    planned = make_plan(loaded, engine, PlanOptions(destroy=True))
    phases = [(action.phase.name, action.object_kind) for action in planned.plan.actions]
    assert phases.index(("PRUNE_FILES", "secret")) > phases.index(("PRUNE_SERVICES", "service"))
    run = destroy(loaded, engine, ApplyRequest(apply_options=FAST))
    assert run.ok
    assert set(_secrets(engine)) == {"unrelated", "other_db"}
    assert [item["Spec"]["Name"] for item in engine.configs()] == []


def test_sources_that_fail_stop_before_any_write(tmp_path: Path) -> None:
    path = _write(tmp_path)
    text = path.read_text().replace(
        "    file: ./db_password.txt\n",
        "    x-converge:\n      command: echo no access >&2; exit 3\n",
    )
    path.write_text(text)
    swarm, engine = _swarm()
    with pytest.raises(SourceError, match=r"secret db_password: the command .* exit code 3"):
        apply(_load(path), engine, ApplyRequest(apply_options=FAST))
    assert swarm.write_count == 0


@pytest.mark.parametrize(
    ("what", "size", "error"),
    [
        ("secret api_key", 0, r"^secret api_key: empty; the engine refuses an empty secret"),
        ("secret db_password", 500 * 1024, r"^secret db_password: 500 KiB; the engine refuses "),
        (
            "config site",
            1000 * 1024,
            r"^config site: 1000.0 KiB; the engine refuses a config of 1000 KiB or",
        ),
    ],
)
def test_contents_the_engine_would_refuse_stop_before_any_write(
    tmp_path: Path, what: str, size: int, error: str
) -> None:
    """Swarm refuses an empty secret or config, a secret of 500 KiB and more, a config of
    1000 KiB and more, only when it is created, after nodes and networks were written."""
    big = "x" * (size - 1) if what == "secret db_password" else PASSWORD  # + a newline
    path = _write(tmp_path, password=big)
    api_key = "" if what == "secret api_key" else "fake-api-key-0001"
    if what == "config site":
        path.write_text(path.read_text().replace('content: "listen', f'content: "{"x" * size}'))
    swarm, engine = _swarm()
    with pytest.raises(SourceError, match=error):
        apply(_load(path, api_key=api_key), engine, ApplyRequest(apply_options=FAST))
    assert swarm.write_count == 0


def test_a_command_source_gives_its_standard_output(tmp_path: Path) -> None:
    path = _write(tmp_path)
    path.write_text(
        path.read_text().replace(
            "    file: ./db_password.txt\n",
            "    x-converge:\n      command: [printf, from-a-command-7781]\n",
        )
    )
    _, engine = _swarm()
    _apply(_load(path), engine)
    labels = _secrets(engine)["sec_db_password"]["Spec"]["Labels"]
    assert fingerprint_matches(labels[FINGERPRINT_LABEL], b"from-a-command-7781")


def test_the_fingerprint_is_salted_and_checks_only_its_value() -> None:
    first, second = fingerprint(b"hunter2"), fingerprint(b"hunter2")
    assert first != second  # a fresh salt each time: equal values do not look equal
    assert fingerprint_matches(first, b"hunter2")
    assert fingerprint_matches(second, b"hunter2")
    assert not fingerprint_matches(first, b"hunter3")
    assert not fingerprint_matches("sha256$abc", b"hunter2")
    assert first.startswith("scrypt$16384$8$1$")


def test_no_output_shows_a_secret_value_and_the_digest_is_no_plain_hash(tmp_path: Path) -> None:
    _, engine = _swarm()
    path = _write(tmp_path)
    _apply(_load(path), engine)
    _write(tmp_path, "rotated-password-9090")
    loaded = _load(path, api_key="rotated-api-key-0002")
    planned = make_plan(loaded, engine)
    save_plan(planned, tmp_path / "plan.json")
    outputs = [
        plan_text(planned.plan, planned.loaded),
        json.dumps(plan_document(planned.plan, planned.loaded)),
        plan_markdown(planned.plan, planned.loaded),
        (tmp_path / "plan.json").read_text(),
    ]
    for value in (PASSWORD, "rotated-password-9090", "fake-api-key-0001", "rotated-api-key-0002"):
        assert not any(value in output for output in outputs), value
    import hashlib

    plain = hashlib.sha256(planned.loaded.spec.model_dump_json().encode()).hexdigest()
    assert planned.plan.spec_digest == resolved_spec_hash(planned.loaded) != plain


def test_a_targeted_service_brings_its_new_versions_but_no_removal(tmp_path: Path) -> None:
    _, engine = _swarm()
    path = _write(tmp_path, keep=0)
    _apply(_load(path), engine)
    _write(tmp_path, "targeted-password-1212", keep=0)
    planned = make_plan(_load(path), engine, PlanOptions(targets=("service.worker",)))
    assert [(action.address, action.kind) for action in planned.plan.actions] == [
        ("secret.db_password", "create"),
        ("service.worker", "update"),
    ]


def test_a_saved_plan_is_refused_when_a_secret_changed_since(tmp_path: Path) -> None:
    from converge.api import check_saved_plan, read_saved_plan
    from converge.errors import PlanError

    _, engine = _swarm()
    path = _write(tmp_path)
    _apply(_load(path), engine)
    _write(tmp_path, "planned-password-3434")
    save_plan(make_plan(_load(path), engine), tmp_path / "plan.json")
    _write(tmp_path, "changed-after-planning-5656")
    with pytest.raises(PlanError, match=r"the spec .* changed since the plan was made"):
        check_saved_plan(read_saved_plan(tmp_path / "plan.json"), make_plan(_load(path), engine))


def test_after_rotating_a_stack_deploy_secret_a_change_rotates_again(tmp_path: Path) -> None:
    # The unverifiable first version stays as the kept one: it must not stop the next rotation
    # nor be picked again.
    _, engine = _swarm()
    engine.create_secret("sec_db_password", b"by-hand", {STACK_LABEL: STACK})
    path = _write(tmp_path)
    _apply(_load(path), engine, rotate=("db_password",))
    _write(tmp_path, "after-rotation-7878")
    loaded = _load(path)
    planned = make_plan(loaded, engine)
    actions = [item for item in planned.plan.actions if item.address == "secret.db_password"]
    assert [(item.kind, item.name, item.reason) for item in actions] == [
        (
            "create",
            version_name(loaded.spec, "secret", "db_password", b"after-rotation-7878\n"),
            "new version; 2 services roll",
        ),
        ("remove", "sec_db_password", "remove an old version no service uses"),
    ]
    _apply(loaded, engine)
    assert not make_plan(loaded, engine).plan.has_changes


def test_an_age_source_is_decrypted_and_a_wrong_identity_names_the_secret(tmp_path: Path) -> None:
    import pyrage

    from converge.sources import read_sources

    identity, wrong = pyrage.x25519.Identity.generate(), pyrage.x25519.Identity.generate()
    (tmp_path / "token.age").write_bytes(pyrage.encrypt(b"age-token-9191", [identity.to_public()]))
    (tmp_path / "id.txt").write_text(f"# created: now\n{identity}\n")
    (tmp_path / "wrong.txt").write_text(f"{wrong}\n")
    path = _write(tmp_path)
    age = "    x-converge:\n      age: {{file: ./token.age, identity: ./{}}}\n"
    path.write_text(path.read_text().replace("    file: ./db_password.txt\n", age.format("id.txt")))
    assert read_sources(_load(path))["secret", "db_password"] == b"age-token-9191"
    path.write_text(path.read_text().replace("./id.txt", "./wrong.txt"))
    with pytest.raises(SourceError, match=r"^secret db_password: cannot decrypt .*token\.age"):
        read_sources(_load(path))
    path.write_text(path.read_text().replace("./wrong.txt", "./missing.txt"))
    with pytest.raises(SourceError, match=r"^secret db_password: cannot read the identity file"):
        read_sources(_load(path))


def test_drift_names_a_changed_secret_without_its_value(tmp_path: Path) -> None:
    from converge.api import check_drift

    _, engine = _swarm()
    path = _write(tmp_path, keep=0)
    _apply(_load(path), engine)
    _write(tmp_path, "drifted-password-2323", keep=0)
    report = check_drift(_load(path), engine)
    messages = [item.message for item in report.sync_findings if item.address.startswith("secret")]
    assert messages == [
        "secret db_password: the spec's content differs from the version the services use",
        "sec_db_password is an old version of secret db_password beyond those kept",
    ]
    assert report.exit_code() == 2


def test_drift_reads_a_new_version_and_an_old_one_from_the_plan_not_its_reasons(
    tmp_path: Path,
) -> None:
    from dataclasses import replace
    from datetime import UTC, datetime

    from converge.drift import drift_report

    _, engine = _swarm()
    path = _write(tmp_path, keep=0)
    _apply(_load(path), engine)
    _write(tmp_path, "drifted-password-2323", keep=0)
    planned = make_plan(_load(path), engine)
    # An action's reason is for humans: worded otherwise, the plan means the same.
    actions = tuple(replace(action, reason="(reworded)") for action in planned.plan.actions)
    reworded = replace(planned.plan, actions=actions)
    report = drift_report(planned.loaded, reworded, planned.observed, checked_at=datetime.now(UTC))
    messages = [item.message for item in report.sync_findings if item.address.startswith("secret")]
    assert messages == [
        "secret db_password: the spec's content differs from the version the services use",
        "sec_db_password is an old version of secret db_password beyond those kept",
    ]


def test_a_secrets_content_is_scrubbed_from_any_text(tmp_path: Path) -> None:
    from converge.masking import Masker
    from converge.sources import with_sources

    loaded = with_sources(_load(_write(tmp_path)))
    text = f"engine said: bad value {PASSWORD} and fake-api-key-0001"
    assert Masker(loaded).text(text) == "engine said: bad value (sensitive) and (sensitive)"
    assert Masker(_load(_write(tmp_path))).text(text) == text  # nothing read, nothing known


def test_converges_own_records_are_never_taken_for_the_stacks_configs(tmp_path: Path) -> None:
    from converge.naming import graph_record_name, lock_name

    _, engine = _swarm()
    for name in (lock_name(STACK), graph_record_name(STACK)):
        engine.create_config(name, b"record", {STACK_LABEL: STACK})
    loaded = _load(_write(tmp_path))
    planned = make_plan(loaded, engine, PlanOptions(prune=True))
    assert [a.name for a in planned.plan.actions if a.object_kind == "config"] == ["sec_site"]
    assert not [f for f in planned.plan.findings if f.address.startswith("config.")]
    destroyed = make_plan(loaded, engine, PlanOptions(destroy=True))
    assert not [a for a in destroyed.plan.actions if a.object_kind == "config"]
