"""Consumers with plain ``def`` methods, run in the application's pool.

:class:`SyncWebSocketConsumer` is the twin of
:class:`~pyramid_asgi_ws.WebSocketConsumer` for blocking code, such as
``request.dbsession``: each of its methods runs in the thread pool (the
bridge's, ``asgi_ws.threads``) through
:meth:`~pyramid_asgi_ws.WebSocket.run_sync`, one at a time and in message
order, and inside the request's transaction when ``pyramid_tm`` is
included. The receive loop stays on the event loop, so a connection holds
a thread only while one of its methods runs. The methods talk to the
connection through a :class:`SyncWebSocket`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
import concurrent.futures
import contextlib
import functools
from typing import Any

from pyramid.exceptions import ConfigurationError

from pyramid_asgi_ws.broadcast import broadcast
from pyramid_asgi_ws.closecodes import CloseCode
from pyramid_asgi_ws.consumers import ENCODINGS, WebSocketConsumer
from pyramid_asgi_ws.interfaces import IASGISettings
from pyramid_asgi_ws.messages import HeadersArg
from pyramid_asgi_ws.txn import request_transaction
from pyramid_asgi_ws.websocket import WebSocket, WebSocketDisconnect


class SyncWebSocket:
    """A synchronous handle on a :class:`~pyramid_asgi_ws.WebSocket`.

    Its methods are for a thread other than the event loop's, such as a
    :class:`SyncWebSocketConsumer`'s: each runs the connection's own
    coroutine on the loop and returns once it is done, raising what it
    raised (:class:`~pyramid_asgi_ws.WebSocketDisconnect` when the client
    has gone). Called from the event loop they raise
    :class:`RuntimeError`, since the loop would wait for itself.
    ``websocket`` is the connection. A call waits at most
    ``send_timeout`` seconds (``asgi_ws.send_timeout`` for a consumer's
    handle; ``None``, no bound): a client that stops reading then has its
    socket closed with 1013 and the call raises
    ``WebSocketDisconnect(1013)``, so it never holds a thread for good.
    """

    def __init__(
        self,
        websocket: WebSocket,
        loop: asyncio.AbstractEventLoop,
        send_timeout: float | None = None,
    ) -> None:
        self.websocket = websocket
        self._loop = loop
        self._closed = False
        self.send_timeout = send_timeout
        self._stalled: concurrent.futures.Future[None] | None = None

    def _wait(self, coro: Coroutine[Any, Any, Any]) -> Any:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            coro.close()
            raise RuntimeError(
                'SyncWebSocket called from the event loop: await the '
                'WebSocket itself there'
            )
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        done, _ = concurrent.futures.wait([future], self.send_timeout)
        if not done:
            self._give_up(future)
        return future.result()

    def _give_up(self, future: concurrent.futures.Future[Any]) -> None:
        # A client that stops reading must not hold a pool thread (with
        # few threads, the whole application): the wait is dropped and the
        # socket closed by a task of the loop, where waiting holds no
        # thread.
        future.cancel()
        self._stalled = asyncio.run_coroutine_threadsafe(
            self._close_stalled(), self._loop
        )
        raise WebSocketDisconnect(CloseCode.TRY_AGAIN_LATER)

    async def _close_stalled(self) -> None:
        # The close frame waits behind what the client has not read: it
        # gets as long as a send did, then the server may cut the client.
        close = self.websocket.close(
            CloseCode.TRY_AGAIN_LATER, 'the client does not keep up'
        )
        with contextlib.suppress(WebSocketDisconnect, TimeoutError):
            await asyncio.wait_for(close, self.send_timeout)

    async def _finish(self) -> None:
        """Wait for the close of a stalled send, if one was made: a server
        cuts a connection whose application has returned, and the close
        frame with it."""
        if self._stalled is not None:
            await asyncio.wrap_future(self._stalled)

    def _send(self, coro: Coroutine[Any, Any, Any]) -> None:
        if self._closed:
            coro.close()
            raise RuntimeError('Cannot send: this consumer closed the socket')
        self._wait(coro)

    @property
    def request(self) -> Any:
        """The Pyramid request built from the handshake."""
        return self.websocket.request

    @property
    def matchdict(self) -> dict[str, Any]:
        """The values the consumer's pattern matched in the path."""
        return self.websocket.matchdict

    def accept(
        self, subprotocol: str | None = None, headers: HeadersArg = None
    ) -> None:
        """Complete the handshake, as :meth:`WebSocket.accept
        <pyramid_asgi_ws.WebSocket.accept>` does."""
        self._wait(self.websocket.accept(subprotocol, headers))

    def send_text(self, data: str) -> None:
        """Send a text message."""
        self._send(self.websocket.send_text(data))

    def send_bytes(self, data: bytes) -> None:
        """Send a binary message."""
        self._send(self.websocket.send_bytes(data))

    def send_json(self, data: Any, mode: str = 'text') -> None:
        """Send ``data`` encoded as JSON, in a text or binary message."""
        self._send(self.websocket.send_json(data, mode))

    def close(self, code: int = 1000, reason: str = '') -> None:
        """Close the connection, as :meth:`WebSocket.close
        <pyramid_asgi_ws.WebSocket.close>` does; sending afterwards is a
        :class:`RuntimeError`."""
        self._wait(self.websocket.close(code, reason))
        self._closed = True

    def join(
        self, group: str, info: Any = None, since: str | None = None
    ) -> bool:
        """Add this connection to ``group``; it leaves when it closes.

        With ``since``, the messages missed after it come first; returns
        what :meth:`WebSocket.join <pyramid_asgi_ws.WebSocket.join>`
        does."""
        joined: bool = self._wait(self.websocket.join(group, info, since))
        return joined

    def leave(self, group: str) -> None:
        """Take this connection out of ``group``."""
        self._wait(self.websocket.leave(group))

    def broadcast(self, group: str, message: Any) -> None:
        """Publish ``message`` to ``group`` as ``request.broadcast`` does:
        checked now and, inside a transaction, sent once it commits."""
        broadcast(self.request, group, message)


