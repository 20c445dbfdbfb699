"""The :class:`WebSocket` object a consumer receives."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
import contextvars
import enum
import inspect
import json
import logging
from typing import TYPE_CHECKING, Any

from pyramid_asgi_ws.interfaces import IBroadcaster

if TYPE_CHECKING:  # pragma: no cover
    from pyramid.request import Request

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger(__name__)

#: The ASGI extension that lets an application refuse a handshake with a
#: full HTTP response instead of the server's bare 403.
DENIAL_EXTENSION = 'websocket.http.response'

#: Seconds a close waits for queued group messages to reach the client.
FLUSH_TIMEOUT = 1.0

#: The scope key holding a connection's presence info.
PRESENCE_KEY = 'asgi_ws.presence'

#: Set in the task that refused a handshake (see ``app._DenialFilter``).
DENIED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    'pyramid_asgi_ws.denied', default=False
)


class _AppCloseCodes:
    def __contains__(self, code: object) -> bool:
        return code == 1000 or isinstance(code, int) and 3000 <= code <= 4999


#: Close codes every server lets an application send.
APP_CLOSE_CODES = _AppCloseCodes()


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


class WebSocketState(enum.Enum):
    """Where one side of a WebSocket connection is in its life."""

    CONNECTING = 0
    CONNECTED = 1
    DISCONNECTED = 2
    RESPONSE = 3


class WebSocketDisconnect(Exception):
    """Raised by a receive (or a send) once the connection is closed.

    ``code`` is the WebSocket close code, ``reason`` its text (empty when
    the server does not pass one on, as daphne does not).
    """

    def __init__(self, code: int = 1000, reason: str = '') -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __repr__(self) -> str:
        return (
            f'WebSocketDisconnect(code={self.code!r}, reason={self.reason!r})'
        )


def encode_headers(
    headers: Iterable[tuple[Any, Any]] | dict[Any, Any] | None,
) -> list[tuple[bytes, bytes]]:
    """Return ASGI ``headers`` (latin-1 bytes pairs) from pairs or a dict."""
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, dict) else headers
    return [
        (
            name if isinstance(name, bytes) else str(name).encode('latin-1'),
            value
            if isinstance(value, bytes)
            else str(value).encode('latin-1'),
        )
        for name, value in items
    ]


class WebSocket:
    """One WebSocket connection, as a consumer sees it.

    The consumer awaits :meth:`accept` (or :meth:`deny`), then exchanges
    messages with ``receive_*``/``iter_*`` and ``send_*``. ``request`` is a
    Pyramid request built from the handshake, created on first use.
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
    ) -> None:
        self.scope = scope
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
        self.dropped = 0
        # created on first use: most connections never need them, and
        # thousands of idle connections should cost as little as possible
        self._outbox: deque[Message] | None = None
        self._groups: set[str] | None = None
        self._hook_tasks: set[asyncio.Future[Any]] | None = None
        self._drainer: asyncio.Task[None] | None = None
        self._emptied: asyncio.Event | None = None
        self._wakeup: asyncio.Event
        #: Called as ``hook(group, message)`` for each group message instead
        #: of sending it to the client; see :meth:`deliver`.
        self.on_group_message: Callable[[str, Any], Any] | None = None

    # -- what the handshake said ------------------------------------------

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

    # -- handshake --------------------------------------------------------

    async def _connect(self) -> None:
        if self.client_state is WebSocketState.CONNECTING:
            await self.receive()

    async def accept(
        self,
        subprotocol: str | None = None,
        headers: Iterable[tuple[Any, Any]] | dict[Any, Any] | None = None,
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
        status: int = 403,
        body: bytes | str = b'',
        headers: Iterable[tuple[Any, Any]] | dict[Any, Any] | None = None,
    ) -> None:
        """Refuse the handshake with an HTTP response.

        Servers without the ``websocket.http.response`` extension (daphne)
        answer 403 whatever ``status`` says.
        """
        if self.application_state is not WebSocketState.CONNECTING:
            raise RuntimeError('deny() must be called before accept()')
        await self._connect()
        DENIED.set(True)
        if DENIAL_EXTENSION not in (self.scope.get('extensions') or {}):
            await self.send({'type': 'websocket.close', 'code': 1008})
            return
        if isinstance(body, str):
            body = body.encode('utf-8')
        raw_headers = encode_headers(headers)
        if body and not any(
            n.lower() == b'content-type' for n, _ in raw_headers
        ):
            raw_headers.append((b'content-type', b'text/plain; charset=utf-8'))
        raw_headers.append((b'content-length', str(len(body)).encode()))
        await self.send(
            {
                'type': 'websocket.http.response.start',
                'status': status,
                'headers': raw_headers,
            }
        )
        await self.send({'type': 'websocket.http.response.body', 'body': body})

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
            # daphne sends code None for a close frame without a code
            self.close_code = message.get('code') or 1005
        return message

    async def _receive_data(self) -> str | bytes:
        if self.application_state is not WebSocketState.CONNECTED:
            if self.application_state is WebSocketState.CONNECTING:
                raise RuntimeError(
                    'WebSocket is not connected: call "accept" first'
                )
            raise WebSocketDisconnect(self.close_code or 1000)
        if self.client_state is WebSocketState.CONNECTED:
            message = await self._receive()  # the hot path
        else:
            message = await self.receive()
        if message['type'] == 'websocket.disconnect':
            self.client_state = WebSocketState.DISCONNECTED
            if self.application_state is WebSocketState.DISCONNECTED:
                # we closed first (e.g. shutdown's 1001): servers differ in
                # what they report for the client's echo, so report ours.
                raise WebSocketDisconnect(self.close_code or 1000)
            self.application_state = WebSocketState.DISCONNECTED
            self.close_code = code = message.get('code') or 1005
            raise WebSocketDisconnect(code, message.get('reason') or '')
        data = message.get('text')
        if data is None:
            data = message.get('bytes') or b''
        limit = self.max_message_size
        if limit is not None and len(data) > limit:
            await self._close_for(1009, f'message over the {limit} limit')
        return data

    async def _close_for(self, code: int, reason: str) -> None:
        log.info('closing WebSocket %s with %d: %s', self.path, code, reason)
        await self.close(code, reason)
        raise WebSocketDisconnect(code, reason)

    async def receive_text(self) -> str:
        """Return the next text message; a binary one closes with 1003."""
        data = await self._receive_data()
        if not isinstance(data, str):
            await self._close_for(1003, 'expected a text message')
        return data  # type: ignore[return-value]

    async def receive_bytes(self) -> bytes:
        """Return the next binary message; a text one closes with 1003."""
        data = await self._receive_data()
        if not isinstance(data, bytes):
            await self._close_for(1003, 'expected a binary message')
        return data  # type: ignore[return-value]

    async def receive_json(self) -> Any:
        """Return the next message, text or binary, decoded from JSON.

        Malformed JSON, or JSON nested too deeply for Python to decode,
        closes the socket with 1007 and raises :class:`WebSocketDisconnect`.
        """
        data = await self._receive_data()
        try:
            return json.loads(data)
        except ValueError:
            await self._close_for(1007, 'message is not valid JSON')
        except RecursionError:  # '[[[[...' from a hostile client
            await self._close_for(1007, 'JSON nested too deeply')

    async def iter_text(self) -> AsyncIterator[str]:
        """Yield text messages until the client goes."""
        try:
            while True:
                yield await self.receive_text()
        except WebSocketDisconnect:
            pass

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        """Yield binary messages until the client goes."""
        try:
            while True:
                yield await self.receive_bytes()
        except WebSocketDisconnect:
            pass

    async def iter_json(self) -> AsyncIterator[Any]:
        """Yield decoded JSON messages until the client goes."""
        try:
            while True:
                yield await self.receive_json()
        except WebSocketDisconnect:
            pass

    # -- sending ----------------------------------------------------------

    async def send(self, message: Message) -> None:
        """Send a raw ASGI message, keeping track of the connection state."""
        kind = message['type']
        if (
            kind == 'websocket.send'
            and self.application_state is WebSocketState.CONNECTED
        ):
            try:  # the hot path
                await self._send(message)
            except OSError:
                self._vanished()
            return
        state = self.application_state
        if state is WebSocketState.CONNECTING:
            if kind == 'websocket.accept':
                self.application_state = WebSocketState.CONNECTED
            elif kind == 'websocket.close':
                self.application_state = WebSocketState.DISCONNECTED
                self.close_code = message.get('code', 1000)
            elif kind == 'websocket.http.response.start':
                self.application_state = WebSocketState.RESPONSE
            else:
                raise RuntimeError(
                    'Expected ASGI message "websocket.accept", '
                    '"websocket.close" or "websocket.http.response.start", '
                    f'but got {kind!r}'
                )
        elif state is WebSocketState.CONNECTED:
            if kind == 'websocket.close':
                self.application_state = WebSocketState.DISCONNECTED
                self.close_code = message.get('code', 1000)
            elif kind != 'websocket.send':
                raise RuntimeError(
                    'Expected ASGI message "websocket.send" or '
                    f'"websocket.close", but got {kind!r}'
                )
        elif state is WebSocketState.RESPONSE:
            if kind != 'websocket.http.response.body':
                raise RuntimeError(
                    'Expected ASGI message "websocket.http.response.body", '
                    f'but got {kind!r}'
                )
            if not message.get('more_body', False):
                self.application_state = WebSocketState.DISCONNECTED
        else:
            raise WebSocketDisconnect(self.close_code or 1000)
        try:
            await self._transmit(message)
        except OSError:
            self._vanished()

    def _vanished(self) -> None:
        # ASGI 2.4: sending on a connection the client closed raises OSError.
        self.application_state = WebSocketState.DISCONNECTED
        self.client_state = WebSocketState.DISCONNECTED
        raise WebSocketDisconnect(1006)

    async def _transmit(self, message: Message) -> None:
        try:
            await self._send(message)
        except OSError:
            raise
        except Exception:
            code = message.get('code', 1000)
            if message['type'] != 'websocket.close' or code in APP_CLOSE_CODES:
                raise
            # daphne (autobahn) refuses close codes an application may not
            # send by RFC 6455's letter (1001-2999): fall back to 1000.
            log.info(
                'server refused close code %d on %s; closing with 1000',
                code,
                self.path,
            )
            await self._send(dict(message, code=1000))

    async def send_text(self, data: str) -> None:
        """Send a text message."""
        await self.send({'type': 'websocket.send', 'text': data})

    async def send_bytes(self, data: bytes) -> None:
        """Send a binary message."""
        await self.send({'type': 'websocket.send', 'bytes': data})

    async def send_json(self, data: Any, mode: str = 'text') -> None:
        """Send ``data`` encoded as JSON, in a text or binary message."""
        await self.send(json_message(data, mode))

    async def close(self, code: int = 1000, reason: str = '') -> None:
        """Close the connection; closing twice does nothing.

        Group messages still queued for this client go out first, for at
        most :data:`FLUSH_TIMEOUT` seconds.
        """
        if self.application_state is WebSocketState.DISCONNECTED:
            return
        if self.application_state is WebSocketState.CONNECTING:
            await self._connect()
        if self._outbox:
            await self._flush()
        await self.send(
            {'type': 'websocket.close', 'code': code, 'reason': reason or ''}
        )

    # -- groups -----------------------------------------------------------

    @property
    def broadcaster(self) -> Any:
        """The application's broadcaster (groups and publishing)."""
        registry = self.scope.get('registry')
        broadcaster = (
            registry.queryUtility(IBroadcaster)
            if registry is not None
            else None
        )
        if broadcaster is None:
            raise RuntimeError(
                'no broadcaster: serve this WebSocket through an app made by '
                'config.make_asgi_app() after '
                "config.include('pyramid_asgi_ws')"
            )
        return broadcaster

    @property
    def groups(self) -> set[str]:
        """The groups this connection is in."""
        if self._groups is None:
            self._groups = set()
        return self._groups

    @property
    def presence(self) -> Any:
        """What ``members()`` reports for this connection (JSON-able)."""
        return self.scope.get(PRESENCE_KEY)

    @presence.setter
    def presence(self, info: Any) -> None:
        self.scope[PRESENCE_KEY] = info

    async def join(self, group: str, info: Any = None) -> None:
        """Add this connection to ``group``; it leaves when it closes.

        ``info`` (default: :attr:`presence`) is what ``members(group)``
        reports for this connection in that group.
        """
        await self.broadcaster.join(self, group, info)

    async def members(self, group: str) -> dict[str, Any]:
        """Return ``{connection id: presence info}`` for ``group``.

        With the Redis backend this spans every process.
        """
        return await self.broadcaster.members(group)

    async def leave(self, group: str) -> None:
        """Take this connection out of ``group``."""
        await self.broadcaster.leave(self, group)

    async def broadcast(self, group: str, message: Any) -> None:
        """Publish ``message`` (text, bytes or JSON-able) to ``group``."""
        await self.broadcaster.publish(group, message)

    def deliver(self, group: str, message: Any) -> None:
        """Hand a group message to this connection without waiting.

        With an ``on_group_message`` hook set, the hook gets the message
        (a coroutine hook runs as a task); otherwise the message is pushed
        to the client: text as text, bytes as bytes, anything else as JSON.
        """
        hook = self.on_group_message
        if hook is not None:
            result = hook(group, message)
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                if self._hook_tasks is None:
                    self._hook_tasks = set()
                self._hook_tasks.add(task)
                task.add_done_callback(self._hook_done)
            return
        if isinstance(message, str):
            self.push({'type': 'websocket.send', 'text': message})
        elif isinstance(message, (bytes, bytearray)):
            self.push({'type': 'websocket.send', 'bytes': bytes(message)})
        else:
            self.push(json_message(message))

    def _hook_done(self, task: asyncio.Future[Any]) -> None:
        if self._hook_tasks is not None:
            self._hook_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                'on_group_message hook failed on WebSocket %s',
                self.path,
                exc_info=task.exception(),
            )

    # -- fan-out ----------------------------------------------------------

    def push(self, message: Message) -> bool:
        """Queue a ``websocket.send`` message without waiting for the client.

        Used for group messages so one slow client never delays the others.
        The queue holds ``send_queue_size`` messages; past that
        ``send_overflow`` decides: ``drop_oldest``, ``drop_newest`` or
        ``close`` (with 1013). Returns whether the message was queued.
        """
        if self.application_state is not WebSocketState.CONNECTED:
            return False
        outbox = self._outbox
        if outbox is None:
            outbox = self._outbox = deque()
        if len(outbox) >= self.send_queue_size:
            self.dropped += 1
            if self.send_overflow == 'drop_newest':
                return False
            if self.send_overflow == 'close':
                outbox.clear()
                log.warning(
                    'closing WebSocket %s with 1013: its send queue of %d '
                    'messages is full (asgi_ws.send_overflow = close)',
                    self.path,
                    self.send_queue_size,
                )
                outbox.append(
                    {
                        'type': 'websocket.close',
                        'code': 1013,
                        'reason': 'send queue full',
                    }
                )
                self.application_state = WebSocketState.DISCONNECTED
                self.close_code = 1013
                self._start_drain(outbox)
                return False
            outbox.popleft()
        outbox.append(message)
        self._start_drain(outbox)
        return True

    def _start_drain(self, outbox: deque[Message]) -> None:
        # One sender task per connection, started on the first push and
        # kept until the connection ends: a task per fan-out would leave
        # thousands of dead tasks for the garbage collector each broadcast.
        if self._drainer is None:
            self._wakeup = asyncio.Event()
            self._drainer = asyncio.get_running_loop().create_task(
                self._drain(outbox, self._wakeup)
            )
        else:
            self._wakeup.set()

    async def _drain(
        self, outbox: deque[Message], wakeup: asyncio.Event
    ) -> None:
        try:
            while True:
                while outbox:
                    await self._transmit(outbox.popleft())
                if self._emptied is not None:
                    self._emptied.set()
                wakeup.clear()
                await wakeup.wait()
        except Exception:  # the client is gone; nothing left to tell it
            outbox.clear()
            self.application_state = WebSocketState.DISCONNECTED

    async def _flush(self) -> None:
        emptied = self._emptied = asyncio.Event()
        self._wakeup.set()
        try:
            await asyncio.wait_for(emptied.wait(), FLUSH_TIMEOUT)
        except asyncio.TimeoutError:
            log.info(
                'closing WebSocket %s with %d queued messages unsent',
                self.path,
                self.pending,
            )
        finally:
            self._emptied = None

    @property
    def pending(self) -> int:
        """How many pushed messages wait to be sent."""
        return len(self._outbox) if self._outbox is not None else 0

    async def _finish(self) -> None:
        """Stop the send queue once the consumer is done."""
        for task in list(self._hook_tasks or ()):
            task.cancel()
        drainer = self._drainer
        if drainer is not None:
            drainer.cancel()
            try:
                await drainer
            except asyncio.CancelledError:
                pass
        if self._outbox is not None:
            self._outbox.clear()


def json_message(data: Any, mode: str = 'text') -> Message:
    """Return the ``websocket.send`` message carrying ``data`` as JSON."""
    if mode not in ('text', 'binary'):
        raise ValueError(f'mode must be "text" or "binary", not {mode!r}')
    text = json.dumps(data, separators=(',', ':'), ensure_ascii=False)
    if mode == 'binary':
        return {'type': 'websocket.send', 'bytes': text.encode('utf-8')}
    return {'type': 'websocket.send', 'text': text}
