"""Build a :pep:`3333` environ from an ASGI scope."""

import sys
import typing

from pyramid_asgi_ws.wsgi.filewrapper import FileWrapper

Scope = dict[str, typing.Any]
Environ = dict[str, typing.Any]


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
    The scope itself is kept at ``environ['asgi.scope']``.  More than
    ``duplicate_header_limit`` copies of one header raise
    :exc:`ValueError`.
    """
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
        path_info = below
    server = scope.get('server')
    if server is not None and server[1] is not None:
        server_name, server_port = server[0], str(server[1])
    else:
        server_name = 'localhost'
        server_port = '443' if scheme == 'https' else '80'
    environ: Environ = {
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
        name = raw_name.decode('latin-1').upper().replace('-', '_')
        if name not in ('CONTENT_LENGTH', 'CONTENT_TYPE'):
            name = 'HTTP_' + name
        value = raw_value.decode('latin-1')
        if name not in environ:
            environ[name] = value
            continue
        values = repeated.setdefault(name, [environ[name]])
        if duplicate_header_limit and len(values) >= duplicate_header_limit:
            raise ValueError(
                f'Too many duplicate headers: {name} exceeds limit of '
                f'{duplicate_header_limit}'
            )
        values.append(value)
        environ[name] = _join(values, name)
    return environ