def check_encoding(consumer: type) -> None:
    """Raise :exc:`~pyramid.exceptions.ConfigurationError` unless the
    ``encoding`` of the consumer class is one of :data:`ENCODINGS`."""
    encoding = getattr(consumer, 'encoding', None)
    if encoding not in ENCODINGS:
        raise ConfigurationError(
            f'{consumer.__module__}.{consumer.__qualname__}.encoding must '
            f'be one of {", ".join(ENCODINGS)}, not {encoding!r}'
        )


class SyncWebSocketConsumer:
    """A consumer written as a class of plain ``def`` methods, one instance
    per connection, each method run in the application's thread pool.

    Override :meth:`on_connect`, :meth:`on_receive` and
    :meth:`on_disconnect`; they get a
    :class:`~pyramid_asgi_ws.syncconsumer.SyncWebSocket`, also
    available as ``self.ws``. ``encoding`` (``'text'``, ``'bytes'`` or
    ``'json'``, checked when the class is defined) says how incoming
    messages are decoded. When ``pyramid_tm`` is included, each call runs
    in the request's transaction (``request.tm``): it commits when the
    method returns and aborts when it raises, which closes the connection
    as an exception in an async consumer does (1011, or 4000 + the status
    of an HTTP exception). Messages published with ``ws.broadcast`` or
    ``request.broadcast`` go out once the transaction commits.

    .. code-block:: python

        @websocket_consumer('/notes')
        class Notes(SyncWebSocketConsumer):
            encoding = 'json'

            def on_receive(self, ws, data):
                ws.request.dbsession.add(Note(text=data['text']))
                ws.broadcast('notes', data)
    """

    encoding: str = 'text'

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        check_encoding(cls)

    async def __call__(self, ws: WebSocket) -> None:
        settings = ws.scope['registry'].getUtility(IASGISettings)
        self.ws = SyncWebSocket(
            ws, asyncio.get_running_loop(), settings['send_timeout']
        )
        try:
            await _Driver(self, self.ws)(ws)
        finally:
            await self.ws._finish()

    def on_connect(self, ws: SyncWebSocket) -> None:
        """Called on the handshake; accepts it by default."""
        ws.accept()

    def on_receive(self, ws: SyncWebSocket, data: Any) -> None:
        """Called with each decoded message; does nothing by default."""

    def on_disconnect(self, ws: SyncWebSocket, code: int) -> None:
        """Called once the connection has ended, with its close code."""


class _Driver(WebSocketConsumer):
    """The async consumer that runs a :class:`SyncWebSocketConsumer`: its
    receive loop, with each call sent to the pool."""

    def __init__(
        self, consumer: SyncWebSocketConsumer, handle: SyncWebSocket
    ) -> None:
        self.consumer = consumer
        self.handle = handle
        self.encoding = consumer.encoding

    async def _run(self, method: Callable[..., object], *args: Any) -> None:
        # Named as the method, for the log of a call that raised while
        # its task was cancelled (ws.run_sync waits for the call then).
        @functools.wraps(method)
        def call() -> None:
            handle = self.handle  # in the pool: the request is built here
            in_transaction(handle.request, method, handle, *args)

        await self.handle.websocket.run_sync(call)

    async def on_connect(self, ws: WebSocket) -> None:
        await self._run(self.consumer.on_connect)

    async def on_receive(self, ws: WebSocket, data: Any) -> None:
        await self._run(self.consumer.on_receive, data)

    async def on_disconnect(self, ws: WebSocket, code: int) -> None:
        await self._run(self.consumer.on_disconnect, code)


def in_transaction(
    request: Any, method: Callable[..., object], *args: Any
) -> None:
    """Call ``method(*args)`` in a transaction of ``request.tm``, if any.

    As ``pyramid_tm``'s tween does for a view (``tm.activate_hook``
    included): see :func:`~pyramid_asgi_ws.txn.request_transaction`.
    """
    with request_transaction(request):
        method(*args)


__all__ = ['SyncWebSocket', 'SyncWebSocketConsumer', 'check_encoding']
