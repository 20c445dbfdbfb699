"""The ASGI application in-process: lifespan, shutdown, edge dispatch."""

from __future__ import annotations

import asyncio
import json
import urllib.request

from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPForbidden
import pytest

from pyramid_asgi_ws import ApplicationShutdown, ApplicationStartup
from pyramid_asgi_ws.app import ASGIApp
from tests import support
from tests.asgi import Channel, http_scope, run, ws_scope

CONNECT = {'type': 'websocket.connect'}


async def until(condition, timeout=5.0):
    """Wait until ``condition()`` holds; fail after ``timeout`` seconds."""
    await support.until(condition, repr(condition), timeout)


async def connect(app, path, channel):
    """Open a WebSocket to ``path``; return its task once it is open."""
    task = asyncio.ensure_future(
        app(ws_scope(path), channel.receive, channel.send)
    )
    await until(lambda: app.connections)
    return task


def make_app(*consumers, settings=None, subscribers=()):
    config = Configurator(settings=settings or {})
    config.include('pyramid_asgi_ws')
    for pattern, consumer, kw in consumers:
        config.add_asgi_consumer(pattern, consumer, **kw)
    for subscriber, event in subscribers:
        config.add_subscriber(subscriber, event)
    return config.make_asgi_app()


async def lifespan(app, *phases):
    channel = Channel(*({'type': f'lifespan.{p}'} for p in phases))
    await app(
        {'type': 'lifespan', 'asgi': {'version': '3.0'}},
        channel.receive,
        channel.send,
    )
    return channel.types()


def test_lifespan_runs_async_and_sync_subscribers():
    seen = []

    async def start(event):
        await asyncio.sleep(0)
        seen.append(('start', event.registry is event.app.registry))

    def stop(event):
        seen.append('stop')

    app = make_app(
        subscribers=[(start, ApplicationStartup), (stop, ApplicationShutdown)]
    )
    types = run(lifespan(app, 'startup', 'shutdown'))
    assert types == ['lifespan.startup.complete', 'lifespan.shutdown.complete']
    assert seen == [('start', True), 'stop']


def test_failing_startup_is_reported_to_the_server():
    def start(event):
        raise RuntimeError('no database')

    app = make_app(subscribers=[(start, ApplicationStartup)])

    async def go():
        channel = Channel({'type': 'lifespan.startup'})
        task = asyncio.ensure_future(
            app({'type': 'lifespan'}, channel.receive, channel.send)
        )
        await until(lambda: channel.sent)
        task.cancel()
        return channel.sent

    sent = run(go())
    assert sent == [
        {
            'type': 'lifespan.startup.failed',
            'message': 'RuntimeError during startup',
        }
    ]


def test_failing_shutdown_is_reported():
    def stop(event):
        raise RuntimeError('oops')

    app = make_app(subscribers=[(stop, ApplicationShutdown)])
    types = run(lifespan(app, 'startup', 'shutdown'))
    assert types[-1] == 'lifespan.shutdown.failed'


def test_startup_happens_on_first_scope_without_lifespan():
    seen = []
    app = make_app(subscribers=[(seen.append, ApplicationStartup)])

    async def go():
        channel = Channel(CONNECT)
        await app(ws_scope('/nowhere'), channel.receive, channel.send)
        channel = Channel(CONNECT)
        await app(ws_scope('/nowhere'), channel.receive, channel.send)

    run(go())
    assert len(seen) == 1


def test_concurrent_first_requests_wait_for_startup():
    order = []

    async def slow_start(event):
        await asyncio.sleep(0.05)
        order.append('started')

    async def consumer(ws):
        order.append('consumer')
        await ws.accept()

    app = make_app(
        ('/ws', consumer, {}), subscribers=[(slow_start, ApplicationStartup)]
    )

    async def go():
        await asyncio.gather(
            *(
                app(ws_scope('/ws'), Channel(CONNECT).receive, Channel().send)
                for _ in range(3)
            )
        )

    run(go())
    assert order == ['started', 'consumer', 'consumer', 'consumer']


def test_failing_lazy_startup_still_serves_and_is_retried():
    calls = []

    def start(event):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError('no database')

    app = make_app(subscribers=[(start, ApplicationStartup)])
    for _ in range(3):
        channel = Channel(CONNECT)
        run(app(ws_scope('/nowhere'), channel.receive, channel.send))
        assert channel.sent[0]['status'] == 404
    assert calls == [1, 1] and app.started


