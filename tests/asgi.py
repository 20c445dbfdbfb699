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


def ws_scope(path: str = '/ws', **extra: Any) -> dict[str, Any]:
    """A websocket scope as uvicorn builds it."""
    scope: dict[str, Any] = {
        'type': 'websocket',
        'asgi': {'version': '3.0'},
        'scheme': 'ws',
        'http_version': '1.1',
        'path': path,
        'raw_path': path.encode(),
        'query_string': b'',
        'root_path': '',
        'headers': [(b'host', b'testserver')],
        'client': ('127.0.0.1', 5000),
        'server': ('testserver', 80),
        'subprotocols': [],
        'extensions': {'websocket.http.response': {}},
    }
    scope.update(extra)
    return scope


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)
