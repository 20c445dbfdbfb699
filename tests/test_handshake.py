"""The handshake: origins, trusted proxies, permissions."""

from __future__ import annotations

import urllib.error
import urllib.request

from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPFound
import pytest

from pyramid_asgi_ws.handshake import negotiate_subprotocol
from pyramid_asgi_ws.origin import check_origin, is_trusted, own_origin
from pyramid_asgi_ws.router import Consumer
from pyramid_asgi_ws.settings import parse_settings
from tests.apps.core import Root, SessionSecurityPolicy
from tests.asgi import Channel, run, ws_scope
from tests.pkgs.locked import NobodyPolicy
from tests.support import SERVERS, serve
from tests.wsclient import TIMEOUT, open_ws, refused_status


async def consumer(ws):
    await ws.accept()
    await ws.send_text('in')


def origin_scope(origin=None, **kw):
    headers = [(b'host', b'app.example:8080')]
    if origin is not None:
        headers.append((b'origin', origin.encode()))
    headers += kw.pop('headers', [])
    return ws_scope(headers=headers, **kw)


def check(origin, settings=None, **options):
    return check_origin(
        origin_scope(origin),
        Consumer('c', '/ws', consumer, options=options),
        parse_settings(settings or {}),
    )


def test_own_origin_allowed_foreign_refused():
    assert check('http://app.example:8080') is None
    refusal = check('http://evil.example')
    assert refusal.status == 403
    assert "'http://evil.example'" in refusal.reason
    assert 'asgi_ws.allowed_origins' in refusal.reason
    assert check('null').status == 403


def test_allowed_origins_setting_and_option():
    settings = {'asgi_ws.allowed_origins': 'https://Other.example'}
    assert check('https://other.example', settings) is None
    assert check('https://evil.example', settings).status == 403
    assert check('https://evil.example', allowed_origins=('*',)) is None
    # the consumer's list replaces the setting
    assert (
        check('https://other.example', settings, allowed_origins=())
        is not None
    )


def test_missing_origin_allowed_unless_required():
    assert check(None) is None
    assert check(None, {'asgi_ws.require_origin': 'true'}).status == 403
    assert check(None, require_origin=True).status == 403


def test_require_origin_applies_with_the_check_off():
    settings = {'asgi_ws.check_origin': 'false'}
    assert check(None, settings, require_origin=True).status == 403
    required = {'asgi_ws.require_origin': 'true'}
    assert check(None, required, require_origin=False) is None


def test_check_origin_can_be_turned_off():
    assert (
        check('http://evil.example', {'asgi_ws.check_origin': 'false'}) is None
    )


def test_forwarded_headers_count_only_from_trusted_proxies():
    forwarded = [
        (b'x-forwarded-proto', b'https'),
        (b'x-forwarded-host', b'public.example'),
    ]
    scope = origin_scope(headers=forwarded, client=('10.0.0.5', 1))
    assert own_origin(scope) == 'http://app.example:8080'
    assert own_origin(scope, ('10.0.0.0/8',)) == 'https://public.example'
    assert own_origin(scope, ('*',)) == 'https://public.example'
    scope = origin_scope(headers=[(b'x-forwarded-proto', b'wss')])
    assert own_origin(scope, ('127.0.0.1',)) == 'https://app.example:8080'


def test_own_origin_without_host_uses_server():
    scope = ws_scope(headers=[], scheme='wss', server=('10.1.1.1', 8443))
    assert own_origin(scope) == 'https://10.1.1.1:8443'
    scope = ws_scope(headers=[], server=('sock', None))
    assert own_origin(scope) == 'http://sock'