def test_close_connections_sends_1001_and_waits():
    seen = []

    async def consumer(ws):
        await ws.accept()
        async for _ in ws.iter_text():
            pass
        seen.append(ws.close_code)

    app = make_app(('/ws', consumer, {}))

    async def go():
        channel = Channel(CONNECT)
        task = await connect(app, '/ws', channel)
        closer = asyncio.ensure_future(app.close_connections(timeout=2))
        await until(lambda: 'websocket.close' in channel.types())
        assert not closer.done()  # it waits for the consumer to end
        channel.incoming.put_nowait(
            {'type': 'websocket.disconnect', 'code': 1001}
        )
        await closer
        await task
        late = Channel(CONNECT)
        await app(ws_scope('/ws'), late.receive, late.send)
        return channel.sent, late.sent

    sent, late = run(go())
    assert sent[-1] == {
        'type': 'websocket.close',
        'code': 1001,
        'reason': 'server shutting down',
    }
    assert seen == [1001]
    assert late[0]['status'] == 503


def test_consumer_options_override_settings_even_to_no_limit():
    async def consumer(ws):
        await ws.accept()
        await ws.send_json([ws.max_message_size, ws.send_queue_size])

    app = make_app(
        ('/free', consumer, {'max_message_size': 'none'}),
        ('/default', consumer, {}),
        settings={'asgi_ws.send_queue_size': '8'},
    )
    results = []
    for path in ('/free', '/default'):
        channel = Channel(CONNECT)
        run(app(ws_scope(path), channel.receive, channel.send))
        results.append(channel.sent[1]['text'])
    assert results == ['[null,8]', '[1048576,8]']


def test_raising_factory_refuses_with_its_status():
    def factory(request):
        raise HTTPForbidden()

    async def consumer(ws):  # pragma: no cover - never runs
        await ws.accept()

    app = make_app(('/ws', consumer, {'factory': factory}))
    channel = Channel(CONNECT)
    run(app(ws_scope('/ws'), channel.receive, channel.send))
    assert channel.sent[0]['status'] == 403
    assert channel.sent[1]['body'] == b'403 Forbidden'


def test_raw_consumer_is_checked_before_it_runs():
    ran = []

    async def raw(scope, receive, send):
        ran.append(scope['matchdict'])
        await receive()
        await send({'type': 'websocket.close'})

    app = make_app(('/raw/{x}', raw, {'raw': True}))
    refused = Channel(CONNECT)
    scope = ws_scope('/raw/1', headers=[(b'origin', b'http://evil')])
    run(app(scope, refused.receive, refused.send))
    assert refused.sent[0]['status'] == 403 and ran == []
    allowed = Channel(CONNECT)
    run(app(ws_scope('/raw/2'), allowed.receive, allowed.send))
    assert ran == [{'x': '2'}]


def test_client_gone_before_refusal_is_quiet():
    app = make_app()
    channel = Channel(CONNECT)
    channel.fail_on = 'websocket.http.response.start'
    run(app(ws_scope('/none'), channel.receive, channel.send))
    assert channel.sent == []


def get(app, path):
    """Return the status and body ``app`` answers to GET ``path``."""
    request = {'type': 'http.request', 'body': b'', 'more_body': False}
    channel = Channel(request)
    run(app(http_scope(path), channel.receive, channel.send))
    body = b''.join(m.get('body', b'') for m in channel.sent[1:])
    return channel.sent[0]['status'], body


def home_view(config):
    config.add_route('home', '/')
    config.add_view(
        lambda request: {'ok': True}, route_name='home', renderer='json'
    )


def test_app_without_include_still_serves_http():
    config = Configurator()
    home_view(config)
    app = ASGIApp(config.make_wsgi_app())
    assert len(app.consumers) == 0
    assert not app.consumers.has('websocket')
    assert get(app, '/') == (200, b'{"ok": true}')
    channel = Channel(CONNECT)
    run(app(ws_scope('/ws'), channel.receive, channel.send))
    assert channel.sent[0]['status'] == 404
    assert run(lifespan(app, 'startup', 'shutdown')) == [
        'lifespan.startup.complete',
        'lifespan.shutdown.complete',
    ]


@pytest.mark.parametrize(
    'path, status, body',
    [('/', 200, b'{"ok": true}'), ('/nowhere', 404, None)],
)
def test_http_goes_to_pyramid(path, status, body):
    config = Configurator()
    config.include('pyramid_asgi_ws')
    home_view(config)
    answered = get(config.make_asgi_app(), path)
    assert answered[0] == status
    assert body is None or answered[1] == body


