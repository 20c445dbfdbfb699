"""The consumer-running policy: how a consumer's end closes its socket."""

from __future__ import annotations

from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPForbidden, HTTPFound
import pytest

from pyramid_asgi_ws import WebSocketDisconnect
from pyramid_asgi_ws.closecodes import CloseCode
from tests.asgi import Channel, run, ws_scope

CONNECT = {'type': 'websocket.connect'}


def serve(consumer):
    """Run ``consumer`` for one handshake; return what the client got."""
    config = Configurator()
    config.include('pyramid_asgi_ws')
    config.add_asgi_consumer('/ws', consumer)
    app = config.make_asgi_app()
    channel = Channel(CONNECT)
    run(app(ws_scope('/ws'), channel.receive, channel.send))
    return channel.sent


def accepting(exc):
    async def consumer(ws):
        await ws.accept()
        raise exc

    return consumer


def early(exc):
    async def consumer(ws):
        raise exc

    return consumer


def close(code, reason=''):
    return {'type': 'websocket.close', 'code': code, 'reason': reason}


@pytest.mark.parametrize(
    'consumer, last',
    [
        (accepting(ValueError('secret')),
         close(CloseCode.INTERNAL_ERROR, 'internal error')),
        (accepting(HTTPForbidden()), close(4403, 'Forbidden')),
        (accepting(RuntimeError()), close(1011, 'internal error')),
    ],
)  # fmt: skip
def test_after_accept_an_error_closes_with_its_code(consumer, last):
    sent = serve(consumer)
    assert sent[0] == {'type': 'websocket.accept'}
    assert sent[-1] == last
    assert all(b'secret' not in repr(m).encode() for m in sent)


@pytest.mark.parametrize(
    'consumer, status, headers',
    [
        (early(ValueError('secret')), 500, []),
        (early(HTTPForbidden()), 403, []),
        (early(HTTPFound(location='/login')), 302, [(b'location', b'/login')]),
    ],
)
def test_before_accept_an_error_refuses_with_its_status(
    consumer, status, headers
):
    sent = serve(consumer)
    assert sent[0]['type'] == 'websocket.http.response.start'
    assert sent[0]['status'] == status
    for header in headers:
        assert header in [(k.lower(), v) for k, v in sent[0]['headers']]
    assert b'secret' not in sent[1]['body']


def test_returning_closes_normally_or_refuses():
    async def accepted(ws):
        await ws.accept()

    async def never_accepted(ws):
        pass

    assert serve(accepted)[-1] == close(CloseCode.NORMAL)
    assert serve(never_accepted)[0]['status'] == 403


def test_a_client_gone_ends_quietly():
    async def consumer(ws):
        await ws.accept()
        raise WebSocketDisconnect(1006)

    assert serve(consumer) == [{'type': 'websocket.accept'}]


def test_a_client_gone_before_the_close_ends_quietly():
    async def consumer(ws):
        await ws.accept()

    config = Configurator()
    config.include('pyramid_asgi_ws')
    config.add_asgi_consumer('/ws', consumer)
    app = config.make_asgi_app()
    channel = Channel(CONNECT)
    channel.fail_on = 'websocket.close'
    run(app(ws_scope('/ws'), channel.receive, channel.send))
    assert channel.types() == ['websocket.accept']
