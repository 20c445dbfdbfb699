"""A test application for group history, served as
``tests.apps.history:app``.

The environment picks the backend (``BROADCAST_URL``, default
``memory://``) and the history kept by every group (``HISTORY_SIZE``,
default 1000, and ``HISTORY_TTL``). ``/follow/{group}?since=P`` joins the
group (with ``since`` when given) and forwards each group message as
``{"p": position, "m": message}`` behind the replay, then
``{"joined": true|false}`` once the join returned; text it receives is a
command: ``publish N FROM`` publishes ``{"n": FROM}`` ... ``{"n":
FROM+N-1}`` to the group, in order, and answers ``{"published": N}``
through the same queue. ``/plain/{group}`` joins without a hook: group
messages reach the client as they were published. ``/sync/{group}`` is a
:class:`~pyramid_asgi_ws.SyncWebSocketConsumer` that joins with
``since`` and sends ``{"joined": ...}``.
"""

from __future__ import annotations

import os
from typing import Any

from pyramid.config import Configurator

from pyramid_asgi_ws import SyncWebSocketConsumer, WebSocket, WebSocketConsumer
from pyramid_asgi_ws.syncconsumer import SyncWebSocket


class Follow(WebSocketConsumer):
    """Joins the group in the path, replaying from ``?since=``."""

    async def on_connect(self, ws: WebSocket) -> None:
        await ws.accept()
        since = ws.request.params.get('since')
        joined = await ws.join(ws.matchdict['group'], since=since)
        ws.push({'joined': joined})

    async def on_receive(self, ws: WebSocket, data: str) -> None:
        _, count, start = data.split()
        for number in range(int(start), int(start) + int(count)):
            await ws.broadcast(ws.matchdict['group'], {'n': number})
        ws.push({'published': int(count)})

    def on_group_message(
        self, group: str, message: Any, position: str | None
    ) -> None:
        # Queued behind the messages before it: the order holds.
        self.ws.push({'p': position, 'm': message})


class SyncFollow(SyncWebSocketConsumer):
    """Joins from a pool thread, replaying from ``?since=``."""

    def on_connect(self, ws: SyncWebSocket) -> None:
        ws.accept()
        since = ws.request.params.get('since')
        joined = ws.join(ws.matchdict['group'], since=since)
        ws.send_json({'joined': joined})


async def plain(ws: WebSocket) -> None:
    await ws.accept()
    await ws.join(ws.matchdict['group'])
    await ws.send_text('joined')
    async for _ in ws.iter_text():
        pass


def main(environ: Any = None) -> Any:
    environ = os.environ if environ is None else environ
    settings = {
        'asgi_ws.broadcast_url': environ.get('BROADCAST_URL', 'memory://'),
        'asgi_ws.check_origin': 'false',
        'asgi_ws.history_size': environ.get('HISTORY_SIZE', '1000'),
        'asgi_ws.history_ttl': environ.get('HISTORY_TTL', ''),
        'asgi_ws.history': 'nohistory:* off',
        # bursts of thousands of live messages: room for them (the tests
        # are about order, not about slow clients)
        'asgi_ws.send_queue_size': '8192',
    }
    with Configurator(settings=settings) as config:
        config.include('pyramid_asgi_ws')
        config.add_asgi_consumer('/follow/{group}', Follow)
        config.add_asgi_consumer('/plain/{group}', plain)
        config.add_asgi_consumer('/sync/{group}', SyncFollow)
        return config.make_asgi_app()


app = main()
