"""Build a :pep:`3333` environ from an ASGI scope."""

import re
import sys
import typing
from urllib.parse import unquote_to_bytes

from pyramid_asgi_ws.wsgi.filewrapper import FileWrapper

Scope = dict[str, typing.Any]
Environ = dict[str, typing.Any]


class BadRequest(ValueError):
    """A scope no :pep:`3333` environ can be built from; the bridge
    answers it with 400 and :attr:`answer` as the body."""

    def __init__(self, message: str, answer: bytes) -> None:
        super().__init__(message)
        #: The body of the 400 answer.
        self.answer = answer


def _join(values: list[str], name: str) -> str:
    return ('; ' if name == 'HTTP_COOKIE' else ',').join(values)


def below_root(path: str, root: str) -> str | None:
    """Return what follows the mount point ``root`` in ``path``, or None.

    ``/app/ws`` is ``/ws`` below ``/app``, ``/app`` is ``''``, and
    ``/application`` is not below ``/app`` at all.
    """
    root = root.rstrip('/')
    if not root:
        return None
    if path == root or path.startswith(root + '/'):
        return path[len(root) :]
    return None


#: What every environ holds whatever the request, copied into each.
CONSTANT: Environ = {
    'wsgi.version': (1, 0),
    'wsgi.multithread': True,
    'wsgi.multiprocess': True,
    'wsgi.run_once': False,
    'wsgi.input_terminated': True,
    'wsgi.file_wrapper': FileWrapper,
}

#: The environ key of each header name seen, so that a request's headers
#: cost one lookup each; at most :data:`KEYS_LIMIT` names of at most
#: :data:`NAME_LIMIT` bytes are kept, so that clients sending made-up
#: names cannot grow it (uvicorn's httptools parser takes a header name
#: of megabytes).
_KEYS: dict[bytes, str] = {}
KEYS_LIMIT = 512
NAME_LIMIT = 64


#: An HTTP field name (RFC 9110's ``token``).
TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def header_key(raw_name: bytes) -> str:
    """The environ key of the header ``raw_name``: ``HTTP_`` and the name
    in capitals with ``-`` as ``_``, or ``CONTENT_TYPE`` and
    ``CONTENT_LENGTH`` as they are; ``''`` for a name holding ``_``.

    Such a header is left out of the environ, as waitress, gunicorn,
    nginx and Django do: ``-`` and ``_`` both become ``_`` in its key, so
    a client's ``X_Forwarded_For`` would be joined to (or pass for) the
    ``X-Forwarded-For`` a proxy sets.  The scope still holds it.

    A name that is not an HTTP token (empty, or with spaces, controls or
    bytes past ASCII, which servers refuse but a scope may hold) raises
    :exc:`BadRequest`: WebOb could not read its header back.
    """
    key = _KEYS.get(raw_name)
    if key is None:
        if TOKEN.fullmatch(raw_name) is None:
            raise BadRequest(
                f'Invalid header name {raw_name!r}',
                b'Bad Request: invalid header name',
            )
        if b'_' in raw_name:
            key = ''
        else:
            key = raw_name.decode('ascii').upper().replace('-', '_')
            if key not in ('CONTENT_LENGTH', 'CONTENT_TYPE'):
                key = 'HTTP_' + key
        if len(_KEYS) < KEYS_LIMIT and len(raw_name) <= NAME_LIMIT:
            _KEYS[raw_name] = key
    return key


def _latin1(text: str) -> str:
    """``text``, a path from the scope, as the latin-1 reading of its
    UTF-8 bytes (as :pep:`3333` wants); ASCII, the usual case, is itself.

    A path holding what UTF-8 cannot encode (a lone surrogate, as a
    server decoding with ``surrogateescape`` would leave for a byte that
    is not UTF-8) raises :exc:`BadRequest`.
    """
    if text.isascii():
        return text
    try:
        return text.encode('utf-8').decode('latin-1')
    except UnicodeEncodeError:
        raise BadRequest(
            f'Undecodable path {text!r}', b'Bad Request: undecodable path'
        ) from None


