"""A SyncWebSocketConsumer's sends to a client that stopped reading.

Through a real uvicorn with one pool thread (tests/apps/syncstall.py):
a send that waits longer than ``asgi_ws.send_timeout`` gives the thread
back, closes the socket with 1013 and raises WebSocketDisconnect(1013).
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


def close_frame_code(sock: socket.socket) -> int | None:
    """Read the server's frames up to its close frame; return its code, or
    ``None`` when the connection ends first (uvicorn cuts a client that
    does not take its close frame: the frames it buffered are lost)."""
    pending = bytearray()

    def take(size: int) -> bytes | None:
        while len(pending) < size:
            chunk = sock.recv(1 << 20)
            if not chunk:
                return None
            pending.extend(chunk)
        data = bytes(pending[:size])
        del pending[:size]
        return data

    while (head := take(2)) is not None:
        size = head[1] & 0x7F
        if size >= 126:
            size = int.from_bytes(take(2 if size == 126 else 8) or b'', 'big')
        payload = take(size)
        if head[0] & 0x0F == 0x8 and payload is not None:
            return int.from_bytes(payload[:2], 'big')
    return None


def test_a_client_that_stops_reading_gives_the_thread_back():
    with serve('uvicorn', 'tests.apps.syncstall:app') as server:
        sock = stalled_socket(server.port, '/flood')
        try:
            started = time.monotonic()
            # the only thread is the flood's until its send gives up
            assert get(server, '/hello') == 'hello'
            assert time.monotonic() - started < 0.5 + TIMEOUT / 2
            assert get(server, '/codes') == '1013'
            # the socket is closed: a 1013 close frame, or cut by uvicorn
            assert close_frame_code(sock) in (1013, None)
        finally:
            sock.close()
