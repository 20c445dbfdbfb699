"""The application tests/test_hostile.py attacks with bad input."""

from __future__ import annotations

import hashlib
import json
import sys

from pyramid.config import Configurator
from pyramid.response import Response

from pyramid_asgi_ws import WebSocketDisconnect
from tests.apps.common import (
    Root,
    SessionSecurityPolicy,
    add_echoes,
    add_page,
    echo,
    hello,
    protected,
    respond,
)

#: What each /ws/json connection ended with: a close code.
ENDINGS: list[int] = []
#: How many /ws/echo consumers are running now.
RUNNING = {'echo': 0}


def say(text: str) -> None:
    """Write a line to the server's log, for a test waiting on it."""
    print(text, file=sys.stderr, flush=True)


class TokenPolicy(SessionSecurityPolicy):
    """The identity comes from a ``?token=`` query parameter, as WebSocket
    clients often send it: reading ``request.params`` is what a hostile
    query string can break."""

    def identity(self, request):
        token = request.params.get('token')
        if token == 'boom':  # a check that fails
            raise RuntimeError('the token policy failed')
        return token


# -- WebSocket consumers ---------------------------------------------------


async def echo_json(ws):
    await ws.accept()
    try:
        while True:
            data = await ws.receive_json()
            await ws.send_json({'type': type(data).__name__, 'got': data})
    except WebSocketDisconnect as exc:
        ENDINGS.append(exc.code)
        raise


async def endings(ws):
    await ws.accept()
    await ws.send_json(ENDINGS)


async def show(ws):
    """Say what the handshake looked like from inside the consumer."""
    await ws.accept()
    await ws.send_json(
        {
            'path': ws.path,
            'matchdict': ws.matchdict,
            'path_info': ws.request.path_info,
            'query': ws.scope['query_string'].decode('latin-1'),
            'cookie_len': len(ws.headers.get('cookie', '')),
        }
    )


async def count(ws):
    """Count messages until the client says ``end``, then report."""
    await ws.accept()
    seen = 0
    async for text in ws.iter_text():
        if text == 'end':
            await ws.send_text(str(seen))
            continue
        seen += 1


async def counted_echo(ws):
    RUNNING['echo'] += 1
    try:
        await echo(ws)
    finally:
        RUNNING['echo'] -= 1


# -- HTTP ------------------------------------------------------------------


def body(request):
    say('body view reading')
    try:
        data = request.body_file.read()
    finally:
        say('body view done')
    return Response(
        json_body={
            'length': len(data),
            'sha1': hashlib.sha1(data).hexdigest(),
            'header': request.headers.get('X-Odd', ''),
            'path': request.path_info,
        }
    )


def mark(request):
    """Log ``mark <n>``: everything logged before was handled before."""
    say(f'mark {request.params["n"]}')
    return Response('marked')


def running(request):
    return Response(json_body=RUNNING)


def boom(request):
    raise ValueError('secret internal detail')


def stream_boom(request):
    def produce():
        yield b'first chunk\n'
        raise ValueError('secret stream detail')

    return Response(app_iter=produce(), content_type='text/plain')


async def raw_http(scope, receive, send):
    text = json.dumps({'matchdict': scope['matchdict'], 'path': scope['path']})
    await respond(send, text, 'application/json')


def make_app():
    config = Configurator(
        settings={'asgi_ws.max_body_size': '1MiB'},
        root_factory=Root,
        security_policy=TokenPolicy(),
    )
    config.include('pyramid_asgi_ws')
    add_page(config, 'hello', '/', hello)
    add_page(config, 'body', '/body', body)
    add_page(config, 'boom', '/boom', boom)
    add_page(config, 'mark', '/mark', mark)
    add_page(config, 'running', '/running', running)
    add_page(config, 'stream-boom', '/stream-boom', stream_boom)
    add_echoes(config, echo_json, counted_echo)
    config.add_asgi_consumer('/ws/endings', endings)
    config.add_asgi_consumer('/ws/show/{name}', show)
    config.add_asgi_consumer('/ws/count', count)
    config.add_asgi_consumer('/ws/private', protected, permission='chat')
    config.add_asgi_consumer(
        '/ws/proto', echo, name='proto', subprotocols=['v1.chat']
    )
    config.add_asgi_consumer('/raw/{x}/{y}', raw_http, protocol='http')
    return config.make_asgi_app()


app = make_app()
