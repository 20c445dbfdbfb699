"""The applications the benchmark serves, one factory each (uvicorn's
``--factory``), so that a server imports only what it runs."""

import asyncio
import time
import typing
from urllib.parse import parse_qs

CHUNK = b'x' * 65536
HELLO = b'Hello, world!'


def hello(request: typing.Any) -> typing.Any:
    from pyramid.response import Response

    return Response(HELLO, content_type='text/plain')


def sleep(request: typing.Any) -> typing.Any:
    from pyramid.response import Response

    time.sleep(0.2)
    return Response(b'slept', content_type='text/plain')


def stream(request: typing.Any) -> typing.Any:
    from pyramid.response import Response

    size = int(request.params['size'])

    def chunks() -> typing.Iterator[bytes]:
        for _ in range(size // len(CHUNK)):
            yield CHUNK

    response = Response(app_iter=chunks(), content_type='text/plain')
    response.content_length = size // len(CHUNK) * len(CHUNK)
    return response


def upload(request: typing.Any) -> typing.Any:
    from pyramid.response import Response

    read = request.environ['wsgi.input'].read
    size = 0
    while True:
        data = read(65536)
        if not data:
            break
        size += len(data)
    return Response(str(size), content_type='text/plain')


def make_config(settings: dict[str, str] | None = None) -> typing.Any:
    from pyramid.config import Configurator

    config = Configurator(settings=settings)
    for name, view in (
        ('hello', hello),
        ('sleep', sleep),
        ('stream', stream),
        ('upload', upload),
    ):
        config.add_route(name, '/' if name == 'hello' else '/' + name)
        config.add_view(view, route_name=name)
    return config


def wsgi() -> typing.Any:
    """The Pyramid app, for waitress."""
    return make_config().make_wsgi_app()


def bridge() -> typing.Any:
    """The Pyramid app through this add-on's ``make_asgi_app()``."""
    config = make_config({'asgi_ws.threads': '32'})
    config.include('pyramid_asgi_ws')
    return config.make_asgi_app()


def async_bridge() -> typing.Any:
    """The hello view as an ``async def`` (see bench/asyncviews.py)."""
    from bench.asyncviews import async_app

    return async_app()


def starlette() -> typing.Any:
    """The hello endpoint in Starlette (see bench/asyncviews.py)."""
    from bench.asyncviews import starlette_app

    return starlette_app()


def asgiref() -> typing.Any:
    from asgiref.wsgi import WsgiToAsgi

    return WsgiToAsgi(wsgi())


def a2wsgi() -> typing.Any:
    from a2wsgi import WSGIMiddleware

    return WSGIMiddleware(wsgi(), workers=32)


async def echo(ws: typing.Any) -> None:
    await ws.accept()
    async for message in ws.iter_text():
        await ws.send_text(message)


def websocket() -> typing.Any:
    """The add-on's :class:`WebSocket` consumer echoing text."""
    config = make_config()
    config.include('pyramid_asgi_ws')
    config.add_asgi_consumer('/ws', echo)
    return config.make_asgi_app()


async def _raw(
    scope: dict[str, typing.Any],
    receive: typing.Callable[[], typing.Awaitable[dict[str, typing.Any]]],
    send: typing.Callable[[dict[str, typing.Any]], typing.Awaitable[None]],
) -> None:
    if scope['type'] == 'websocket':
        await receive()
        await send({'type': 'websocket.accept'})
        while True:
            message = await receive()
            if message['type'] != 'websocket.receive':
                return
            await send(
                {
                    'type': 'websocket.send',
                    'text': message.get('text'),
                    'bytes': message.get('bytes'),
                }
            )
    if scope['type'] != 'http':
        return
    path = scope['path']
    size = 0
    more = True
    while more:
        message = await receive()
        size += len(message.get('body', b''))
        more = message.get('more_body', False)
    body = HELLO
    if path == '/sleep':
        await asyncio.sleep(0.2)
        body = b'slept'
    elif path == '/upload':
        body = str(size).encode()
    elif path == '/stream':
        query = parse_qs(scope['query_string'].decode())
        count = int(query['size'][0]) // len(CHUNK)
        await send(
            {
                'type': 'http.response.start',
                'status': 200,
                'headers': [
                    (b'content-type', b'text/plain'),
                    (b'content-length', b'%d' % (count * len(CHUNK))),
                ],
            }
        )
        for _ in range(count):
            await send(
                {
                    'type': 'http.response.body',
                    'body': CHUNK,
                    'more_body': True,
                }
            )
        await send({'type': 'http.response.body', 'body': b''})
        return
    await send(
        {
            'type': 'http.response.start',
            'status': 200,
            'headers': [
                (b'content-type', b'text/plain'),
                (b'content-length', b'%d' % len(body)),
            ],
        }
    )
    await send({'type': 'http.response.body', 'body': body})


def raw() -> typing.Any:
    """A raw ASGI app serving the same routes: the ceiling."""
    return _raw


async def soak_echo(ws: typing.Any) -> None:
    """One soak cycle's consumer: join a group, echo one message, leave,
    then wait for the client's close."""
    await ws.accept()
    await ws.join('soak')
    await ws.send_text(await ws.receive_text())
    await ws.leave('soak')
    async for _ in ws.iter_text():
        pass


async def soak_stats(
    scope: dict[str, typing.Any],
    receive: typing.Callable[[], typing.Awaitable[dict[str, typing.Any]]],
    send: typing.Callable[[dict[str, typing.Any]], typing.Awaitable[None]],
) -> None:
    """The soak's debug consumer (HTTP, on the event loop): the process's
    RSS, descriptors, threads and asyncio tasks, the open WebSockets and
    the group tables, as JSON."""
    import gc
    import json
    import os
    import threading

    from pyramid_asgi_ws.interfaces import IASGIApp, IBroadcaster

    registry = scope['registry']
    app = registry.getUtility(IASGIApp)
    broadcaster = registry.getUtility(IBroadcaster)
    backend = broadcaster.backend
    gc.collect()
    with open('/proc/self/status') as f:
        rss = next(int(line.split()[1]) for line in f if line[:6] == 'VmRSS:')
    stats = {
        'rss_kib': rss,
        'fds': len(os.listdir('/proc/self/fd')),
        'threads': threading.active_count(),
        'tasks': len(asyncio.all_tasks()) - 1,  # without this one
        'sockets': len(app.connections),
        'groups': len(broadcaster.groups),
        'members': sum(broadcaster.groups.values()),
        'channels': len(getattr(backend, 'channels', ())),
        'presence': len(getattr(backend, 'presence', ())),
        'objects': len(gc.get_objects()),
    }
    body = json.dumps(stats).encode()
    await send(
        {
            'type': 'http.response.start',
            'status': 200,
            'headers': [(b'content-type', b'application/json')],
        }
    )
    await send({'type': 'http.response.body', 'body': body})


def soak() -> typing.Any:
    """The soak's app: :func:`soak_echo` at ``/soak`` and the bench-only
    :func:`soak_stats` at ``/_soak/stats``."""
    config = make_config()
    config.include('pyramid_asgi_ws')
    config.add_asgi_consumer('/soak', soak_echo)
    config.add_asgi_consumer('/_soak/stats', soak_stats, protocol='http')
    return config.make_asgi_app()


def handoff() -> typing.Any:
    """The raw ASGI hello, but each request first makes an empty call in
    the bridge's thread pool and awaits it: what the two thread crossings
    of a request cost a real server."""
    from pyramid_asgi_ws.wsgi.pool import Pool

    pool = Pool(32)

    def nothing() -> None:
        pass

    async def app(
        scope: dict[str, typing.Any],
        receive: typing.Callable[[], typing.Awaitable[dict[str, typing.Any]]],
        send: typing.Callable[[dict[str, typing.Any]], typing.Awaitable[None]],
    ) -> None:
        if scope['type'] == 'http':
            await pool.call(nothing)
        await _raw(scope, receive, send)

    return app


def _hello_wsgi(
    environ: dict[str, typing.Any], start_response: typing.Any
) -> list[bytes]:
    start_response(
        '200 OK',
        [('Content-Type', 'text/plain'), ('Content-Length', str(len(HELLO)))],
    )
    return [HELLO]


def bare() -> typing.Any:
    """The bridge alone: :class:`~pyramid_asgi_ws.wsgi.WsgiToAsgi` serving
    a WSGI hello function, no Pyramid."""
    from pyramid_asgi_ws.wsgi import WsgiToAsgi

    return WsgiToAsgi(_hello_wsgi, threads=32)
