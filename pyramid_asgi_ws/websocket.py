"""The :class:`WebSocket` object a consumer receives: the protocol alone.

State, receiving, sending, iterating and closing. The handshake (what it
said, accept and deny) comes from :mod:`pyramid_asgi_ws.scope`, groups
from :mod:`pyramid_asgi_ws.groups`, text, binary and JSON messages from
:mod:`pyramid_asgi_ws.typed`.
"""

from __future__ import annotations

import asyncio
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
)
import logging
from typing import TYPE_CHECKING, Any, TypeVar

from pyramid_asgi_ws.broadcast.member import PRESENCE_KEY
from pyramid_asgi_ws.broadcast.outbox import FLUSH_TIMEOUT
from pyramid_asgi_ws.closecodes import CloseCode, check_close, private_fallback
from pyramid_asgi_ws.groups import GroupsMixin
from pyramid_asgi_ws.messages import (
    Message,
    WebSocketState,
    disconnect_code,
    encode_headers,
    json_message,
    next_state,
)
from pyramid_asgi_ws.scope import (
    DENIAL_EXTENSION,
    DENIED,
    HandshakeMixin,
    Headers,
)
from pyramid_asgi_ws.typed import TypedMessagesMixin
from pyramid_asgi_ws.wsgi.pool import shielded

if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from pyramid.request import Request

Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
T = TypeVar('T')
#: What runs ``ws.run_sync(fn, *args, **kwargs)``: the application's
#: ``run_sync(ws, fn, args, kwargs)``, awaited.
Runner = Callable[..., Awaitable[Any]]

log = logging.getLogger(__name__)

#: A consumer's sends give the event loop a turn every this many sends.
#: A server's send returns without suspending while its transport takes
#: data (uvicorn, hypercorn) or buffers it (daphne): a consumer sending
#: in a loop to a client that keeps up would starve every other
#: connection, and the server's own shutdown, of the loop.
YIELD_EVERY = 16


class WebSocketDisconnect(Exception):
    """Raised by a receive (or a send) once the connection is closed.

    ``code`` is the WebSocket close code (1006 when the connection was lost
    without a close frame), ``reason`` its text (empty when the server does
    not pass one on, as daphne does not).
    """

    def __init__(self, code: int = 1000, reason: str = '') -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __repr__(self) -> str:
        return (
            f'WebSocketDisconnect(code={self.code!r}, reason={self.reason!r})'
        )


