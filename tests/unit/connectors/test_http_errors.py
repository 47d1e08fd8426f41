"""Which failed calls may have reached the provider: real sockets on loopback, no mocks."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import requests

from connectors.errors import OutcomeUnknown, TransientError
from connectors.esp.http import post


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield server
    server.close()


def _url(server: socket.socket) -> str:
    return f"http://127.0.0.1:{server.getsockname()[1]}/v3/mail/send"


def _serve_once(server: socket.socket, answer: bytes | None) -> threading.Thread:
    """Read one request, then answer ``answer`` (or close without a word)."""

    def serve() -> None:
        connection, _ = server.accept()
        with connection:
            connection.recv(65536)
            if answer is not None:
                connection.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_nobody_listening_is_safe_to_retry():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(TransientError) as info, requests.Session() as session:
        post(session, "sendgrid", f"http://127.0.0.1:{port}/", json_body={}, timeout_s=2)
    assert not isinstance(info.value, OutcomeUnknown)


def test_no_answer_after_sending_is_an_unknown_outcome(listener):
    _serve_once(listener, None)
    with pytest.raises(OutcomeUnknown, match="after sending"), requests.Session() as session:
        post(session, "sendgrid", _url(listener), json_body={"a": 1}, timeout_s=2)


def test_a_slow_answer_after_sending_is_an_unknown_outcome(listener):
    held: list[socket.socket] = []  # the connection stays open, silent, until the test ends
    threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True).start()
    with pytest.raises(OutcomeUnknown, match="no answer within"), requests.Session() as session:
        post(session, "sendgrid", _url(listener), json_body={"a": 1}, timeout_s=0.5)
    for connection in held:
        connection.close()


@pytest.mark.parametrize(("status", "unknown"), [(500, True), (503, True), (429, False), (408, False)])
def test_server_errors_are_unknown_outcomes_but_rate_limits_are_not(listener, status, unknown):
    _serve_once(listener, f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
    with pytest.raises(TransientError) as info, requests.Session() as session:
        post(session, "sendgrid", _url(listener), json_body={}, timeout_s=2)
    assert isinstance(info.value, OutcomeUnknown) is unknown
