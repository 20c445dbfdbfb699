"""A SyncWebSocketConsumer's sends to a client that stopped reading.

Through a real uvicorn with one pool thread (tests/apps/syncstall.py):
a send that waits longer than ``asgi_ws.send_timeout`` gives the thread
back, closes the socket with 1013 and raises WebSocketDisconnect(1013);
the close frame reaches the client once it reads again.
"""

from __future__ import annotations

import socket
import time
import urllib.request

from tests.support import ServerProcess, serve
from tests.wsclient import TIMEOUT, stalled_socket


def get(server: ServerProcess, path: str) -> str:
    with urllib.request.urlopen(server.url + path, timeout=TIMEOUT) as r:
        return str(r.read().decode())


def close_frame_code(sock: socket.socket) -> int:
    """Read the server's frames up to its close frame; return its code."""
    pending = bytearray()

    def take(size: int) -> bytes:
        while len(pending) < size:
            chunk = sock.recv(1 << 20)
            assert chunk, 'the connection ended before a close frame'
            pending.extend(chunk)
        data = bytes(pending[:size])
        del pending[:size]
        return data

    while True:
        first, second = take(2)
        size = second & 0x7F
        if size >= 126:
            size = int.from_bytes(take(2 if size == 126 else 8), 'big')
        payload = take(size)
        if first & 0x0F == 0x8:
            return int.from_bytes(payload[:2], 'big')


def test_a_client_that_stops_reading_gives_the_thread_back():
    with serve('uvicorn', 'tests.apps.syncstall:app') as server:
        sock = stalled_socket(server.port, '/flood')
        try:
            started = time.monotonic()
            # the only thread is the flood's until its send gives up
            assert get(server, '/hello') == 'hello'
            assert time.monotonic() - started < 0.5 + TIMEOUT / 2
            assert get(server, '/codes') == '1013'
            # the client reads again within send_timeout: it hears the close
            assert close_frame_code(sock) == 1013
        finally:
            sock.close()
