"""Property-based fuzz of what hostile clients control: scope -> environ
(:func:`pyramid_asgi_ws.wsgi.build_environ` and the bridge around it) and
consumer routing (:class:`pyramid_asgi_ws.router.ConsumerRouter` and the
application's dispatch), with hostile paths, headers and query strings.

No crash, never a 500: a path no environ can hold (UTF-8 cannot encode
it) is answered 400.  Each property runs at most :data:`EXAMPLES`
examples; a few hostile requests then go through a real uvicorn.
"""

import asyncio
import io
import json
import logging
import socket
import urllib.parse

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyramid.authorization import Allow, Everyone
from pyramid.config import Configurator
from pyramid.response import Response
from pyramid.session import SignedCookieSessionFactory
import pytest

from pyramid_asgi_ws.router import Consumer, ConsumerRouter, path_info
from pyramid_asgi_ws.wsgi import BadRequest, WsgiToAsgi, build_environ
from pyramid_asgi_ws.wsgi.environ import TOKEN
from tests.apps.common import SessionSecurityPolicy
from tests.asgi import Channel
from tests.asgi import http_scope as _http_scope
from tests.asgi import ws_scope as _ws_scope
from tests.support import serve

EXAMPLES = 200
SESSIONS = SignedCookieSessionFactory('fuzz')
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples in every run: CI cannot flake
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,  # caplog, cleared each time
    ],
)

#: Path pieces a hostile client likes, and any text at all (lone
#: surrogates included: a server decoding with ``surrogateescape``).
PIECES = st.sampled_from(
    ['/', '..', '.', '%', '%2e', '%00', '\x00', '\\', '//', ';', '?', '#',
     '\udcff', '\ud800', '\ufffd', 'caf\u00e9', '\u202e', '~', '*']
)  # fmt: skip
PATHS = st.one_of(
    st.lists(st.one_of(PIECES, st.text(max_size=8)), max_size=12).map(
        lambda parts: '/' + ''.join(parts)
    ),
    st.text(max_size=40),
    st.integers(1000, 20000).map(lambda n: '/' + 'a' * n),
)
NAMES = st.one_of(
    st.sampled_from(
        [b'', b'host', b'cookie', b'content-length', b'content_length',
         b'x-a', b'X-A', b'origin', b'\xff\xfe', b'a b', b'-', b'_']
    ),
    st.binary(max_size=12),
)  # fmt: skip
VALUES = st.one_of(
    st.binary(max_size=24),
    st.integers(1000, 20000).map(lambda n: b'v' * n),
)
HEADERS = st.lists(st.tuples(NAMES, VALUES), max_size=20)
QUERIES = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b'%FF', b'a=%ff%fe', b'\xff', b'a=1&a=2', b'&&=', b'%']),
)


def _raw(path: str) -> bytes:
    return path.encode('utf-8', 'surrogatepass')


def http_scope(path, **extra):
    """An HTTP scope for any ``path`` (its ``raw_path`` keeps surrogates)."""
    scope = _http_scope('/', **extra)
    scope.update(path=path, raw_path=_raw(path))
    return scope


def ws_scope(path, **extra):
    scope = _ws_scope('/', **extra)
    scope.update(path=path, raw_path=_raw(path))
    return scope


def _fits(text: str, encoding: str) -> bool:
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        return False
    return True


def is_native(value: str) -> bool:
    """A :pep:`3333` native string: latin-1 only."""
    return _fits(value, 'latin-1')


def encodable(text: str) -> bool:
    return _fits(text, 'utf-8')


def utf8_query(query: bytes) -> bool:
    """Whether WebOb can decode ``query``'s parameters (strict UTF-8)."""
    try:
        urllib.parse.unquote_to_bytes(query).decode('utf-8')
    except UnicodeDecodeError:
        return False
    return True


def refused(
    path: str, root: str, headers: list, query: bytes = b''
) -> bytes | None:
    """The 400 answer the scope deserves, or None when it has none."""
    if not (encodable(path) and encodable(root)):
        return b'Bad Request: undecodable path'
    if not utf8_query(query):
        return b'Bad Request: undecodable query string'
    if any(TOKEN.fullmatch(name) is None for name, _ in headers):
        return b'Bad Request: invalid header name'
    names = [name for name, _ in headers]
    if any(names.count(name) > 100 for name in names):
        return b'Bad Request: Too many duplicate headers'
    return None


