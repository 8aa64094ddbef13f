"""``converge export``: a running stack written as a compose file that plans no change.

On the recorded lab swarm (tests/fixtures/recorded/): exported, loaded back and planned against
the same recording, the file plans nothing; and what equals the engine's default is left out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from fake_engine import FakeSwarm

from converge.api import export_stack
from converge.diff import diff
from converge.engine import Engine
from converge.errors import ConvergeError
from converge.export import export_compose
from converge.loader import load_spec_text
from converge.observe import state_from_engine_json
from converge.planner import plan

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "recorded"


def _recorded(stack: str = "fxrec") -> Any:
    engine = json.loads((RECORDED / "fxrec.json").read_text(encoding="utf-8"))
    return state_from_engine_json(
        stack,
        engine["manager"],
        nodes=engine["nodes"],
        networks=engine["networks"],
        services=engine["services"],
        tasks=engine["tasks"],
    )


def test_the_exported_file_plans_no_change() -> None:
    observed = _recorded()
    text = yaml.safe_dump(export_compose(observed), sort_keys=False)
    loaded = load_spec_text(text, "exported.yml", environ={})
    result = plan(loaded.spec, diff(loaded.spec, observed), observed)
    assert [action.description for action in result.actions] == []
    assert loaded.warnings == ()


def test_defaults_are_left_out_and_what_is_set_is_written() -> None:
    document = export_compose(_recorded())
    services = document["services"]
    assert set(services) == {"agent", "db", "labelled", "latest", "pinned", "web"}  # not hand
    assert services["latest"] == {
        "image": "mysql",
        "networks": {"default": None},
        "deploy": {"replicas": 0},
    }
    web = services["web"]
    assert web["environment"] == {"DBHOST": "db", "MODE": "web"}
    assert web["deploy"]["update_config"]["monitor"] == "0s"  # as stack deploy made it
    assert web["deploy"]["resources"] == {"limits": {"cpus": "0.5", "memory": "64M"},
                                          "reservations": {"memory": "16M"}}  # fmt: skip
    assert web["networks"] == {"backend": {"aliases": ["frontend"]}}
    # The image as written (stack deploy's label), not the digest it was pinned to by hand.
    assert services["pinned"]["image"] == "converge-lab/app:v2"
    assert document["networks"]["backend"] == {"attachable": True}
    assert document["volumes"] == {"data": None} or document["volumes"] == {"data": {}}
    # Nodes belong to the cluster spec: an exported stack reads them, never declares them.
    assert document["x-converge"] == {"stack": "fxrec"}


FILES_SPEC = """
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
      - source: tls
        target: tls.pem
    configs:
      - site
      - source: motd
        target: /etc/motd
        mode: 0440
  worker:
    image: converge-lab/app:v1
    secrets: [db_password]
secrets:
  db_password:
    file: ./db_password.txt
    x-converge: {keep: 2}
  api_key:
    environment: API_KEY
    labels: {team: web}
    name: shared-api-key
  tls:
    external: true
    name: company_tls
configs:
  site:
    content: "listen {{ env \\"PORT\\" }} on $${HOST}\\n"
    template_driver: golang
  motd:
    file: ./motd.txt
"""
SECRET_VALUES = {"db_password": "", "api_key": "fake-api-key-0001"}


def _applied_with_files(tmp_path: Path) -> tuple[Engine, str]:
    """A stack with secrets (one rotated twice, one named, one external) and configs,
    applied on the fake swarm; the db password's value in the end."""
    from fake_engine import FakeClock

    from converge.api import ApplyRequest, apply
    from converge.executor import ApplyOptions
    from converge.loader import load_spec

    engine = cast(Engine, FakeSwarm.recorded("empty"))
    engine.create_secret("company_tls", b"-----BEGIN CERTIFICATE-----", {})
    tmp_path.mkdir()
    spec = tmp_path / "stack.yml"
    spec.write_text(FILES_SPEC)
    (tmp_path / "motd.txt").write_text("Welcome, $USER\n")
    for password in ("first-4417\n", "second-5521\n", "third-6632\n"):
        (tmp_path / "db_password.txt").write_text(password)
        loaded = load_spec([spec], environ={"API_KEY": SECRET_VALUES["api_key"]})
        options = ApplyOptions(clock=FakeClock(), poll_interval=0.01)
        assert apply(loaded, engine, ApplyRequest(apply_options=options)).ok
    return engine, password


