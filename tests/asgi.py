"""Drive an ASGI application in-process for unit tests."""

from __future__ import annotations

import asyncio
from typing import Any


class Channel:
    """The receive and send callables of one scope, backed by lists."""

    def __init__(self, *incoming: dict[str, Any]) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for message in incoming:
            self.incoming.put_nowait(message)
        self.sent: list[dict[str, Any]] = []
        self.fail_on: str | None = None

    async def receive(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.incoming.get(), 5)

    async def send(self, message: dict[str, Any]) -> None:
        if self.fail_on is not None and message['type'] == self.fail_on:
            raise OSError('client gone')
        self.sent.append(message)

    def types(self) -> list[str]:
        return [message['type'] for message in self.sent]


def _scope(kind: str, path: str, extra: dict[str, Any]) -> dict[str, Any]:
    scope: dict[str, Any] = {
        'type': kind,
        'asgi': {'version': '3.0'},
        'http_version': '1.1',
        'path': path,
        'raw_path': path.encode(),
        'query_string': b'',
        'root_path': '',
        'headers': [(b'host', b'testserver')],
        'client': ('127.0.0.1', 5000),
        'server': ('testserver', 80),
    }
    scope.update(extra)
    return scope


def ws_scope(path: str = '/ws', **extra: Any) -> dict[str, Any]:
    """A websocket scope as uvicorn builds it."""
    websocket = {
        'scheme': 'ws',
        'subprotocols': [],
        'extensions': {'websocket.http.response': {}},
    }
    return _scope('websocket', path, {**websocket, **extra})


def http_scope(path: str = '/', **extra: Any) -> dict[str, Any]:
    """An HTTP GET scope as uvicorn builds it."""
    return _scope('http', path, {'scheme': 'http', 'method': 'GET', **extra})


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)
