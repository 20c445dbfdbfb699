"""A locked-down app: default permission ``view``, a policy that permits
nothing; and a consumer that floods a client, for the shutdown bound.

Every kind of consumer (function, raw, class, sync class, decorated, under
a ``route_prefix``) is here twice: ``/ws/<kind>`` under the default
permission, refused, and ``/ws/<kind>-open`` with
``NO_PERMISSION_REQUIRED``, accepted (``/pre/ws/...`` for the prefix).
"""

from __future__ import annotations

import asyncio
import json
import time

from pyramid.config import Configurator
from pyramid.security import NO_PERMISSION_REQUIRED

from pyramid_asgi_ws import SyncWebSocketConsumer, WebSocketConsumer
from pyramid_asgi_ws.interfaces import IASGIApp
from tests.pkgs.locked import decorated

CHUNK = b'x' * (256 * 1024)


class NobodyPolicy:
    """Nobody is anybody, and nothing is permitted."""

    def identity(self, request):
        return None

    def authenticated_userid(self, request):
        return None

    def permits(self, request, context, permission):
        return False


async def hello(ws):
    await ws.accept()
    await ws.send_text('in')
    await ws.receive_text()


async def raw_hello(scope, receive, send):
    """``hello`` as a raw ASGI application."""
    while (await receive())['type'] != 'websocket.disconnect':
        await send({'type': 'websocket.accept'})
        await send({'type': 'websocket.send', 'text': 'in'})


class Hello(WebSocketConsumer):
    async def on_connect(self, ws):
        await ws.accept()
        await ws.send_text('in')


class SyncHello(SyncWebSocketConsumer):
    def on_connect(self, ws):
        ws.accept()
        ws.send_text('in')


#: Each kind of consumer: a pattern's last part, the consumer, options.
KINDS = {
    'raw': (raw_hello, {'raw': True}),
    'class': (Hello, {}),
    'sync': (SyncHello, {}),
}


class Flood:
    """Send to a client that never reads, and say when a send is stuck."""

    def __init__(self):
        self.stuck = asyncio.Event()

    async def __call__(self, ws):
        await ws.accept()
        loop = asyncio.get_running_loop()
        while True:
            timer = loop.call_later(0.3, self.stuck.set)
            await ws.send_bytes(CHUNK)
            timer.cancel()


flood = Flood()


async def stop(scope, receive, send):
    """Close every connection once a send is stuck; answer how long."""
    app = scope['registry'].getUtility(IASGIApp)
    await asyncio.wait_for(flood.stuck.wait(), 10)
    started = time.monotonic()
    await app.close_connections(timeout=1.0)
    body = json.dumps(
        {'took': time.monotonic() - started, 'open': len(app.connections)}
    ).encode()
    await send({'type': 'http.response.start', 'status': 200, 'headers': []})
    await send({'type': 'http.response.body', 'body': body})


async def health(scope, receive, send):
    await send({'type': 'http.response.start', 'status': 204, 'headers': []})
    await send({'type': 'http.response.body', 'body': b''})


def make_app():
    config = Configurator(security_policy=NobodyPolicy())
    config.include('pyramid_asgi_ws')
    config.set_default_permission('view')
    config.add_asgi_consumer('/ws/default', hello, name='default')
    config.add_asgi_consumer('/ws/own', hello, name='own', permission='chat')
    config.add_asgi_consumer(
        '/ws/open', hello, name='open', permission=NO_PERMISSION_REQUIRED
    )
    config.add_asgi_consumer(
        '/ws/flood', flood, name='flood', permission=NO_PERMISSION_REQUIRED
    )
    config.add_asgi_consumer(
        '/stop', stop, protocol='http', permission=NO_PERMISSION_REQUIRED
    )
    config.add_asgi_consumer('/http/default', health, protocol='http')
    for kind, (consumer, options) in KINDS.items():
        config.add_asgi_consumer(
            f'/ws/{kind}', consumer, name=kind, **options
        )
        config.add_asgi_consumer(
            f'/ws/{kind}-open',
            consumer,
            name=f'{kind}-open',
            permission=NO_PERMISSION_REQUIRED,
            **options,
        )
    with config.route_prefix_context('/pre'):
        config.add_asgi_consumer('/ws/prefixed', hello, name='prefixed')
        config.add_asgi_consumer(
            '/ws/prefixed-open',
            hello,
            name='prefixed-open',
            permission=NO_PERMISSION_REQUIRED,
        )
    config.scan(decorated)
    config.add_asgi_consumer(
        '/http/open',
        health,
        name='open-http',
        protocol='http',
        permission=NO_PERMISSION_REQUIRED,
    )
    return config.make_asgi_app()


app = make_app()
