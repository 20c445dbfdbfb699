"""Watchers: what the ASGI messages of one scope tell the metrics.

With metrics on, the application hands each scope's ``receive`` and
``send`` to :func:`watch`, which returns them wrapped; the watcher reads
each message as it passes. With metrics off nothing is wrapped, so a
connection pays nothing for them.

A refusal leaves its reason class (``kind``) in the scope, under
:data:`~pyramid_asgi_ws.refusal.REFUSAL_KEY`; a denial nobody explained
is the consumer's own (``application``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
import time
from typing import TYPE_CHECKING, Any

from pyramid_asgi_ws.messages import disconnect_code
from pyramid_asgi_ws.refusal import REFUSAL_KEY

if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from pyramid_asgi_ws.metrics.collectors import Metrics

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: The scope key holding the watcher of a WebSocket or an event stream
#: until its consumer ends.
WATCH_KEY = 'asgi_ws.metrics'

#: Close code of a connection whose send failed: the client is gone.
LOST = 1006


def code_label(initiator: str, code: int) -> str:
    """The ``code`` label of a close: the application's own code, or,
    for a client's, the protocol's codes and the ranges above them
    (``3xxx``, ``4xxx``), since a client may pick any of 2000 codes
    there, each of which would otherwise be a label set of its own."""
    code = int(code)
    if initiator == 'application' or 1000 <= code <= 1015:
        return str(code)
    return f'{code // 1000}xxx' if 3000 <= code <= 4999 else 'other'


def size(message: Message) -> int:
    """The bytes of a WebSocket message's data, text as UTF-8."""
    text = message.get('text')
    if text is None:
        return len(message.get('bytes') or b'')
    return len(text) if text.isascii() else len(text.encode('utf-8'))


class Watch:
    """What all watchers share: the scope, the consumer and the metrics."""

    def __init__(
        self,
        metrics: Metrics,
        scope: dict[str, Any],
        consumer: str,
        receive: Receive,
        send: Send,
    ) -> None:
        self.metrics = metrics
        self.scope = scope
        self.consumer = consumer
        self._receive = receive
        self._send = send

    def refused(self, protocol: str, status: int) -> None:
        """Count a refused handshake or HTTP consumer request."""
        reason = self.scope.get(REFUSAL_KEY, 'application')
        self.metrics.refusals.labels(
            protocol, self.consumer, str(status), reason
        ).inc()


class WebSocketWatch(Watch):
    """A WebSocket's watcher: handshake, messages, bytes, the close.

    The connection counts as open from its accept until :meth:`ended`
    (its consumer is done); its close is the first close code either
    side sends.
    """

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        if self.consumer:  # a path no consumer serves is only refused
            (
                self.open,
                self.accepts,
                self.received,
                self.received_bytes,
                self.sent,
                self.sent_bytes,
            ) = self.metrics.children(self.consumer)
        self.accepted = False
        self.closed = False

    async def receive(self) -> Message:
        message = await self._receive()
        kind = message['type']
        if kind == 'websocket.receive':
            self.received.inc()
            self.received_bytes.inc(size(message))
        elif kind == 'websocket.disconnect' and self.accepted:
            self.close('client', disconnect_code(message))
        return message

    async def send(self, message: Message) -> None:
        kind = message['type']
        if kind == 'websocket.send':
            self.sent.inc()
            self.sent_bytes.inc(size(message))
        elif kind == 'websocket.accept':
            self.accepted = True
            self.accepts.inc()
            self.open.inc()
        elif kind == 'websocket.close':
            if self.accepted:
                self.close('application', message.get('code', 1000))
            else:  # the server answers 403 (no denial extension)
                self.refused('websocket', 403)
        elif kind == 'websocket.http.response.start':
            self.refused('websocket', message['status'])
        try:
            await self._send(message)
        except OSError:
            if self.accepted:
                self.close('client', LOST)
            raise

    def close(self, initiator: str, code: int) -> None:
        """Count the connection's close, once: the first side's code."""
        if not self.closed:
            self.closed = True
            self.metrics.closes.labels(
                self.consumer, code_label(initiator, code), initiator
            ).inc()

    def ended(self) -> None:
        """The consumer is done: the connection no longer counts as open."""
        if self.accepted:
            self.accepted = False
            self.open.dec()


class HTTPWatch(Watch):
    """A request to the Pyramid application: status and duration."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.start = time.perf_counter()
        self.status = 0

    async def send(self, message: Message) -> None:
        await self._send(message)
        kind = message['type']
        if kind == 'http.response.start':
            self.status = message['status']
        elif kind == 'http.response.body' and not message.get('more_body'):
            metrics = self.metrics
            metrics.http_duration.observe(time.perf_counter() - self.start)
            metrics.http_responses.labels(str(self.status)).inc()


class ConsumerWatch(Watch):
    """A request to an HTTP consumer: only its refusal counts."""

    protocol = 'http'

    async def send(self, message: Message) -> None:
        if message['type'] == 'http.response.start':
            self.started(message['status'])
        await self._send(message)

    def started(self, status: int) -> None:
        """The response starts: count it if it is a refusal."""
        if REFUSAL_KEY in self.scope:
            self.refused(self.protocol, status)


class StreamWatch(ConsumerWatch):
    """An event stream's watcher: its refusal, or the stream open from
    the start of its response until :meth:`ended` (its consumer is
    done)."""

    protocol = 'sse'
    opened = False

    def started(self, status: int) -> None:
        if REFUSAL_KEY in self.scope:
            super().started(status)
            return
        metrics = self.metrics
        metrics.sse_accepted.labels(self.consumer).inc()
        self.open = metrics.sse_streams.labels(self.consumer)
        self.open.inc()
        self.opened = True

    def ended(self) -> None:
        """The consumer is done: the stream no longer counts as open."""
        if self.opened:
            self.opened = False
            self.open.dec()


def watch(
    metrics: Metrics,
    scope: dict[str, Any],
    found: Any,
    receive: Receive,
    send: Send,
) -> tuple[Receive, Send]:
    """Return ``receive`` and ``send`` wrapped by the scope's watcher.

    ``found`` is what the consumer router matched (``(consumer,
    matchdict)``, or ``None``: the Pyramid application, or no consumer
    for a WebSocket).
    """
    name = '' if found is None else found[0].name
    if scope['type'] == 'websocket':
        watcher = WebSocketWatch(metrics, scope, name, receive, send)
        scope[WATCH_KEY] = watcher
        return watcher.receive, watcher.send
    if found is None:
        http = HTTPWatch(metrics, scope, name, receive, send)
        return receive, http.send
    if found[0].protocol == 'sse':
        stream = StreamWatch(metrics, scope, name, receive, send)
        scope[WATCH_KEY] = stream
        return receive, stream.send
    return receive, ConsumerWatch(metrics, scope, name, receive, send).send


def ended(scope: dict[str, Any]) -> None:
    """Tell the watcher of a WebSocket or an event stream, if any, that
    its consumer is done."""
    watcher = scope.get(WATCH_KEY)
    if watcher is not None:
        watcher.ended()
