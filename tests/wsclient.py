"""A small synchronous WebSocket client for the server tests."""

from __future__ import annotations

import socket
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

TIMEOUT = 10


def open_ws(url: str, **kw: Any) -> ClientConnection:
    """Open a WebSocket with bounded timeouts and no size limit."""
    kw.setdefault('open_timeout', TIMEOUT)
    kw.setdefault('close_timeout', TIMEOUT)
    kw.setdefault('max_size', None)
    return connect(url, **kw)


def roundtrip(url: str, message: str | bytes, **kw: Any) -> str | bytes:
    """Open a WebSocket, send ``message``; return the first reply."""
    with open_ws(url, **kw) as ws:
        ws.send(message)
        return ws.recv(timeout=TIMEOUT)


def refused_status(url: str, **kw: Any) -> int:
    """Return the HTTP status a refused handshake got; fail if accepted."""
    try:
        with open_ws(url, **kw):
            pass
    except InvalidStatus as exc:
        return exc.response.status_code
    raise AssertionError(f'handshake to {url} was accepted')


def refused_response(url: str, **kw: Any) -> Any:
    """Return the full HTTP response of a refused handshake."""
    try:
        with open_ws(url, **kw):
            pass
    except InvalidStatus as exc:
        return exc.response
    raise AssertionError(f'handshake to {url} was accepted')


def close_code(ws: ClientConnection) -> tuple[int | None, str]:
    """Wait for the server to close ``ws``; return its code and reason."""
    try:
        while True:
            ws.recv(timeout=TIMEOUT)
    except ConnectionClosed as exc:
        received = exc.rcvd
        if received is None:
            return None, ''
        return received.code, received.reason


def raw_handshake(
    port: int, path: str, sock: socket.socket | None = None
) -> socket.socket:
    """Open a WebSocket to ``path`` by hand; return the socket after 101.

    For what no client library does: frames of one's own, vanishing
    without a close frame, never reading. ``sock`` is a socket to connect
    (one made with options of its own); by default a new one.
    """
    if sock is None:
        sock = socket.create_connection(('127.0.0.1', port), TIMEOUT)
    else:
        sock.settimeout(TIMEOUT)
        sock.connect(('127.0.0.1', port))
    sock.sendall(
        f'GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n'
        'Upgrade: websocket\r\nConnection: Upgrade\r\n'
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
        'Sec-WebSocket-Version: 13\r\n\r\n'.encode()
    )
    head = b''
    while b'\r\n\r\n' not in head:
        head += sock.recv(1)
    if b' 101 ' not in head.split(b'\r\n')[0]:
        sock.close()
        raise AssertionError(f'handshake refused: {head!r}')
    return sock


def stalled_socket(port: int, path: str) -> socket.socket:
    """Complete a handshake, then never read: the slowest client there is.

    The receive buffer is made small so the kernel holds little for it.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return raw_handshake(port, path, sock)