def _query(raw: bytes) -> str:
    """``raw``, a query string from the scope, as :pep:`3333` wants it.

    Its %-escapes and bytes must read as UTF-8, as WebOb decodes
    ``request.GET`` (strictly): a query that does not (``?a=%FF``) raises
    :exc:`BadRequest`, a 400, where it would make every ``request.params``
    a 500.
    """
    if b'%' in raw or not raw.isascii():
        try:
            unquote_to_bytes(raw).decode('utf-8')
        except UnicodeDecodeError:
            raise BadRequest(
                f'Undecodable query string {raw!r}',
                b'Bad Request: undecodable query string',
            ) from None
    return raw.decode('latin-1')


def build_environ(
    scope: Scope,
    body: typing.IO[bytes],
    *,
    duplicate_header_limit: int | None = None,
) -> Environ:
    """Build a :pep:`3333` environ from an ASGI ``http`` or ``websocket``
    ``scope`` and a file-like request ``body``.

    Strings are decoded as latin-1 as :pep:`3333` asks.  A websocket scope
    gives ``REQUEST_METHOD`` ``GET`` and the ``http``/``https`` URL scheme.
    The scope itself is kept at ``environ['asgi.scope']``; headers whose
    name holds ``_`` are left out (see :func:`header_key`).  A path UTF-8
    cannot encode, a query string that is not UTF-8 once unescaped, or
    more than ``duplicate_header_limit`` copies of one header, raise
    :exc:`BadRequest`.
    """
    environ = CONSTANT.copy()
    scheme = scope.get('scheme') or 'http'
    if scope['type'] == 'websocket':
        environ['REQUEST_METHOD'] = 'GET'
        scheme = {'ws': 'http', 'wss': 'https'}.get(scheme, scheme)
    else:
        environ['REQUEST_METHOD'] = scope['method']
    script_name = scope.get('root_path')
    path_info = _latin1(scope['path'])
    if script_name:
        script_name = _latin1(script_name)
        below = below_root(path_info, script_name)
        if below is not None:  # SCRIPT_NAME + PATH_INFO is the path
            script_name = path_info[: len(path_info) - len(below)]
            path_info = below
    environ['SCRIPT_NAME'] = script_name or ''
    environ['PATH_INFO'] = path_info
    query = scope.get('query_string')
    environ['QUERY_STRING'] = _query(query) if query else ''
    server = scope.get('server')
    if server is not None and server[1] is not None:
        environ['SERVER_NAME'] = server[0]
        environ['SERVER_PORT'] = str(server[1])
    else:
        environ['SERVER_NAME'] = 'localhost'
        environ['SERVER_PORT'] = '443' if scheme == 'https' else '80'
    environ['SERVER_PROTOCOL'] = 'HTTP/' + scope.get('http_version', '1.1')
    environ['wsgi.url_scheme'] = scheme
    environ['wsgi.input'] = body
    environ['wsgi.errors'] = sys.stderr
    environ['asgi.scope'] = scope
    client = scope.get('client')
    if client is not None:
        environ['REMOTE_ADDR'] = client[0]
        environ['REMOTE_PORT'] = str(client[1])
    repeated: dict[str, list[str]] | None = None
    for raw_name, raw_value in scope.get('headers', ()):
        name = header_key(raw_name)
        if not name:
            continue  # a name with '_'
        value = raw_value.decode('latin-1')
        if name not in environ:
            environ[name] = value
            continue
        if repeated is None:
            repeated = {}
        values = repeated.setdefault(name, [environ[name]])
        if duplicate_header_limit and len(values) >= duplicate_header_limit:
            raise BadRequest(
                f'Too many duplicate headers: {name} exceeds limit of '
                f'{duplicate_header_limit}',
                b'Bad Request: Too many duplicate headers',
            )
        values.append(value)
        environ[name] = _join(values, name)
    return environ
