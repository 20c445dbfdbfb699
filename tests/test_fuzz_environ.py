"""Differential fuzz of :func:`pyramid_asgi_ws.wsgi.build_environ`: the
fast build (a copied constant part, a cache of header keys) gives, for
any run of scopes of different servers, the environ the plain build of
before it gave, where that one was right.

The plain build (:func:`reference`) is the one of commit a954436, less
what it got wrong: it raised ``UnicodeEncodeError`` (a 500) for a path
UTF-8 cannot encode and read a header name that is not an HTTP token
into a key WebOb could not read back (both are 400 now, see
tests/test_fuzz.py), it let a name holding ``_`` pass for the one
with ``-`` (left out now), and it kept a ``root_path``'s trailing ``/``
in ``SCRIPT_NAME`` (``/app/`` and ``/x`` for ``/app/x``: ``/app//x``).
Query strings that are not UTF-8 once unescaped are 400s now too, so the
scopes here hold only the others.
"""

import io
import sys
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyramid_asgi_ws.wsgi import FileWrapper, below_root, build_environ
from pyramid_asgi_ws.wsgi.environ import TOKEN

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # the same examples in every run: CI cannot flake
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def reference(scope: dict[str, Any], body: Any) -> dict[str, Any]:
    """The environ of ``scope`` as commit a954436 built it, field by
    field, with no part kept from one call to the next."""
    scheme = scope.get('scheme') or 'http'
    if scope['type'] == 'websocket':
        method = 'GET'
        scheme = {'ws': 'http', 'wss': 'https'}.get(scheme, scheme)
    else:
        method = scope['method']
    script_name = scope.get('root_path', '').encode('utf-8').decode('latin-1')
    path_info = scope['path'].encode('utf-8').decode('latin-1')
    below = below_root(path_info, script_name)
    if below is not None:
        script_name = script_name.rstrip('/')
        path_info = below
    server = scope.get('server')
    if server is not None and server[1] is not None:
        server_name, server_port = server[0], str(server[1])
    else:
        server_name = 'localhost'
        server_port = '443' if scheme == 'https' else '80'
    environ = {
        'REQUEST_METHOD': method,
        'SCRIPT_NAME': script_name,
        'PATH_INFO': path_info,
        'QUERY_STRING': scope.get('query_string', b'').decode('latin-1'),
        'SERVER_NAME': server_name,
        'SERVER_PORT': server_port,
        'SERVER_PROTOCOL': 'HTTP/' + scope.get('http_version', '1.1'),
        'wsgi.version': (1, 0),
        'wsgi.url_scheme': scheme,
        'wsgi.input': body,
        'wsgi.errors': sys.stderr,
        'wsgi.multithread': True,
        'wsgi.multiprocess': True,
        'wsgi.run_once': False,
        'wsgi.input_terminated': True,
        'wsgi.file_wrapper': FileWrapper,
        'asgi.scope': scope,
    }
    client = scope.get('client')
    if client is not None:
        environ['REMOTE_ADDR'] = client[0]
        environ['REMOTE_PORT'] = str(client[1])
    repeated: dict[str, list[str]] = {}
    for raw_name, raw_value in scope.get('headers', ()):
        if b'_' in raw_name:
            continue
        name = raw_name.decode('latin-1').upper().replace('-', '_')
        if name not in ('CONTENT_LENGTH', 'CONTENT_TYPE'):
            name = 'HTTP_' + name
        value = raw_value.decode('latin-1')
        if name not in environ:
            environ[name] = value
            continue
        values = repeated.setdefault(name, [environ[name]])
        joiner = '; ' if name == 'HTTP_COOKIE' else ','
        values.append(value)
        environ[name] = joiner.join(values)
    return environ


TEXT = st.text(st.characters(exclude_categories=['Cs']), max_size=12)
PATHS = st.lists(
    st.one_of(st.sampled_from(['/', '/app', '/ws', '/x/']), TEXT),
    max_size=4,
).map(''.join)
TOKENS = st.from_regex(TOKEN, fullmatch=True).filter(lambda n: len(n) < 80)
NAMES = st.one_of(
    st.sampled_from(
        [b'host', b'cookie', b'content-type', b'content-length', b'accept',
         b'x-forwarded-for', b'x_forwarded_for', b'content_length', b'X-A']
    ),
    TOKENS,
)  # fmt: skip
HEADERS = st.lists(st.tuples(NAMES, st.binary(max_size=16)), max_size=12)
#: Query strings WebOb can decode (the others are 400s, see
#: tests/test_fuzz.py): UTF-8, raw or %-escaped.
QUERIES = st.text(max_size=12).flatmap(
    lambda text: st.sampled_from(
        [text.encode('utf-8'), quote(text, safe='=&;+%').encode('ascii')]
    )
)


@st.composite
def scopes(draw: Any) -> dict[str, Any]:
    """A scope as any of the servers may build it."""
    kind = draw(st.sampled_from(['http', 'websocket']))
    scope: dict[str, Any] = {'type': kind, 'path': draw(PATHS)}
    if kind == 'http':
        scope['method'] = draw(st.sampled_from(['GET', 'POST', 'PATCH']))
    optional = {
        'scheme': st.sampled_from(['http', 'https', 'ws', 'wss', None]),
        'root_path': st.sampled_from(['', '/app', '/app/', '/caf\u00e9']),
        'query_string': QUERIES,
        'http_version': st.sampled_from(['1.0', '1.1', '2']),
        'server': st.sampled_from(
            [('127.0.0.1', 8000), ('::1', 443), ('/tmp/sock', None), None]
        ),
        'client': st.sampled_from([('10.0.0.1', 5000), ('::1', 1), None]),
        'headers': HEADERS,
    }
    for key, values in optional.items():
        if draw(st.booleans()):
            scope[key] = draw(values)
    return scope


@FUZZ
@given(st.lists(scopes(), min_size=1, max_size=6))
def test_fast_build_matches_the_plain_one(runs):
    # a run of scopes of different servers, each built twice: nothing
    # one request's environ holds reaches the next one's
    built = []
    for scope in runs + runs:
        body = io.BytesIO()
        environ = build_environ(scope, body)
        assert environ == reference(scope, body)
        built.append(environ)
    for environ in built:  # a view changing its environ changes no other
        environ['HTTP_X_MINE'] = 'mine'
        environ['wsgi.version'] = None
    assert build_environ(runs[0], body) == reference(runs[0], body)
