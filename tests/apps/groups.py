"""A test application for groups, publishing and presence.

Served as ``tests.apps.groups:app``. The environment picks the backend
(``BROADCAST_URL``, default ``memory://``) and whether a background task
publishes ``{"tick": n}`` to the group ``ticker`` (``GROUPS_TICKER=1``).

``/listen/{group}`` (and ``/slow``, ``/closing``, ``/hooked``) joins the
group and sends ``joined`` once it is in; ``/ending`` records the close
code of each connection (``GET /endings``), ``/streaming`` too while it
sends; ``/close/{code}`` closes with
that code. ``/groups?name=alice`` takes
JSON commands and answers each with a JSON
object holding ``ok`` (the command's name) or ``error``; group messages
arrive on the same socket in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

from pyramid.config import Configurator
from pyramid.response import Response

from pyramid_asgi_ws import (
    ApplicationShutdown,
    ApplicationStartup,
    WebSocket,
    WebSocketConsumer,
    WebSocketDisconnect,
)
from pyramid_asgi_ws.broadcast import BroadcastError, get_broadcaster


def as_message(kind: str, value: Any) -> Any:
    """Turn a command's ``message`` into text, bytes or a JSON value."""
    if kind == 'bytes':
        return str(value).encode('utf-8')
    if kind == 'text':
        return str(value)
    return value


async def run_command(ws: WebSocket, command: dict[str, Any]) -> Any:
    op = command['op']
    group = command.get('group', '')
    broadcaster = get_broadcaster(ws.scope['registry'])
    if op == 'join':
        await ws.join(group)
    elif op == 'leave':
        await ws.leave(group)
    elif op == 'publish':
        message = as_message(command.get('kind', 'json'), command['message'])
        await ws.broadcast(group, message)
    elif op == 'flood':
        # ``count`` text messages of ``size`` characters, numbered.
        for number in range(command['count']):
            head = f'{number:06d}:'
            await ws.broadcast(group, head.ljust(command['size'], 'x'))
    elif op == 'members':
        return {'ok': op, 'members': await broadcaster.members(group)}
    elif op == 'stats':
        return {
            'ok': op,
            'stats': broadcaster.stats(),
            'id': broadcaster.connection_id(ws),
            'groups': sorted(ws.groups),
        }
    return {'ok': op}


async def groups(ws: WebSocket) -> None:
    name = ws.request.params.get('name')
    if name:
        ws.scope['asgi_ws.presence'] = {'name': name}
    await ws.accept()
    async for command in ws.iter_json():
        try:
            reply = await run_command(ws, command)
        except BroadcastError as exc:
            reply = {'error': str(exc)}
        await ws.send_json(reply)


async def listener(ws: WebSocket) -> None:
    """Join the group in the path, say ``joined``, and wait for the client
    to go."""
    await ws.accept()
    await ws.join(ws.matchdict['group'])
    await ws.send_text('joined')
    async for _ in ws.iter_text():
        pass


class Hooked(WebSocketConsumer):
    """Receives group messages through ``on_group_message``."""

    async def on_connect(self, ws: WebSocket) -> None:
        await ws.accept()
        await ws.join(ws.matchdict['group'])
        await ws.send_text('joined')

    async def on_group_message(self, group: str, message: Any) -> None:
        if isinstance(message, bytes):
            message = {'bytes': message.decode('utf-8')}
        await self.ws.send_json({'hooked': group, 'message': message})


#: The close codes /ending consumers ended with, in order.
ENDINGS: list[int | None] = []


async def ending(ws: WebSocket) -> None:
    """Say ``ready``, then record the code the connection ends with."""
    await ws.accept()
    await ws.send_text('ready')
    async for _ in ws.iter_text():
        pass
    ENDINGS.append(ws.close_code)


async def streaming(ws: WebSocket) -> None:
    """Send until the connection is gone (a receive runs beside, as
    hypercorn reports a lost client only there); record the code."""
    await ws.accept()

    async def drain() -> None:
        async for _ in ws.iter_text():
            pass

    receiving = asyncio.ensure_future(drain())
    try:
        while True:
            await ws.send_text('x' * 1000)
            await asyncio.sleep(0.005)
    except WebSocketDisconnect:
        pass
    finally:
        receiving.cancel()
    ENDINGS.append(ws.close_code)


async def closing_with(ws: WebSocket) -> None:
    """Close at once with the code in the path."""
    await ws.accept()
    await ws.close(int(ws.matchdict['code']), 'closing as asked')


def endings(request: Any) -> Response:
    return Response(json_body=ENDINGS)


def publish(request: Any) -> Response:
    """``POST /publish/{group}?kind=text|bytes|json``: the body, published
    from this synchronous view."""
    kind = request.params.get('kind', 'text')
    body = request.body
    message: Any = body if kind == 'bytes' else body.decode('utf-8')
    if kind == 'json':
        message = request.json_body
    try:
        request.broadcast(request.matchdict['group'], message)
    except BroadcastError as exc:
        return Response(str(exc), status=503)
    return Response('published')


def stats(request: Any) -> Response:
    return Response(json_body=get_broadcaster(request.registry).stats())


async def ticker(registry: Any) -> None:
    broadcaster = get_broadcaster(registry)
    count = 0
    while True:
        count += 1
        with contextlib.suppress(BroadcastError):
            await broadcaster.publish('ticker', {'tick': count})
        await asyncio.sleep(0.05)


def start_ticker(event: ApplicationStartup) -> None:
    event.app.ticker = asyncio.get_running_loop().create_task(
        ticker(event.registry)
    )


async def stop_ticker(event: ApplicationShutdown) -> None:
    event.app.ticker.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await event.app.ticker


def main(environ: dict[str, str] | None = None) -> Any:
    environ = os.environ if environ is None else environ
    settings = {
        'asgi_ws.broadcast_url': environ.get('BROADCAST_URL', 'memory://'),
        'asgi_ws.check_origin': 'false',
    }
    with Configurator(settings=settings) as config:
        config.include('pyramid_asgi_ws')
        config.add_asgi_consumer('/groups', groups)
        config.add_asgi_consumer('/listen/{group}', listener, name='listen')
        config.add_asgi_consumer(
            '/slow/{group}',
            listener,
            name='slow',
            send_queue_size=4,
            send_overflow='drop_oldest',
        )
        config.add_asgi_consumer(
            '/closing/{group}',
            listener,
            name='closing',
            send_queue_size=4,
            send_overflow='close',
        )
        config.add_asgi_consumer('/hooked/{group}', Hooked)
        config.add_asgi_consumer('/ending', ending)
        config.add_asgi_consumer('/streaming', streaming)
        config.add_asgi_consumer('/close/{code}', closing_with)
        config.add_route('endings', '/endings')
        config.add_view(endings, route_name='endings')
        config.add_route('publish', '/publish/{group}')
        config.add_view(publish, route_name='publish', request_method='POST')
        config.add_route('stats', '/stats')
        config.add_view(stats, route_name='stats')
        if environ.get('GROUPS_TICKER'):
            config.add_subscriber(start_ticker, ApplicationStartup)
            config.add_subscriber(stop_ticker, ApplicationShutdown)
        return config.make_asgi_app()


app = main()
