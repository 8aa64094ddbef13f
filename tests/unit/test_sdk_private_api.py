"""The docker SDK's private helpers that ``converge/engine.py`` calls, pinned.

``APIClient`` has no public call that sends a complete ServiceSpec, NetworkCreate or
ContainerCreate body as is, so the engine posts them with ``_url``, ``_post_json`` and
``_result``; ``_get`` asks the distribution endpoint with exactly the registry credentials
converge chose (the public ``inspect_distribution`` sends the client config's own).
Private methods may change in any release: pyproject.toml bounds ``docker<8``, and these tests
fail loudly, naming what moved, if an allowed release changes them anyway.
"""

from __future__ import annotations

import inspect
import json
import socketserver
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

# What engine.py relies on: the signature each helper has had since docker 2.0.
EXPECTED = {
    "_url": "(self, pathfmt, *args, **kwargs)",
    "_post_json": "(self, url, data, **kwargs)",
    "_result": "(self, response, json=False, binary=False)",
    "_get": "(self, *args, **kwargs)",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_private_helpers_keep_their_signatures(name: str) -> None:
    helper = getattr(docker.APIClient, name, None)
    assert helper is not None, (
        f"docker {docker.__version__}: APIClient.{name} is gone, and converge/engine.py calls "
        "it to send whole specs; port the engine's writes before allowing this docker release"
    )
    actual = str(inspect.signature(helper))
    assert actual == EXPECTED[name], (
        f"docker {docker.__version__}: APIClient.{name}{actual} was {name}{EXPECTED[name]}; "
        "check every call in converge/engine.py before allowing this docker release"
    )


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class _FakeEngine(BaseHTTPRequestHandler):
    """Answers POSTs as the Engine API would: the request echoed back, or an error."""

    requests: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append(
            {"path": self.path, "type": self.headers["Content-Type"], "body": body}
        )
        if "/update" in self.path:
            status, answer = 500, {"message": "rpc error: update out of sequence"}
        else:
            status, answer = 201, {"ID": "svc1", "Warnings": None}
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def client() -> Iterator[tuple[docker.APIClient, list[dict[str, Any]]]]:
    """A low-level client talking to a fake engine on a unix socket, as to a real one."""
    received: list[dict[str, Any]] = []
    handler = type("Handler", (_FakeEngine,), {"requests": received})
    with tempfile.TemporaryDirectory(prefix="cvsdk") as directory:
        socket_path = Path(directory) / "docker.sock"
        with _UnixHTTPServer(str(socket_path), handler) as server:
            thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
            thread.start()
            api = docker.APIClient(base_url=f"unix://{socket_path}", version="1.41", timeout=5)
            try:
                yield api, received
            finally:
                api.close()
                server.shutdown()
                thread.join()


def test_the_helpers_post_a_whole_body_and_read_the_answer(
    client: tuple[docker.APIClient, list[dict[str, Any]]],
) -> None:
    api, received = client
    spec = {"Name": "fx_web", "Labels": {"a": "b"}, "Mode": {"Replicated": {"Replicas": 2}}}

    url = api._url("/services/create")
    result = api._result(api._post_json(url, data=spec), json=True)

    assert result == {"ID": "svc1", "Warnings": None}
    assert received == [
        {"path": "/v1.41/services/create", "type": "application/json", "body": spec}
    ]


def test_the_helpers_quote_ids_pass_params_and_raise_the_engines_error(
    client: tuple[docker.APIClient, list[dict[str, Any]]],
) -> None:
    api, received = client

    url = api._url("/services/{0}/update", "abc 1")
    response = api._post_json(url, data={"Name": "fx_web"}, params={"version": 7})
    with pytest.raises(docker.errors.APIError) as raised:
        api._result(response, json=True)

    assert received[0]["path"] == "/v1.41/services/abc%201/update?version=7"
    assert "update out of sequence" in str(raised.value.explanation)


def test_the_ssh_adapter_keeps_the_host_it_dials_in_ssh_host() -> None:
    # engine.connect rewrites it so that ssh:// without a port keeps ~/.ssh/config's Port.
    # Its ssh adapter is brought in as connect does: converge.engine, if another test imported
    # it first, had docker imported with paramiko hidden.
    from converge.engine import _enable_ssh

    _enable_ssh()
    client = docker.APIClient(
        base_url="ssh://someone@lab-node", version="1.41", use_ssh_client=True
    )
    try:
        dialled = getattr(getattr(client, "_custom_adapter", None), "ssh_host", None)
    finally:
        client.close()
    assert dialled == "someone@lab-node:22", (
        f"docker {docker.__version__}: the ssh adapter no longer keeps its target in "
        "_custom_adapter.ssh_host; check converge/engine.py's _ssh_host_as_written"
    )
