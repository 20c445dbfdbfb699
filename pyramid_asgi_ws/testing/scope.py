"""The scopes and environs of the requests a test client makes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from pyramid_asgi_ws.messages import encode_headers
from pyramid_asgi_ws.scope import DENIAL_EXTENSION
from pyramid_asgi_ws.testing.loop import Message

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


@dataclass(frozen=True)
class Target:
    """Where the requests of a client appear to be addressed to.

    ``scheme`` is ``'http'`` or ``'https'`` (for ``ws``/``wss`` too),
    ``root_path`` the script name the application is mounted at.
    """

    scheme: str
    host: str
    port: int
    root_path: str

    @classmethod
    def parse(cls, base_url: str) -> Target:
        """The target of ``base_url``, with the scheme's default port."""
        url = urlsplit(base_url)
        secure = url.scheme in ('https', 'wss')
        return cls(
            scheme='https' if secure else 'http',
            host=url.hostname or 'testserver',
            port=url.port or (443 if secure else 80),
            root_path=url.path.rstrip('/'),
        )

    @property
    def host_header(self) -> str:
        """The ``Host`` a client sends: the port only if not the default."""
        default_port = 443 if self.scheme == 'https' else 80
        if self.port == default_port:
            return self.host
        return f'{self.host}:{self.port}'

    def wsgi_environ(self) -> dict[str, str]:
        """The environ keys that address a WSGI request to the target."""
        return {
            'HTTP_HOST': self.host_header,
            'wsgi.url_scheme': self.scheme,
            'SCRIPT_NAME': self.root_path,
        }

    def websocket_scope(
        self,
        path: str,
        headers: Headers | None = None,
        subprotocols: Iterable[str] | None = None,
        cookie: str = '',
    ) -> Message:
        """The scope of a handshake to ``path`` (which may hold a query).

        ``cookie`` is sent unless ``headers`` hold a ``Cookie`` of their
        own; a ``Host`` among ``headers`` replaces the target's.
        """
        scope = self.http_scope(path, headers, cookie)
        offered = list(subprotocols or ())
        if offered:
            scope['headers'].append(
                (b'sec-websocket-protocol', ', '.join(offered).encode())
            )
        scope.update(
            type='websocket',
            scheme='wss' if self.scheme == 'https' else 'ws',
            subprotocols=offered,
            extensions={DENIAL_EXTENSION: {}},
        )
        del scope['method']
        return scope

    def http_scope(
        self,
        path: str,
        headers: Headers | None = None,
        cookie: str = '',
        method: str = 'GET',
    ) -> Message:
        """The scope of an HTTP request to ``path`` (which may hold a
        query), with headers as for :meth:`websocket_scope`."""
        path, _, query = path.partition('?')
        raw = encode_headers(
            headers.items() if isinstance(headers, Mapping) else headers
        )
        names = {name.lower() for name, _ in raw}
        if b'host' not in names:
            raw.insert(0, (b'host', self.host_header.encode('latin-1')))
        if b'cookie' not in names and cookie:
            raw.append((b'cookie', cookie.encode('latin-1')))
        full_path = self.root_path + path
        return {
            'type': 'http',
            'asgi': {'version': '3.0', 'spec_version': '2.4'},
            'http_version': '1.1',
            'method': method,
            'scheme': self.scheme,
            'server': (self.host, self.port),
            'client': ('testclient', 50000),
            'root_path': self.root_path,
            'path': unquote(full_path),
            'raw_path': full_path.encode('latin-1'),
            'query_string': query.encode('latin-1'),
            'headers': raw,
            'state': {},
        }


def header_dict(headers: Any) -> dict[str, str]:
    """ASGI header pairs as a dict of lower-case names, decoded."""
    result: dict[str, str] = {}
    for name, value in headers or ():
        result[name.decode('latin-1').lower()] = value.decode('latin-1')
    return result