# -- scope -> environ ------------------------------------------------------


@FUZZ
@given(path=PATHS, root=PATHS | st.just(''), query=QUERIES, headers=HEADERS)
def test_environ_from_hostile_scopes(path, root, query, headers):
    scope = http_scope(
        path, root_path=root, query_string=query, headers=headers
    )
    try:
        environ = build_environ(
            scope, io.BytesIO(), duplicate_header_limit=100
        )
    except BadRequest as exc:
        assert exc.answer == refused(path, root, headers, query)
        return
    assert refused(path, root, headers, query) is None
    for key, value in environ.items():
        assert type(key) is str and is_native(key)
        if type(value) is str:
            assert is_native(value), key
    # what the scope said, as latin-1 readings of UTF-8 bytes
    full = environ['SCRIPT_NAME'] + environ['PATH_INFO']
    decoded = full.encode('latin-1').decode('utf-8')
    assert decoded in (path, root + path)
    assert environ['QUERY_STRING'].encode('latin-1') == query


def _pyramid_app():
    def view(request):
        # what a view does with its request
        return Response(
            json_body=[
                request.path_info,
                request.url,
                dict(request.headers),
                list(request.params.items()),
            ]
        )

    config = Configurator()
    config.add_route('any', '/*rest')
    config.add_view(view, route_name='any')
    return config.make_wsgi_app()


@pytest.fixture(scope='module')
def bridge():
    bridge = WsgiToAsgi(_pyramid_app(), threads=4)
    yield bridge
    bridge.close()


async def _answer(app, scope):
    channel = Channel({'type': 'http.request', 'body': b''})
    task = asyncio.ensure_future(app(scope, channel.receive, channel.send))
    while not any(m.get('more_body') is False for m in channel.sent[1:]):
        if task.done():
            break
        await asyncio.sleep(0.001)
    channel.incoming.put_nowait({'type': 'http.disconnect'})
    await asyncio.wait_for(task, 5)
    return channel.sent


@FUZZ
@given(path=PATHS, query=QUERIES, headers=HEADERS)
def test_bridge_never_answers_500(bridge, caplog, path, query, headers):
    caplog.clear()
    scope = http_scope(path, query_string=query, headers=headers)
    sent = asyncio.run(_answer(bridge, scope))
    status = sent[0]['status']
    answer = refused(path, '', headers, query)
    if answer is not None:
        assert (status, sent[1]['body']) == (400, answer)
    else:
        assert status in (200, 404), sent
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# -- consumer routing ------------------------------------------------------

PATTERNS = ['/ws', '/ws/{name}', '/files/*rest', '/{a}/{b}.json']


@FUZZ
@given(path=PATHS, root=PATHS | st.just(''))
def test_router_matches_hostile_paths_without_crashing(path, root):
    router = ConsumerRouter()
    for index, pattern in enumerate(PATTERNS):
        router.add(Consumer(f'c{index}', pattern, lambda ws: None))
    below = path_info({'path': path, 'root_path': root})
    found = router.match('websocket', below)
    if found is not None:
        consumer, matchdict = found
        assert consumer.pattern in PATTERNS
        assert all(type(v) in (str, tuple) for v in matchdict.values())


class Open:
    """The root: everybody may ``enter``."""

    __acl__ = [(Allow, Everyone, 'enter')]

    def __init__(self, request):
        pass


def _asgi_app():
    async def consumer(ws):
        await ws.accept()
        await ws.close()

    config = Configurator(root_factory=Open, session_factory=SESSIONS)
    config.include('pyramid_asgi_ws')
    config.set_security_policy(SessionSecurityPolicy())
    config.add_asgi_consumer('/ws/open/{name}', consumer)
    config.add_asgi_consumer('/ws/{name}', consumer, permission='enter')
    config.add_route('any', '/*rest')
    config.add_view(lambda request: Response('ok'), route_name='any')
    return config.make_asgi_app()


@pytest.fixture(scope='module')
def asgi_app():
    app = _asgi_app()
    yield app
    app.wsgi.close()


