"""The in-process test client, against real consumers and a real app."""

from __future__ import annotations

import asyncio
import threading

from pyramid.config import Configurator
from pyramid.response import Response
from pyramid.session import SignedCookieSessionFactory
import pytest

from pyramid_asgi_ws import (
    ApplicationShutdown,
    ApplicationStartup,
    WebSocketConsumer,
    WebSocketDisconnect,
)
from pyramid_asgi_ws.testing import (
    HandshakeRefused,
    LifespanFailure,
    TestClient,
    WebSocketTimeout,
)
from tests.apps.common import (
    Root,
    SessionSecurityPolicy,
    add_page,
    crash_after_accept,
    crash_before_accept,
    echo,
    echo_bytes,
    login,
)

EVENTS: list[str] = []


class JsonEcho(WebSocketConsumer):
    encoding = 'json'

    async def on_receive(self, ws, data):
        await ws.send_json({'got': data}, mode=data.get('mode', 'text'))

    async def on_disconnect(self, ws, code):
        EVENTS.append(f'disconnect {code}')


async def hello_once(ws):
    await ws.accept(headers={'x-hello': 'yes'})
    name = ws.matchdict['who']
    await ws.send_text(f'hello {name} {ws.scope["query_string"].decode()}')
    await ws.send_text(ws.headers.get('x-token', '-'))
    await ws.send_text(ws.request.url)


async def silent(ws):
    await ws.accept()
    await asyncio.sleep(30)


async def never_answers(ws):
    await asyncio.sleep(30)


async def stubborn(ws):
    await ws.accept()
    try:
        await ws.receive_text()
    except WebSocketDisconnect:
        await asyncio.sleep(30)


#: Set by the /closes consumer once it has closed the connection.
CLOSED = threading.Event()


async def closes_unread(ws):
    await ws.accept()
    await ws.send_text('unread')
    await ws.close(4000)
    CLOSED.set()


async def whoami(ws):
    await ws.accept()
    await ws.send_text(ws.request.authenticated_userid or '')


async def raw_close_before_accept(scope, receive, send):
    await receive()
    await send({'type': 'websocket.close', 'code': 1008})


async def raw_returns(scope, receive, send):
    await receive()


async def raw_accept_then_return(scope, receive, send):
    await receive()
    await send({'type': 'websocket.accept'})


async def raw_bad_message(scope, receive, send):
    await receive()
    await send({'type': 'websocket.accept'})
    await send({'type': 'websocket.nonsense'})


async def room(ws):
    await ws.accept()
    group = ws.matchdict['room']
    await ws.join(group)
    await ws.send_text('joined')
    async for text in ws.iter_text():
        await ws.broadcast(group, text)


def announce(request):
    request.broadcast(request.matchdict['room'], {'from': 'view'})
    return Response('sent')


def socket_url(request):
    return Response(request.consumer_url('hello', who='x'))


def on_startup(event):
    EVENTS.append('startup')


async def on_shutdown(event):
    await asyncio.sleep(0)
    EVENTS.append('shutdown')


def make_app(**settings):
    with Configurator(settings=settings, root_factory=Root) as config:
        config.include('pyramid_asgi_ws')
        config.set_session_factory(SignedCookieSessionFactory('s3cret'))
        config.set_security_policy(SessionSecurityPolicy())
        config.add_subscriber(on_startup, ApplicationStartup)
        config.add_subscriber(on_shutdown, ApplicationShutdown)
        add_page(config, 'login', '/login', login)
        add_page(config, 'socket_url', '/socket-url', socket_url)
        add_page(config, 'announce', '/announce/{room}', announce)
        add = config.add_asgi_consumer
        add('/echo', echo)
        add('/room/{room}', room)
        add('/bytes', echo_bytes)
        add('/json', JsonEcho)
        add('/hello/{who}', hello_once, name='hello')
        add('/small', echo, name='small', max_message_size=8)
        add('/strict', echo, name='strict', allowed_origins=['http://ok'])
        add('/proto', echo, name='proto', subprotocols=['v2', 'v1'])
        add('/boom', crash_before_accept)
        add('/crash', crash_after_accept)
        add('/silent', silent)
        add('/never', never_answers)
        add('/stubborn', stubborn)
        add('/closes', closes_unread)
        add('/private', whoami, permission='chat')
        add('/raw-close', raw_close_before_accept, raw=True)
        add('/raw-returns', raw_returns, raw=True)
        add('/raw-open', raw_accept_then_return, raw=True)
        add('/raw-bad', raw_bad_message, raw=True)
        add('/raw-fails', raw_fails_on_close, raw=True)
        return config.make_asgi_app()


def refused(client, *args, **kw):
    """Return the HandshakeRefused that connecting raises."""
    with pytest.raises(HandshakeRefused) as info:
        with client.websocket_connect(*args, **kw):
            pass  # pragma: no cover
    return info.value


