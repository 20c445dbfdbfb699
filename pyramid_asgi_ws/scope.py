"""A WebSocket's handshake: what it said, and the answer to it.

As in WebOb, the scope is the single source of truth: what the handshake
said is read through thin descriptors over its keys. The answer is
:meth:`HandshakeMixin.accept` or :meth:`HandshakeMixin.deny`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
import contextvars
from typing import TYPE_CHECKING, Any

from pyramid.response import Response

from pyramid_asgi_ws.closecodes import CloseCode
from pyramid_asgi_ws.messages import (
    HeadersArg,
    Message,
    WebSocketState,
    denial_messages,
    encode_headers,
)

if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from pyramid.request import Request

#: The ASGI extension that lets an application refuse a handshake with a
#: full HTTP response instead of the server's bare 403.
DENIAL_EXTENSION = 'websocket.http.response'

#: Set in the task that refused a handshake (see ``app._DenialFilter``).
DENIED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    'pyramid_asgi_ws.denied', default=False
)


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


class RequestMixin:
    """What the request of a connection (a WebSocket's handshake, an
    event stream's request) said: its path, headers, the values its
    pattern matched and the Pyramid request built from it on first use
    (by ``_request_factory``, given the connection).

    The class using it provides ``scope``.
    """

    scope: dict[str, Any]
    _request: Request | None = None
    _request_factory: Callable[[Any], Request] | None = None

    @property
    def request(self) -> Request:
        """The Pyramid request built from the handshake."""
        if self._request is None:
            if self._request_factory is None:
                raise RuntimeError(
                    f'this {type(self).__name__} has no request factory'
                )
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
    def headers(self) -> Headers:
        """The handshake headers: names match whatever their case, and
        repeated headers are joined (with commas; cookies with
        semicolons)."""
        return Headers(self.scope.get('headers') or ())


class HandshakeMixin(RequestMixin):
    """The handshake of a WebSocket: what :class:`RequestMixin` reads, the
    subprotocols, and the answer.

    The class using it provides ``scope``, ``client_state``,
    ``application_state``, ``_subprotocol``, ``receive()`` and ``send()``.
    """

    client_state: WebSocketState
    application_state: WebSocketState
    _subprotocol: str | None

    async def receive(self) -> Message:
        raise NotImplementedError  # pragma: no cover - the class provides it

    async def send(self, message: Message) -> None:
        raise NotImplementedError  # pragma: no cover - the class provides it

    @property
    def subprotocols(self) -> list[str]:
        """The subprotocols the client offered, in its order."""
        return list(self.scope.get('subprotocols') or ())

    # -- handshake --------------------------------------------------------

    async def _connect(self) -> None:
        if self.client_state is WebSocketState.CONNECTING:
            await self.receive()

    async def accept(
        self, subprotocol: str | None = None, headers: HeadersArg = None
    ) -> None:
        """Complete the handshake.

        ``subprotocol`` defaults to the one negotiated from the consumer's
        ``subprotocols`` option. ``headers`` are added to the response.
        """
        await self._connect()
        message: Message = {'type': 'websocket.accept'}
        chosen = subprotocol or self._subprotocol
        if chosen is not None:
            message['subprotocol'] = chosen
        if headers:
            message['headers'] = encode_headers(headers)
        await self.send(message)

    async def deny(
        self,
        status: int | Response = 403,
        body: bytes | str = b'',
        headers: HeadersArg = None,
    ) -> None:
        """Refuse the handshake with an HTTP response.

        ``status`` may also be a Pyramid response or HTTP exception
        (``ws.deny(HTTPForbidden())``), whose status, headers and body are
        sent; an HTTP exception without a body sends its status line.
        Servers without the ``websocket.http.response`` extension (daphne)
        answer 403 whatever the status.
        """
        if self.application_state is not WebSocketState.CONNECTING:
            raise RuntimeError('deny() must be called before accept()')
        await self._connect()
        DENIED.set(True)
        if DENIAL_EXTENSION not in (self.scope.get('extensions') or {}):
            await self.send(
                {'type': 'websocket.close', 'code': CloseCode.POLICY_VIOLATION}
            )
            return
        for message in denial_messages(status, body, headers):
            await self.send(message)
