"""Close codes through real servers: lost connections and refused codes."""

from __future__ import annotations

import json
import socket
import struct
import time
import urllib.request

import pytest

from tests.support import SERVERS, serve
from tests.wsclient import TIMEOUT, close_code, open_ws


@pytest.fixture(scope='module', params=SERVERS)
def server(request):
    with serve(request.param, 'tests.apps.groups:app') as running:
        yield running


def endings(server) -> list:
    with urllib.request.urlopen(server.url + '/endings', timeout=TIMEOUT) as r:
        return json.loads(r.read())


def wait_endings(server, count: int) -> list:
    deadline = time.monotonic() + TIMEOUT
    while True:
        found = endings(server)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def handshake(port: int, path: str) -> socket.socket:
    sock = socket.create_connection(('127.0.0.1', port), TIMEOUT)
    sock.sendall(
        f'GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n'
        'Upgrade: websocket\r\nConnection: Upgrade\r\n'
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
        'Sec-WebSocket-Version: 13\r\n\r\n'.encode()
    )
    head = b''
    while b'\r\n\r\n' not in head:
        head += sock.recv(1)
    assert b' 101 ' in head.split(b'\r\n')[0], head
    return sock


def test_a_connection_lost_without_a_close_frame_is_1006(server):
    before = len(wait_endings(server, 0))
    sock = handshake(server.port, '/ending')
    # Wait for the consumer to be running, then vanish without a close.
    received = b''
    while b'ready' not in received:
        received += sock.recv(64)
    sock.close()
    found = wait_endings(server, before + 1)
    assert found[before] == 1006, found


def test_a_client_lost_while_the_consumer_sends_is_1006(server):
    before = len(wait_endings(server, 0))
    sock = handshake(server.port, '/streaming')
    sock.recv(4096)  # it is sending
    # An abortive close (RST): the server's next sends fail.
    sock.setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0)
    )
    sock.close()
    found = wait_endings(server, before + 1)
    assert found[before] == 1006, found


def test_a_close_frame_is_reported_with_its_code(server):
    before = len(wait_endings(server, 0))
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
