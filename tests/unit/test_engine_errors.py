"""The engine seam turns the engine's refusals into typed errors, and is a context manager."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import docker
import docker.errors
import pytest
import requests

from converge.engine import Engine
from converge.errors import (
    AlreadyExistsError,
    EngineError,
    EngineUnavailableError,
    InUseError,
    NotFoundError,
    OutOfSequenceError,
)


class _Response:
    def __init__(self, status: int) -> None:
        self.status_code = status
        self.reason = "refused"
        self.url = "http://engine/v1.41/x"


def _api_error(status: int, explanation: str) -> docker.errors.APIError:
    return docker.errors.APIError("refused", response=_Response(status), explanation=explanation)  # type: ignore[arg-type]


class _FailingClient:
    """Just enough of docker.APIClient for Engine: every call raises the given error."""

    def __init__(self, error: Exception) -> None:
        self.hooks: dict[str, list[Any]] = {"response": []}
        self.error = error
        self.closed = False

    def remove_network(self, network_id: str) -> None:
        raise self.error

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(
    ("status", "explanation", "expected"),
    [
        (500, "rpc error: code = Unknown desc = update out of sequence", OutOfSequenceError),
        (409, "rpc error: code = AlreadyExists desc = config x already exists", AlreadyExistsError),
        (500, "rpc error: code = AlreadyExists desc = name conflicts", AlreadyExistsError),
        (409, "conflict", AlreadyExistsError),
        (403, "error while removing network: network x has active endpoints", InUseError),
        (
            500,
            "rpc error: code = FailedPrecondition desc = network x is in use by task y",
            InUseError,
        ),
        (404, "network x not found", NotFoundError),
        (404, "No such service: abc", NotFoundError),
        (400, "invalid mount config", EngineError),
    ],
)
def test_refusals_become_typed_errors_that_keep_the_engine_words(
    status: int, explanation: str, expected: type[EngineError]
) -> None:
    engine = Engine(_FailingClient(_api_error(status, explanation)), "unix:///x.sock")  # type: ignore[arg-type]
    with pytest.raises(expected) as raised:
        engine.remove_network("shop_backend", "id1")
    assert type(raised.value) is expected
    assert str(raised.value) == f"failed to remove network shop_backend: {explanation}"


def test_unreachable_engine_names_address_and_cause() -> None:
    cause = ConnectionRefusedError(111, "Connection refused")
    error = requests.exceptions.ConnectionError(cause)
    engine = Engine(_FailingClient(error), "tcp://10.0.0.9:2375")  # type: ignore[arg-type]
    with pytest.raises(EngineUnavailableError, match=r"at tcp://10\.0\.0\.9:2375: .*refused"):
        engine.remove_network("n", "id")


def test_engine_is_a_context_manager_that_closes() -> None:
    client = _FailingClient(RuntimeError())
    with Engine(client, "unix:///x.sock") as engine:  # type: ignore[arg-type]
        assert engine.address == "unix:///x.sock"
    assert client.closed


def _answered(method: str, url: str, status: int, milliseconds: int) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.elapsed = timedelta(milliseconds=milliseconds)
    response.request = requests.Request(method, url, data=b'{"Env": ["PASSWORD=s3cret"]}').prepare()
    return response


def test_each_call_is_counted_and_logged_at_debug_without_query_or_body(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = Engine(_FailingClient(RuntimeError()), "fake")  # type: ignore[arg-type]
    url = "http+docker://localhost/v1.41/configs?filters=%7B%22name%22%3A+%22s3cret%22%7D"
    with caplog.at_level(logging.DEBUG, logger="converge.engine"):
        engine._count(_answered("GET", url, 200, 12))
        engine._count(
            _answered("POST", "http+docker://localhost/v1.41/services/abc/update", 500, 3)
        )
    assert [record.getMessage() for record in caplog.records] == [
        "GET /v1.41/configs?... -> 200 in 12 ms",
        "POST /v1.41/services/abc/update -> 500 in 3 ms",
    ]
    assert "s3cret" not in caplog.text
    assert engine.calls == {"GET /configs": 1, "POST /services/{id}/update": 1}


def test_an_image_looked_up_in_a_registry_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Its tag may come from a secret variable: the distribution call is logged by endpoint."""
    engine = Engine(_FailingClient(RuntimeError()), "fake")  # type: ignore[arg-type]
    url = "http+docker://localhost/v1.41/distribution/registry:5000/shop/app:s3cret/json"
    with caplog.at_level(logging.DEBUG, logger="converge.engine"):
        engine._count(_answered("GET", url, 500, 1))
    assert [record.getMessage() for record in caplog.records] == [
        "GET /v1.41/distribution/{image}/json -> 500 in 1 ms"
    ]
    assert engine.calls == {"GET /distribution/{image}/json": 1}


def test_calls_are_not_logged_unless_debug(caplog: pytest.LogCaptureFixture) -> None:
    engine = Engine(_FailingClient(RuntimeError()), "fake")  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="converge.engine"):
        engine._count(_answered("GET", "http+docker://localhost/v1.41/info", 200, 1))
    assert caplog.records == []
    assert engine.call_count == 1