@pytest.mark.parametrize(
    'client, trusted, expected',
    [
        (('127.0.0.1', 1), (), False),
        (('127.0.0.1', 1), ('127.0.0.1',), True),
        (('192.168.1.9', 1), ('192.168.0.0/16',), True),
        (('192.168.1.9', 1), ('bogus', '10.0.0.0/8'), False),
        (None, ('127.0.0.1',), False),
        (None, ('unix',), True),
        (('', 0), ('unix',), True),
        (('::1', 1), ('unix',), False),
        (('fe80::1', 1), ('unix', 'fe80::/10'), True),
        (('not-an-ip', 1), ('127.0.0.1',), False),
    ],
)
def test_is_trusted(client, trusted, expected):
    assert is_trusted(client, trusted) is expected


def test_negotiate_subprotocol():
    assert negotiate_subprotocol(['a', 'b'], ('b', 'a')) == 'a'
    assert negotiate_subprotocol(['c'], ('b',)) is None
    assert negotiate_subprotocol(['c'], None) is None


def protected_app(forbidden_view=None, **options):
    config = Configurator(
        root_factory=Root, security_policy=SessionSecurityPolicy()
    )
    config.set_session_factory(
        __import__(
            'pyramid.session', fromlist=['x']
        ).SignedCookieSessionFactory('secret')
    )
    config.include('pyramid_asgi_ws')
    if forbidden_view is not None:
        config.add_forbidden_view(forbidden_view)
    config.add_asgi_consumer('/ws', consumer, **options)
    return config.make_asgi_app()


def handshake(app, headers=()):
    channel = Channel({'type': 'websocket.connect'})
    scope = ws_scope('/ws', headers=[(b'host', b'testserver'), *headers])
    run(app(scope, channel.receive, channel.send))
    return channel.sent


def test_anonymous_gets_401_and_no_policy_means_no_check():
    sent = handshake(protected_app(permission='chat'))
    assert sent[0]['status'] == 401
    assert sent[1]['body'] == b'401 Unauthorized'


def test_app_forbidden_view_answers_the_refusal():
    def to_login(request):
        return HTTPFound(location='/login')

    sent = handshake(protected_app(to_login, permission='chat'))
    assert sent[0]['status'] == 302
    assert (b'Location', b'/login') in sent[0]['headers']


def test_permission_without_security_policy_allows():
    config = Configurator()
    config.include('pyramid_asgi_ws')
    config.add_asgi_consumer('/ws', consumer, permission='chat')
    sent = handshake(config.make_asgi_app())
    assert sent[0] == {'type': 'websocket.accept'}


def test_permission_without_a_root_factory_uses_pyramids_default():
    from pyramid.threadlocal import get_current_request

    seen = []

    class EveryonePolicy(NobodyPolicy):
        def permits(self, request, context, permission):
            seen.append((type(context).__name__, get_current_request()))
            return permission == 'view'

    config = Configurator(security_policy=EveryonePolicy())
    config.include('pyramid_asgi_ws')
    config.add_asgi_consumer('/ws', consumer, permission='view')
    sent = handshake(config.make_asgi_app())
    assert sent[0] == {'type': 'websocket.accept'}
    assert seen[0][0] == 'DefaultRootFactory'
    assert seen[0][1] is not None  # thread locals, as a view has them


@pytest.mark.parametrize('userid, status', [(None, 401), ('ann', 403)])
def test_a_refusal_asks_the_policy_for_the_user_once(userid, status):
    asked = []

    class Counting(NobodyPolicy):
        def authenticated_userid(self, request):
            asked.append(userid)  # a query in a real policy
            return userid

    config = Configurator(security_policy=Counting())
    config.include('pyramid_asgi_ws')
    config.add_asgi_consumer('/ws', consumer, permission='chat')
    sent = handshake(config.make_asgi_app())
    assert sent[0]['status'] == status
    assert asked == [userid]


@pytest.fixture(scope='module', params=SERVERS)
def locked(request):
    """tests/pkgs/locked served by each real server in turn."""
    with serve(request.param, 'tests.pkgs.locked:app') as running:
        yield running


