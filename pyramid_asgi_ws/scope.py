"""What a WebSocket's handshake said, read from its ASGI scope.

As in WebOb, the scope is the single source of truth: these are thin
descriptors over its keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from pyramid.request import Request


class Headers(Mapping[str, str]):
    """Read-only HTTP headers from ASGI pairs; lookups ignore case."""

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        self._items: dict[str, str] = {}
        for raw_name, raw_value in raw:
            name = raw_name.decode('latin-1').lower()
            value = raw_value.decode('latin-1')
            if name in self._items:
                glue = '; ' if name == 'cookie' else ', '
                value = self._items[name] + glue + value
            self._items[name] = value

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f'Headers({self._items!r})'


class HandshakeView:
    """The handshake of a connection: its path, headers, subprotocols, the
    values its pattern matched, and the Pyramid request built from it on
    first use (by ``_request_factory``, given the connection)."""

    scope: dict[str, Any]
    _request: Request | None = None
    _request_factory: Callable[[Any], Request] | None = None

    @property
    def request(self) -> Request:
        """The Pyramid request built from the handshake."""
        if self._request is None:
            if self._request_factory is None:
                raise RuntimeError('this WebSocket has no request factory')
            self._request = self._request_factory(self)
        return self._request

    @property
    def matchdict(self) -> dict[str, Any]:
        """The values the consumer's pattern matched in the path."""
        return self.scope.get('matchdict') or {}

    @property
    def path(self) -> str:
        """The path of the handshake, as the client sent it."""
        return self.scope['path']

    @property
    def subprotocols(self) -> list[str]:
        """The subprotocols the client offered, in its order."""
        return list(self.scope.get('subprotocols') or ())

    @property
    def headers(self) -> Headers:
        """The handshake headers: names match whatever their case, and
        repeated headers are joined (with commas; cookies with
        semicolons)."""
        return Headers(self.scope.get('headers') or ())