@pytest.fixture
def client():
    EVENTS.clear()
    with TestClient(make_app(), timeout=2) as client:
        yield client


def test_text_echo(client):
    with client.websocket_connect('/echo') as ws:
        ws.send_text('hello')
        assert ws.receive_text() == 'hello'
        ws.send_text('')
        assert ws.receive_text() == ''


def test_bytes(client):
    with client.websocket_connect('/bytes') as ws:
        with pytest.raises(RuntimeError, match='already opened'):
            ws.__enter__()
        ws.send_bytes(b'abc')
        assert ws.receive_bytes() == b'abc'


def test_json_text_and_binary(client):
    with client.websocket_connect('/json') as ws:
        ws.send_json({'n': 1})
        assert ws.receive_json() == {'got': {'n': 1}}
        ws.send_json({'mode': 'binary'}, mode='binary')
        message = ws.receive()
        assert message['bytes'] == b'{"got":{"mode":"binary"}}'
        ws.send_json({'mode': 'binary'})
        assert ws.receive_json() == {'got': {'mode': 'binary'}}
    assert EVENTS[-1] == 'disconnect 1000'


def test_wrong_message_kind(client):
    with client.websocket_connect('/json') as ws:
        ws.send_json({'mode': 'binary'})
        with pytest.raises(TypeError, match='expected a text message'):
            ws.receive_text()
        ws.send_json({'n': 2})
        with pytest.raises(TypeError, match='expected a binary message'):
            ws.receive_bytes()


def closed_by(client, path, text):
    """Send ``text`` to ``path``; return the close that comes back."""
    with client.websocket_connect(path) as ws:
        ws.send_text(text)
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive()
    return info.value


def test_malformed_json_closes_1007(client):
    close = closed_by(client, '/json', '{nope')
    assert (close.code, close.reason) == (1007, 'message is not valid JSON')


def test_path_query_headers_and_request(client):
    with client.websocket_connect(
        '/hello/bob?x=1', headers={'X-Token': 't0'}
    ) as ws:
        assert ws.response_headers['x-hello'] == 'yes'
        assert ws.receive_text() == 'hello bob x=1'
        assert ws.receive_text() == 't0'
        assert ws.receive_text() == 'http://testserver/hello/bob?x=1'
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_text()
        assert info.value.code == 1000
        ws.close()  # closing what the app closed does nothing
        # Every later receive says the same.
        with pytest.raises(WebSocketDisconnect):
            ws.receive()
        with pytest.raises(WebSocketDisconnect):
            ws.send_text('too late')
    assert ws.close_code == 1000


def test_base_url_and_header_pairs():
    app = make_app()
    with TestClient(app, base_url='https://example.com:8443/app') as client:
        assert (client.scheme, client.host, client.port) == (
            'https',
            'example.com',
            8443,
        )
        assert client.root_path == '/app'
        with client.websocket_connect(
            '/hello/ann', headers=[('X-Token', 'pair')]
        ) as ws:
            assert ws.scope['scheme'] == 'wss'
            assert ws.scope['path'] == '/app/hello/ann'
            assert ws.receive_text() == 'hello ann '
            assert ws.receive_text() == 'pair'
            assert (
                ws.receive_text() == 'https://example.com:8443/app/hello/ann'
            )
        assert (
            client.http.get('/socket-url').text
            == 'wss://example.com:8443/app/hello/x'
        )


def test_http_and_consumer_url(client):
    assert client.http.get('/socket-url').text == 'ws://testserver/hello/x'
    client.http.get('/nothing-here', status=404)
    # No cookies collected, none sent; a Host header given is kept.
    with client.websocket_connect('/hello/h', {'Host': 'other:81'}) as ws:
        assert 'cookie' not in dict(ws.scope['headers'])
        ws.receive_text()
        ws.receive_text()
        assert ws.receive_text() == 'http://other:81/hello/h'


def test_unknown_path_is_404(client):
    refusal = refused(client, '/nowhere')
    assert refusal.status == 404
    assert refusal.body == b'404 Not Found'
    assert (
        str(refusal) == 'WebSocket handshake refused with 404: 404 Not Found'
    )


def test_foreign_origin_is_403(client):
    refusal = refused(client, '/echo', {'Origin': 'http://evil'})
    assert refusal.status == 403
    with client.websocket_connect('/echo', {'Origin': 'http://testserver'}):
        pass
    with client.websocket_connect('/strict', {'Origin': 'http://ok'}):
        pass


def test_raising_consumer_is_500(client):
    refusal = refused(client, '/boom')
    assert refusal.status == 500
    assert refusal.headers['content-length'] == str(len(refusal.body))


def test_crash_after_accept_closes_1011(client):
    assert closed_by(client, '/crash', 'go').code == 1011