def test_default_permission_guards_consumers_without_one(locked):
    # daphne refuses every handshake with 403 (no denial responses)
    expected = 403 if locked.kind == 'daphne' else 401
    assert refused_status(locked.ws_url + '/ws/default') == expected
    assert refused_status(locked.ws_url + '/ws/own') == expected
    with open_ws(locked.ws_url + '/ws/open') as ws:
        assert ws.recv(timeout=TIMEOUT) == 'in'
    # HTTP consumers too, as views
    assert http_status(locked.url + '/http/default') == 401
    assert http_status(locked.url + '/http/open') == 204
    assert 'Traceback' not in locked.log()


@pytest.mark.parametrize(
    'path',
    ['/ws/raw', '/ws/class', '/ws/sync', '/ws/decorated', '/pre/ws/prefixed'],
)
def test_default_permission_guards_every_kind_of_consumer(locked, path):
    # raw, class-based, SyncWebSocketConsumer, @websocket_consumer and a
    # route_prefix'd consumer: refused without a permission of their own,
    # accepted with NO_PERMISSION_REQUIRED
    expected = 403 if locked.kind == 'daphne' else 401
    assert refused_status(locked.ws_url + path) == expected
    with open_ws(locked.ws_url + path + '-open') as ws:
        assert ws.recv(timeout=TIMEOUT) == 'in'
    assert 'Traceback' not in locked.log()


def test_default_permission_guards_decorated_asgi_consumers(locked):
    assert http_status(locked.url + '/http/decorated') == 401
    assert http_status(locked.url + '/http/decorated-open') == 204


def http_status(url):
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_default_permission_without_a_policy_allows():
    async def hello(ws):
        await ws.accept()

    config = Configurator()
    config.include('pyramid_asgi_ws')
    config.set_default_permission('view')
    config.add_asgi_consumer('/ws', hello)
    assert handshake(config.make_asgi_app())[0] == {'type': 'websocket.accept'}


def test_default_permission_in_process():
    from pyramid.security import NO_PERMISSION_REQUIRED

    def app(**options):
        config = Configurator(security_policy=NobodyPolicy())
        config.include('pyramid_asgi_ws')
        config.set_default_permission('view')
        config.add_asgi_consumer('/ws', consumer, **options)
        return config.make_asgi_app()

    assert handshake(app())[0]['status'] == 401
    opted_out = app(permission=NO_PERMISSION_REQUIRED)
    assert handshake(opted_out)[0] == {'type': 'websocket.accept'}


def test_the_security_module_keeps_its_names():
    from pyramid_asgi_ws import handshake, origin, refusal, security, settings

    homes = (handshake, origin, refusal, settings)
    for name in security.__all__:
        assert any(
            getattr(security, name) is getattr(home, name, None)
            for home in homes
        )


def test_several_origin_headers_are_refused():
    scope = origin_scope(
        'http://app.example:8080',
        headers=[(b'origin', b'http://app.example:8080')],
    )
    consumer_ = Consumer('c', '/ws', consumer)
    refusal = check_origin(scope, consumer_, parse_settings({}))
    assert refusal.status == 403 and '2 Origin headers' in refusal.reason


def test_forwarded_host_alone_keeps_the_scheme():
    scope = origin_scope(headers=[(b'x-forwarded-host', b'public.example')])
    assert own_origin(scope, ('*',)) == 'http://public.example'


def test_a_factory_without_permission_still_runs():
    made = []

    def factory(request):
        made.append(request.matchdict)
        return object()

    config = Configurator()
    config.include('pyramid_asgi_ws')
    config.add_asgi_consumer('/ws', consumer, factory=factory)
    assert handshake(config.make_asgi_app())[0] == {
        'type': 'websocket.accept'
    }
    assert made == [{}]


def test_a_raising_forbidden_view_falls_back_to_401():
    def broken(request):
        raise RuntimeError('the forbidden view is broken')

    sent = handshake(protected_app(broken, permission='chat'))
    assert sent[0]['status'] == 401


def test_a_check_that_raises_refuses_with_500(caplog):
    def factory(request):
        raise KeyError('hostile')

    config = Configurator()
    config.include('pyramid_asgi_ws')
    config.add_asgi_consumer('/ws', consumer, factory=factory)
    sent = handshake(config.make_asgi_app())
    assert sent[0]['status'] == 500
    assert b'hostile' not in sent[1]['body']
    assert 'checking the handshake' in caplog.text


