"""The STARTTLS certificate: made fresh, trusted by a client that pins it, for localhost and 127.0.0.1."""

from __future__ import annotations

import socket
import stat
import threading

import pytest

from esp_sandbox.tls import make_self_signed


@pytest.mark.parametrize("server_name", ["localhost", "127.0.0.1"])
def test_a_client_that_trusts_cert_pem_completes_a_verified_handshake(tmp_path, server_name):
    certificate = make_self_signed(tmp_path / "tls")
    server_side, client_side = socket.socketpair()
    server = certificate.server_context().wrap_socket(server_side, server_side=True, do_handshake_on_connect=False)
    handshake = threading.Thread(target=server.do_handshake)
    handshake.start()
    try:
        with certificate.client_context().wrap_socket(client_side, server_hostname=server_name) as client:
            assert client.getpeercert()["subject"] == ((("commonName", "cartpulse ESP sandbox"),),)
    finally:
        handshake.join(timeout=10)
        server.close()


def test_the_key_is_private_and_each_start_makes_a_new_one(tmp_path):
    first = make_self_signed(tmp_path)
    first_pem = first.cert_path.read_bytes()
    second = make_self_signed(tmp_path)

    assert stat.S_IMODE(second.key_path.stat().st_mode) == 0o600
    assert second.cert_path.read_bytes() != first_pem
