"""A small synchronous WebSocket client for the server tests."""

from __future__ import annotations

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