async def _handshake(app, scope):
    channel = Channel({'type': 'websocket.connect'})
    task = asyncio.ensure_future(app(scope, channel.receive, channel.send))
    while not channel.sent and not task.done():
        await asyncio.sleep(0.001)
    channel.incoming.put_nowait({'type': 'websocket.disconnect', 'code': 1000})
    await asyncio.wait_for(task, 5)
    return channel.sent[0]


@FUZZ
@given(
    name=PATHS,
    open_=st.booleans(),
    query=QUERIES,
    headers=HEADERS,
)
def test_hostile_handshakes_are_answered(
    asgi_app, caplog, name, open_, query, headers
):
    caplog.clear()
    path = ('/ws/open/' if open_ else '/ws/') + name.lstrip('/')
    scope = ws_scope(path, query_string=query, headers=headers)
    first = asyncio.run(_handshake(asgi_app, scope))
    if first['type'] == 'websocket.accept':
        assert '/' not in path[len('/ws/open/' if open_ else '/ws/') :]
    elif first['type'] == 'websocket.http.response.start':
        assert first['status'] in (400, 403, 404), first
        if first['status'] == 400:
            assert refused(path, '', headers, query) is not None
    else:
        assert first['type'] == 'websocket.close', first
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_undecodable_handshake_path_is_refused_400(asgi_app, caplog):
    scope = ws_scope('/ws/\udcff')
    first = asyncio.run(_handshake(asgi_app, scope))
    assert (first['type'], first['status']) == (
        'websocket.http.response.start',
        400,
    )
    assert 'Undecodable path' in caplog.text
    assert 'Traceback' not in caplog.text


# -- through a real uvicorn ------------------------------------------------

HOSTILE = [
    b'/%FF',
    b'/%ED%A0%80',  # a UTF-8 encoded surrogate
    b'/%00',
    b'/\x00',
    b'/\xff',
    b'/../../etc/passwd',
    b'/%2e%2e/%2e%2e/',
    b'/body?%FF=%FE&\xfe',
    b'/' + b'a' * 8000,
    b'/raw/%FF/%00',
]


def _send_raw(port, head, whole=False):
    """Send ``head``; return the answer's head (all of it when
    ``whole``: the request says ``Connection: close``)."""
    with socket.create_connection(('127.0.0.1', port), 10) as sock:
        sock.sendall(head)
        data = b''
        while whole or b'\r\n\r\n' not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


@pytest.fixture(scope='module')
def hostile_uvicorn():
    with serve('uvicorn', 'tests.apps.hostile:app') as server:
        yield server


@pytest.mark.parametrize('path', HOSTILE)
def test_hostile_paths_through_uvicorn(hostile_uvicorn, path):
    port = hostile_uvicorn.port
    start = len(hostile_uvicorn.log())
    answer = _send_raw(
        port,
        b'GET ' + path + b' HTTP/1.1\r\nHost: 127.0.0.1\r\n'
        b'Connection: close\r\n\r\n',
    )
    status = int(answer.split(b' ', 2)[1])
    assert status in (200, 400, 404), answer[:200]
    assert b'Traceback' not in answer
    shake = _send_raw(
        port,
        b'GET /ws/show' + path + b' HTTP/1.1\r\nHost: 127.0.0.1\r\n'
        b'Upgrade: websocket\r\nConnection: Upgrade\r\n'
        b'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
        b'Sec-WebSocket-Version: 13\r\n\r\n',
    )
    assert int(shake.split(b' ', 2)[1]) in (101, 400, 403, 404), shake[:200]
    log = hostile_uvicorn.log()[start:]
    assert 'Traceback' not in log and ' 500' not in log, log


def test_underscore_header_cannot_pass_for_a_dash_one(hostile_uvicorn):
    # '-' and '_' both map to '_' in the environ: the client's X_Odd
    # was joined to the X-Odd a proxy would set ('smuggled,real')
    answer = _send_raw(
        hostile_uvicorn.port,
        b'GET /body HTTP/1.1\r\nHost: 127.0.0.1\r\nX_Odd: smuggled\r\n'
        b'X-Odd: real\r\nConnection: close\r\n\r\n',
        whole=True,
    )
    head, _, body = answer.partition(b'\r\n\r\n')
    assert head.startswith(b'HTTP/1.1 200'), answer
    assert json.loads(body)['header'] == 'real'