def test_request_without_request_extensions():
    from pyramid_asgi_ws.app import ASGIApp
    from pyramid_asgi_ws.websocket import WebSocket

    app = ASGIApp(Configurator().make_wsgi_app())
    request = app.make_request(WebSocket(ws_scope('/ws'), None, None))
    assert request.context is not None
    assert request.path == '/ws'


def test_refusing_after_accept_only_logs():
    from pyramid_asgi_ws.refusal import Refusal, refuse
    from pyramid_asgi_ws.websocket import WebSocket, WebSocketState

    channel = Channel()
    ws = WebSocket(ws_scope('/ws'), channel.receive, channel.send)
    ws.application_state = WebSocketState.CONNECTED
    run(refuse(ws, Refusal(403, 'too late')))
    assert channel.sent == []


def test_subprotocols_are_negotiated_or_refused():
    config = Configurator()
    config.include('pyramid_asgi_ws')
    config.add_asgi_consumer('/ws', consumer, subprotocols=['v2', 'v1'])
    app = config.make_asgi_app()

    def offer(*names):
        channel = Channel({'type': 'websocket.connect'})
        scope = ws_scope('/ws', subprotocols=list(names))
        run(app(scope, channel.receive, channel.send))
        return channel.sent[0]

    assert offer('v0', 'v1', 'v2') == {
        'type': 'websocket.accept',
        'subprotocol': 'v1',
    }
    assert offer('v0')['status'] == 400


def test_http_consumer_checks():
    from pyramid.httpexceptions import HTTPSeeOther

    from tests.test_app import get

    ended = []

    async def health(scope, receive, send):
        await send({'type': 'http.response.start', 'status': 204})
        await send({'type': 'http.response.body', 'body': b''})

    def redirect(request):
        raise HTTPSeeOther(location='/login')

    def broken(request):
        raise KeyError('hostile')

    def recorded(request):
        request.add_finished_callback(lambda request: ended.append(1))
        return object()

    config = Configurator(security_policy=NobodyPolicy())
    config.include('pyramid_asgi_ws')
    config.add_asgi_consumer('/ok', health, protocol='http')
    config.add_asgi_consumer(
        '/denied', health, protocol='http', permission='view'
    )
    config.add_asgi_consumer('/r', health, protocol='http', factory=redirect)
    config.add_asgi_consumer('/b', health, protocol='http', factory=broken)
    config.add_asgi_consumer('/f', health, protocol='http', factory=recorded)
    app = config.make_asgi_app()
    assert get(app, '/ok') == (204, b'')
    assert get(app, '/denied') == (401, b'401 Unauthorized')
    assert get(app, '/r') == (303, b'303 See Other')
    status, body = get(app, '/b')
    assert status == 500 and b'hostile' not in body
    assert get(app, '/f') == (204, b'') and ended == [1]


def test_http_consumer_refusal_keeps_the_forbidden_views_type():
    from pyramid.response import Response

    from tests.test_app import http_scope

    async def health(scope, receive, send):  # pragma: no cover - refused
        pass

    config = Configurator(security_policy=NobodyPolicy())
    config.include('pyramid_asgi_ws')
    config.add_forbidden_view(
        lambda request: Response(
            '<p>no</p>', status=403, content_type='text/html'
        )
    )
    config.add_asgi_consumer('/h', health, protocol='http', permission='x')
    app = config.make_asgi_app()
    channel = Channel({'type': 'http.request', 'body': b''})
    run(app(http_scope('/h'), channel.receive, channel.send))
    start = channel.sent[0]
    assert start['status'] == 403
    types = [v for k, v in start['headers'] if k.lower() == b'content-type']
    assert types == [b'text/html; charset=UTF-8']
    assert channel.sent[1]['body'] == b'<p>no</p>'
