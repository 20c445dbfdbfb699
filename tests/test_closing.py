"""Close codes through real servers: lost connections and refused codes."""

from __future__ import annotations

import json
import socket
import struct
import urllib.request

import pytest

from tests.support import SERVERS, serve, wait_until
from tests.wsclient import TIMEOUT, close_code, open_ws, raw_handshake


@pytest.fixture(scope='module', params=SERVERS)
def server(request):
    with serve(request.param, 'tests.apps.groups:app') as running:
        yield running


def endings(server) -> list:
    with urllib.request.urlopen(server.url + '/endings', timeout=TIMEOUT) as r:
        return json.loads(r.read())


def wait_endings(server, count: int) -> list:
    """Wait until the app has seen ``count`` connections end; return the
    close codes it saw."""
    return wait_until(
        lambda: found if len(found := endings(server)) >= count else None,
        f'{count} connections ended',
        TIMEOUT,
    )


def test_a_connection_lost_without_a_close_frame_is_1006(server):
    before = len(endings(server))
    sock = raw_handshake(server.port, '/ending')
    # Wait for the consumer to be running, then vanish without a close.
    received = b''
    while b'ready' not in received:
        received += sock.recv(64)
    sock.close()
    found = wait_endings(server, before + 1)
    assert found[before] == 1006, found


def test_a_client_lost_while_the_consumer_sends_is_1006(server):
    before = len(endings(server))
    sock = raw_handshake(server.port, '/streaming')
    sock.recv(4096)  # it is sending
    # An abortive close (RST): the server's next sends fail.
    sock.setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0)
    )
    sock.close()
    found = wait_endings(server, before + 1)
    assert found[before] == 1006, found


def test_a_close_frame_is_reported_with_its_code(server):
    before = len(endings(server))
    with open_ws(server.ws_url + '/ending') as ws:
        assert ws.recv(timeout=TIMEOUT) == 'ready'
        ws.close(4321)
    found = wait_endings(server, before + 1)
    # hypercorn reports 1006 for every close the client starts (SERVERS.md)
    assert found[before] == (1006 if server.kind == 'hypercorn' else 4321)


@pytest.mark.parametrize('code', [1011, 1001, 1013, 4000, 1000])
def test_a_refused_close_code_falls_back_to_the_private_range(server, code):
    with open_ws(server.ws_url + f'/close/{code}') as ws:
        sent, reason = close_code(ws)
    if server.kind == 'daphne' and 1000 < code < 2000:
        assert sent == 4000 + code - 1000  # never 1000
    else:
        assert sent == code
    # daphne passes no close reason on
    assert reason == ('' if server.kind == 'daphne' else 'closing as asked')