def test_secrets_and_configs_are_exported_and_plan_no_change_once_the_secrets_are_given(
    tmp_path: Path,
) -> None:
    from converge.api import make_plan
    from converge.loader import load_spec

    engine, password = _applied_with_files(tmp_path / "applied")
    exported = export_stack("sec", engine)
    document = yaml.safe_load(exported.text)
    assert document["secrets"] == {
        "api_key": {
            "file": "./secrets/api_key",
            "name": "shared-api-key",
            "labels": {"team": "web"},
        },
        "db_password": {"file": "./secrets/db_password", "x-converge": {"keep": 2}},
        "company_tls": {"external": True},
    }
    assert document["configs"]["site"] == {
        "content": 'listen {{ env "PORT" }} on $${HOST}\n',
        "template_driver": "golang",
    }
    assert document["configs"]["motd"] == {"content": "Welcome, $$USER\n"}
    assert document["services"]["api"]["secrets"] == [  # the engine's order: by swarm name
        {"source": "company_tls", "target": "tls.pem"},
        "db_password",
        {"source": "api_key", "target": "api.key", "uid": "1000", "gid": "1000", "mode": 0o400},
    ]
    assert "      mode: 0400\n" in exported.text  # octal, as compose files write it
    assert document["services"]["api"]["configs"] == [
        {"source": "motd", "target": "/etc/motd", "mode": 0o440},
        "site",
    ]
    assert document["services"]["worker"]["secrets"] == ["db_password"]
    assert len(exported.fill_in) == 2
    assert exported.fill_in[0].startswith(
        "secret api_key: the engine never gives a secret's value back; put it in "
        "./secrets/api_key (beside the exported file)"
    )
    assert "# - secret db_password: " in exported.text

    here = tmp_path / "exported"
    (here / "secrets").mkdir(parents=True)
    (here / "secrets" / "db_password").write_text(password)
    (here / "secrets" / "api_key").write_text(SECRET_VALUES["api_key"])
    (here / "stack.yml").write_text(exported.text)
    planned = make_plan(load_spec([here / "stack.yml"], environ={}), engine)
    assert [action.description for action in planned.plan.actions] == []
    assert planned.plan.findings == ()
    # A wrong value is a change, as for any spec: a new version.
    (here / "secrets" / "db_password").write_text("not-it")
    planned = make_plan(load_spec([here / "stack.yml"], environ={}), engine)
    assert [action.address for action in planned.plan.actions if action.kind == "create"] == [
        "secret.db_password"
    ]


def _recorded_web_using(field: str, reference: dict[str, Any]) -> Any:
    """The recorded stack, its web service referencing ``reference`` in ``field``."""
    engine = json.loads((RECORDED / "fxrec.json").read_text(encoding="utf-8"))
    web = next(s for s in engine["services"] if s["Spec"]["Name"] == "fxrec_web")
    web["Spec"]["TaskTemplate"]["ContainerSpec"][field] = [reference]
    return state_from_engine_json(
        "fxrec", engine["manager"], nodes=engine["nodes"], networks=engine["networks"],
        services=engine["services"], tasks=engine["tasks"],
    )  # fmt: skip


def test_a_reference_to_a_secret_the_swarm_does_not_list_is_an_error() -> None:
    reference = {"SecretName": "gone", "SecretID": "abc", "File": {"Name": "gone"}}
    observed = _recorded_web_using("Secrets", reference)
    with pytest.raises(ConvergeError, match="secret gone is used by a service but not in the"):
        export_compose(observed)


def test_a_config_used_as_a_credential_spec_is_refused() -> None:
    reference = {"ConfigName": "gmsa", "ConfigID": "abc", "Runtime": {}}
    observed = _recorded_web_using("Configs", reference)
    with pytest.raises(ConvergeError, match="config gmsa is used as a credential spec"):
        export_compose(observed)


def test_export_stack_reads_the_swarm_and_writes_yaml() -> None:
    text = export_stack("fxrec", cast(Engine, FakeSwarm.recorded("fxrec"))).text
    assert text.startswith("# Exported by converge from the running stack fxrec")
    assert yaml.safe_load(text)["x-converge"]["stack"] == "fxrec"