def test_raw_consumers_that_raise_answer_without_the_exception():
    async def http_early(scope, receive, send):
        raise ValueError('secret')

    async def http_late(scope, receive, send):
        await send({'type': 'http.response.start', 'status': 200})
        raise ValueError('secret')

    async def ws_early(scope, receive, send):
        await receive()
        raise ValueError('secret')

    async def ws_late(scope, receive, send):
        await receive()
        await send({'type': 'websocket.accept'})
        raise ValueError('secret')

    app = make_app(
        ('/http-early', http_early, {'protocol': 'http'}),
        ('/http-late', http_late, {'protocol': 'http'}),
        ('/ws-early', ws_early, {'raw': True}),
        ('/ws-late', ws_late, {'raw': True}),
    )

    def call(scope):
        # the client is answered, then the server gets the exception
        channel = Channel(CONNECT)
        with pytest.raises(ValueError, match='secret'):
            run(app(scope, channel.receive, channel.send))
        return channel.sent

    sent = call(http_scope('/http-early'))
    assert sent[0]['status'] == 500
    assert sent[1]['body'] == b'Internal Server Error'
    assert call(http_scope('/http-late')) == [  # the server cuts it off
        {'type': 'http.response.start', 'status': 200}
    ]
    sent = call(ws_scope('/ws-early'))
    assert sent[0]['status'] == 500 and b'secret' not in sent[1]['body']
    sent = call(ws_scope('/ws-late'))
    assert sent[-1] == {
        'type': 'websocket.close',
        'code': 1011,
        'reason': 'internal error',
    }


def test_request_finished_callbacks_run_when_the_socket_ends():
    closed = []

    async def consumer(ws):
        ws.request.add_finished_callback(lambda request: closed.append(1))
        ws.request.add_finished_callback(lambda request: 1 / 0)
        assert ws.request.context is not None
        await ws.accept()

    app = make_app(('/ws', consumer, {}))
    channel = Channel(CONNECT)
    run(app(ws_scope('/ws'), channel.receive, channel.send))
    assert closed == [1]
    assert channel.types() == ['websocket.accept', 'websocket.close']


def test_shutdown_closes_raw_websocket_consumers_too():
    async def raw(scope, receive, send):
        await receive()
        await send({'type': 'websocket.accept'})
        while (await receive())['type'] != 'websocket.disconnect':
            pass  # pragma: no cover - the client says nothing

    app = make_app(('/raw', raw, {'raw': True}))

    async def go():
        channel = Channel(CONNECT)
        task = await connect(app, '/raw', channel)
        loop = asyncio.get_running_loop()
        started = loop.time()
        closer = asyncio.ensure_future(app.close_connections(timeout=2))
        await until(lambda: 'websocket.close' in channel.types())
        channel.incoming.put_nowait(
            {'type': 'websocket.disconnect', 'code': 1001}
        )
        await closer
        await task
        return channel.sent, loop.time() - started

    sent, took = run(go())
    assert sent[-1] == {
        'type': 'websocket.close',
        'code': 1001,
        'reason': 'server shutting down',
    }
    assert took < 1


class StuckChannel(Channel):
    """A client that never takes its close: the close send never returns."""

    async def send(self, message):
        await super().send(message)
        if message['type'] == 'websocket.close':
            await asyncio.Event().wait()


@pytest.mark.parametrize('stop', ['close_connections', 'shutdown'])
def test_shutdown_ends_within_its_timeout_whatever_the_client(stop):
    async def consumer(ws):
        await ws.accept()
        await ws.receive_text()  # pragma: no cover - nothing ever comes

    app = make_app(
        ('/ws', consumer, {}), settings={'asgi_ws.shutdown_timeout': '0.3'}
    )

    async def go():
        await app.startup()
        channel = StuckChannel(CONNECT)
        task = await connect(app, '/ws', channel)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(getattr(app, stop)(), 5)
        took = loop.time() - started
        task.cancel()
        return channel.sent, took

    sent, took = run(go())
    assert sent[-1]['code'] == 1001
    assert 0.25 < took < 1.0


@pytest.mark.parametrize('kind', ['uvicorn', 'hypercorn'])
def test_close_connections_is_bounded_through_a_real_server(kind):
    # a client that never reads: the consumer's send and the close get
    # stuck, and close_connections(timeout=1) still ends in about 1 s
    from tests.support import serve
    from tests.wsclient import TIMEOUT, stalled_socket

    with serve(kind, 'tests.pkgs.locked:app') as server:
        sock = stalled_socket(server.port, '/ws/flood')
        try:
            with urllib.request.urlopen(
                server.url + '/stop', timeout=TIMEOUT
            ) as response:
                answer = json.loads(response.read())
        finally:
            sock.close()
    assert 0.9 < answer['took'] < 2.5, answer