def test_oversize_message_closes_1009(client):
    assert closed_by(client, '/small', 'far too long for it').code == 1009
    with client.websocket_connect('/small') as ws:
        ws.send_text('short')
        assert ws.receive_text() == 'short'


def test_subprotocol(client):
    with client.websocket_connect('/proto', subprotocols=['v1', 'v2']) as ws:
        assert ws.subprotocol == 'v1'
    refusal = refused(client, '/proto', subprotocols=['v9'])
    assert refusal.status == 400


def test_client_close_code_reaches_consumer(client):
    with client.websocket_connect('/json') as ws:
        ws.close(4001, 'bye')
        ws.close()  # twice is fine
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive()
        assert (info.value.code, info.value.reason) == (4001, 'bye')
        with pytest.raises(RuntimeError, match='closed by the test'):
            ws.send_text('after close')
    assert EVENTS[-1] == 'disconnect 4001'


def test_permission_with_login_cookie(client):
    refusal = refused(client, '/private')
    assert refusal.status == 401
    client.http.get('/login', {'user': 'alice'})
    with client.websocket_connect('/private') as ws:
        assert ws.receive_text() == 'alice'
    # An explicit Cookie header wins over the collected cookies.
    assert refused(client, '/private', {'Cookie': 'other=1'}).status == 401


def test_receive_timeout(client):
    with client.websocket_connect('/silent', timeout=0.1) as ws:
        with pytest.raises(TimeoutError, match='no message from the app'):
            ws.receive_text()
        with pytest.raises(WebSocketTimeout):
            ws.receive(timeout=0.05)
        ws.close()
        # The consumer never reads, so it outlives the close.
        with pytest.raises(WebSocketTimeout, match='still running'):
            ws.__exit__(None, None, None)
    # A test's own failure is not hidden by the timeout.
    with pytest.raises(ZeroDivisionError):
        with client.websocket_connect('/silent', timeout=0.1):
            1 / 0  # noqa: B018


def test_session_not_entered_is_not_open(client):
    session = client.websocket_connect('/echo')
    for use in (
        lambda: session.send_text('x'),
        session.receive,
        session.close,
        lambda: session.__exit__(None, None, None),
    ):
        with pytest.raises(RuntimeError, match='session is not open'):
            use()


def test_handshake_timeout(client):
    with pytest.raises(WebSocketTimeout, match='no handshake answer'):
        with client.websocket_connect('/never', timeout=0.1):
            pass  # pragma: no cover


def test_consumer_ignoring_disconnect_times_out(client):
    session = client.websocket_connect('/stubborn', timeout=0.2)
    with pytest.raises(WebSocketTimeout, match='still running'):
        with session:
            pass


def test_raw_close_before_accept_is_403(client):
    refusal = refused(client, '/raw-close')
    assert (refusal.status, refusal.close_code) == (403, 1008)
    assert str(refusal) == 'WebSocket handshake refused with 403'


async def raw_fails_on_close(scope, receive, send):
    await receive()
    await send({'type': 'websocket.accept'})
    await receive()
    raise KeyError('failed while closing')


def test_app_error_after_the_last_receive_reaches_the_test(client):
    with pytest.raises(KeyError, match='failed while closing'):
        with client.websocket_connect('/raw-fails'):
            pass


def test_raw_return_without_answer_is_500(client):
    refusal = refused(client, '/raw-returns')
    assert refusal.status == 500


def test_raw_return_after_accept_is_1006(client):
    with client.websocket_connect('/raw-open') as ws:
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive()
    assert info.value.code == 1006


def test_app_errors_reach_the_test(client):
    # the client is told first (1011), then the error reaches the test
    with pytest.raises(RuntimeError, match='websocket.nonsense'):
        with client.websocket_connect('/raw-bad') as ws:
            with pytest.raises(WebSocketDisconnect) as info:
                ws.receive()
            assert info.value.code == 1011


def test_lifespan_runs_around_the_client():
    EVENTS.clear()
    app = make_app()
    client = TestClient(app)
    with client:
        assert EVENTS == ['startup']
        assert app.started
        with pytest.raises(RuntimeError, match='already running'):
            client.start()
    assert EVENTS == ['startup', 'shutdown']
    assert client.loop is None
    client.stop()  # stopping twice does nothing


def test_a_stopped_client_starts_again():
    EVENTS.clear()
    client = TestClient(make_app())
    for _ in range(2):
        with client:
            with client.websocket_connect('/echo') as ws:
                ws.send_text('again')
                assert ws.receive_text() == 'again'
    assert EVENTS == ['startup', 'shutdown', 'startup', 'shutdown']


def test_shutdown_closes_open_sockets_with_1001():
    client = TestClient(make_app())
    client.start()
    ws = client.websocket_connect('/echo').__enter__()
    client.stop()
    with pytest.raises(WebSocketDisconnect) as info:
        ws.receive()
    assert info.value.code == 1001


