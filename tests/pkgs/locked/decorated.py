"""Consumers of the locked-down app registered by decorators, one of
each kind under the default permission and one opted out of it."""

from __future__ import annotations

from pyramid.security import NO_PERMISSION_REQUIRED

from pyramid_asgi_ws import asgi_consumer, websocket_consumer


async def _hello(ws):
    await ws.accept()
    await ws.send_text('in')
    await ws.receive_text()


async def _health(scope, receive, send):
    await send({'type': 'http.response.start', 'status': 204, 'headers': []})
    await send({'type': 'http.response.body', 'body': b''})


@websocket_consumer('/ws/decorated', name='decorated')
async def decorated(ws):
    await _hello(ws)


@websocket_consumer(
    '/ws/decorated-open',
    name='decorated-open',
    permission=NO_PERMISSION_REQUIRED,
)
async def decorated_open(ws):
    await _hello(ws)


@asgi_consumer('/http/decorated', name='decorated-http')
async def decorated_http(scope, receive, send):
    await _health(scope, receive, send)


@asgi_consumer(
    '/http/decorated-open',
    name='decorated-http-open',
    permission=NO_PERMISSION_REQUIRED,
)
async def decorated_http_open(scope, receive, send):
    await _health(scope, receive, send)