class WebSocket(HandshakeMixin, GroupsMixin, TypedMessagesMixin):
    """One WebSocket connection, as a consumer sees it.

    The consumer awaits :meth:`accept` (or :meth:`deny`), then exchanges
    messages with ``receive_*``/``iter_*`` and ``send_*``. What the
    handshake said (``request``, ``path``, ``headers``...) comes from
    :class:`~pyramid_asgi_ws.scope.HandshakeMixin` (with :meth:`accept`
    and :meth:`deny`), the groups from
    :class:`~pyramid_asgi_ws.groups.GroupsMixin`, messages as text,
    bytes or JSON from :class:`~pyramid_asgi_ws.typed.TypedMessagesMixin`.
    """

    def __init__(
        self,
        scope: Message,
        receive: Receive,
        send: Send,
        *,
        request_factory: Callable[[WebSocket], Request] | None = None,
        max_message_size: int | None = None,
        send_queue_size: int = 256,
        send_overflow: str = 'close',
        subprotocol: str | None = None,
        runner: Runner | None = None,
    ) -> None:
        self.scope = scope
        self._runner = runner
        self._receive = receive
        self._send = send
        self._request_factory = request_factory
        self._request: Request | None = None
        self.max_message_size = max_message_size
        self.send_queue_size = send_queue_size
        self.send_overflow = send_overflow
        self._subprotocol = subprotocol
        self.client_state = WebSocketState.CONNECTING
        self.application_state = WebSocketState.CONNECTING
        self.close_code: int | None = None
        self._closer: asyncio.Task[Any] | None = None
        self._sends = 0

    async def run_sync(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> T:
        """Return ``fn(*args, **kwargs)`` run in the app's thread pool.

        For blocking code (a database query): the loop keeps serving
        meanwhile. There ``get_current_request()`` is this socket's
        request, and the caller's context variables are copied; what
        ``fn`` raises is raised here. A cancelled call waits for ``fn``
        to end before the cancellation goes on (see
        :func:`~pyramid_asgi_ws.wsgi.pool.shielded`): what runs next, the
        request's finished callbacks included, never runs beside it.
        """
        if self._runner is None:
            raise RuntimeError('this WebSocket has no thread pool')
        result: T = await shielded(self._runner(self, fn, args, kwargs), fn)
        return result

    # -- receiving --------------------------------------------------------

    async def receive(self) -> Message:
        """Return the next raw ASGI message from the client."""
        if self.client_state is WebSocketState.DISCONNECTED:
            raise RuntimeError(
                'Cannot call "receive" once a disconnect message was received'
            )
        message = await self._receive()
        kind = message['type']
        if self.client_state is WebSocketState.CONNECTING:
            if kind != 'websocket.connect':
                raise RuntimeError(
                    'Expected ASGI message "websocket.connect", '
                    f'but got {kind!r}'
                )
            self.client_state = WebSocketState.CONNECTED
        elif kind == 'websocket.disconnect':
            self.client_state = WebSocketState.DISCONNECTED
            self.close_code = disconnect_code(message)
        return message

    async def _receive_data(self) -> str | bytes:
        if self.application_state is not WebSocketState.CONNECTED:
            if self.application_state is WebSocketState.CONNECTING:
                raise RuntimeError(
                    'WebSocket is not connected: call "accept" first'
                )
            raise self._gone()
        if self.client_state is WebSocketState.CONNECTED:
            message = await self._receive()  # the hot path
        else:
            message = await self.receive()
        if message['type'] == 'websocket.disconnect':
            self.client_state = WebSocketState.DISCONNECTED
            if self.application_state is WebSocketState.DISCONNECTED:
                # we closed first (e.g. shutdown's 1001): servers differ in
                # what they report for the client's echo, so report ours.
                raise self._gone()
            self.application_state = WebSocketState.DISCONNECTED
            self.close_code = code = disconnect_code(message)
            raise WebSocketDisconnect(code, message.get('reason') or '')
        data = message.get('text')
        if data is None:
            data = message.get('bytes') or b''
        limit = self.max_message_size
        if limit is not None and len(data) > limit:
            await self._close_for(
                CloseCode.TOO_BIG, f'message over the {limit} limit'
            )
        return data

    async def _close_for(self, code: int, reason: str) -> None:
        log.info('closing WebSocket %s with %d: %s', self.path, code, reason)
        await self._close(code, reason)
        raise WebSocketDisconnect(code, reason)

    async def _iterate(
        self, receive: Callable[[], Awaitable[T]]
    ) -> AsyncIterator[T]:
        try:
            while True:
                yield await receive()
        except WebSocketDisconnect:
            pass

    def iter_text(self) -> AsyncIterator[str]:
        """Yield text messages until the client goes."""
        return self._iterate(self.receive_text)

    def iter_bytes(self) -> AsyncIterator[bytes]:
        """Yield binary messages until the client goes."""
        return self._iterate(self.receive_bytes)

    def iter_json(self) -> AsyncIterator[Any]:
        """Yield decoded JSON messages until the client goes."""
        return self._iterate(self.receive_json)

    # -- sending ----------------------------------------------------------

    async def send(self, message: Message) -> None:
        """Send a raw ASGI message, keeping track of the connection state.

        Once the connection is closed, raises :class:`WebSocketDisconnect`
        with the close code.
        """
        kind = message['type']
        state = self.application_state
        if kind == 'websocket.send' and state is WebSocketState.CONNECTED:
            try:  # the hot path
                await self._send(message)
            except OSError:
                self._vanished()
            self._sends += 1
            if not self._sends % YIELD_EVERY:
                await asyncio.sleep(0)  # see YIELD_EVERY
            return
        if state is WebSocketState.DISCONNECTED:
            if self._closer is not None and (
                self._closer is asyncio.current_task()
            ):
                raise RuntimeError(
                    f'Cannot send {kind!r}: this task closed the WebSocket'
                )
            raise self._gone()
        self.application_state = next_state(state, message)
        if kind == 'websocket.close':
            self.close_code = message.get('code', CloseCode.NORMAL)
        await self._transmit(message)

    def _gone(self) -> WebSocketDisconnect:
        return WebSocketDisconnect(self.close_code or CloseCode.NORMAL)

    def _vanished(self) -> None:
        # ASGI 2.4: sending on a connection the client closed raises OSError.
        self.application_state = WebSocketState.DISCONNECTED
        self.client_state = WebSocketState.DISCONNECTED
        self.close_code = CloseCode.ABNORMAL
        raise WebSocketDisconnect(CloseCode.ABNORMAL)

    async def _transmit(self, message: Message) -> None:
        try:
            await self._send(message)
        except OSError:
            self._vanished()
        except Exception:
            code = message.get('code', 1000)
            fallback = private_fallback(code)
            if message['type'] != 'websocket.close' or fallback == code:
                raise
            # daphne (autobahn) refuses close codes 1001-2999 from an
            # application: send the private-range code standing for it.
            log.info(
                'server refused close code %d on %s; closing with %d',
                code,
                self.path,
                fallback,
            )
            await self._send(dict(message, code=fallback))

    async def close(self, code: int = 1000, reason: str = '') -> None:
        """Close the connection; closing twice does nothing.

        ``code`` must be one an application may send (1000-1003,
        1007-1014, 3000-4999) and ``reason`` at most 123 UTF-8 bytes, or
        :class:`ValueError` is raised. Group messages still queued for
        this client go out first, for at most
        :data:`~pyramid_asgi_ws.broadcast.outbox.FLUSH_TIMEOUT` seconds.
        Sending afterwards from the same task is a programming error
        (:class:`RuntimeError`); other tasks, and receives, get
        :class:`WebSocketDisconnect`.
        """
        await self._close(code, reason)
        self._closer = asyncio.current_task()

    async def _close(self, code: int, reason: str) -> None:
        reason = reason or ''
        check_close(code, reason)
        if self.application_state is WebSocketState.DISCONNECTED:
            return
        if self.application_state is WebSocketState.CONNECTING:
            await self._connect()
        await self._flush()
        await self.send(
            {'type': 'websocket.close', 'code': code, 'reason': reason}
        )


__all__ = [
    'DENIAL_EXTENSION',
    'DENIED',
    'FLUSH_TIMEOUT',
    'PRESENCE_KEY',
    'Headers',
    'WebSocket',
    'WebSocketDisconnect',
    'WebSocketState',
    'disconnect_code',
    'encode_headers',
    'json_message',
]