def test_without_lifespan():
    EVENTS.clear()
    with TestClient(make_app(), lifespan=False) as client:
        assert EVENTS == []
        with client.websocket_connect('/echo') as ws:
            ws.send_text('x')
            assert ws.receive_text() == 'x'
    # The app starts itself on its first connection, as under daphne.
    assert EVENTS == ['startup']


def test_not_running():
    client = TestClient(make_app())
    with pytest.raises(RuntimeError, match='not running'):
        client.websocket_connect('/echo')
    with client:
        session = client.websocket_connect('/echo')
    # A session made while the client ran cannot open once it stopped.
    with pytest.raises(RuntimeError, match='not running'):
        session.__enter__()
    with pytest.raises(RuntimeError, match='not running'):
        client.call(asyncio.sleep, 0)


def test_call_runs_in_the_clients_loop(client):
    async def where():
        return threading.current_thread().name

    assert client.call(where) == 'TestClient'
    client.timeout = 0.05
    with pytest.raises(WebSocketTimeout, match='did not finish'):
        client.call(asyncio.sleep, 1)


def _failing_startup(event):
    raise RuntimeError('no database')


def test_lifespan_startup_failure():
    with Configurator() as config:
        config.include('pyramid_asgi_ws')
        config.add_subscriber(_failing_startup, ApplicationStartup)
        app = config.make_asgi_app()
    client = TestClient(app)
    with pytest.raises(LifespanFailure, match='startup failed'):
        client.start()
    assert client.loop is None


async def plain_app(scope, receive, send):
    if scope['type'] != 'websocket':
        raise ValueError('websocket only')
    await receive()
    await send({'type': 'websocket.accept', 'subprotocol': None})
    message = await receive()
    await send({'type': 'websocket.send', 'text': message['text'].upper()})
    await send({'type': 'websocket.close', 'code': 1000})
    try:
        await send({'type': 'websocket.send', 'text': 'after close'})
    except OSError:
        return


async def chunked_denial(scope, receive, send):
    if scope['type'] == 'lifespan':
        await asyncio.sleep(30)
    await receive()
    await send({'type': 'websocket.http.response.start', 'status': 418})
    await send(
        {
            'type': 'websocket.http.response.body',
            'body': b'I am ',
            'more_body': True,
        }
    )
    await send({'type': 'websocket.http.response.body', 'body': b'a teapot'})


def test_any_asgi_app_without_lifespan_support():
    with TestClient(plain_app) as client:
        with client.websocket_connect('/') as ws:
            ws.send_text('shout')
            assert ws.receive_text() == 'SHOUT'
            with pytest.raises(WebSocketDisconnect):
                ws.receive()
        with pytest.raises(AttributeError, match='has no wsgi_app'):
            client.http  # noqa: B018


async def raises_after_accept(scope, receive, send):
    if scope['type'] != 'websocket':
        raise ValueError('websocket only')
    await receive()
    await send({'type': 'websocket.accept'})
    raise KeyError('consumer bug')


def test_app_error_reaches_the_test_once():
    with TestClient(raises_after_accept) as client:
        with client.websocket_connect('/') as ws:
            with pytest.raises(KeyError, match='consumer bug'):
                ws.receive()
        # Leaving the session does not raise it a second time.
        assert ws.close_code is None


def test_denial_in_several_parts_and_lifespan_timeout():
    client = TestClient(chunked_denial, timeout=0.2)
    with pytest.raises(WebSocketTimeout, match='lifespan startup'):
        client.start()
    with TestClient(chunked_denial, lifespan=False, timeout=1) as client:
        refusal = refused(client, '/')
    assert (refusal.status, refusal.body) == (418, b'I am a teapot')


def test_close_after_the_app_closed_unseen(client):
    CLOSED.clear()
    with client.websocket_connect('/closes') as ws:
        # The app has sent a message and closed; the test has read neither.
        assert CLOSED.wait(2)
        ws.close(4002)
        # The test's own close wins: what the app sent is not delivered.
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive()
    assert info.value.code == 4002
    assert ws.close_code == 4002


def test_groups_between_sockets_and_from_views(client):
    with client.websocket_connect('/room/a') as one:
        assert one.receive_text() == 'joined'
        with client.websocket_connect('/room/a') as two:
            assert two.receive_text() == 'joined'
            with client.websocket_connect('/room/b') as other:
                assert other.receive_text() == 'joined'
                one.send_text('hi all')
                assert two.receive_text() == 'hi all'
                assert one.receive_text() == 'hi all'
                assert client.http.get('/announce/a').text == 'sent'
                assert one.receive_json() == {'from': 'view'}
                assert two.receive_json() == {'from': 'view'}
                with pytest.raises(WebSocketTimeout):
                    other.receive(timeout=0.1)
