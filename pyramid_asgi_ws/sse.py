"""The :class:`EventStream` a server-sent events consumer receives.

One ``text/event-stream`` response, as a consumer sees it: what the
request said (``request``, ``matchdict``, ``last_event_id``), events out
(:meth:`EventStream.send`), and groups (from
:class:`~pyramid_asgi_ws.groups.GroupsMixin`), whose messages go out as
events whose ``id`` is their position in the group's history, so that a
browser's ``EventSource`` resumes by itself after a reconnect. The
wire format is :mod:`pyramid_asgi_ws.sse_format`'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import logging
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs

from pyramid_asgi_ws.broadcast.outbox import FLUSH_TIMEOUT
from pyramid_asgi_ws.groups import GroupsMixin
from pyramid_asgi_ws.messages import Message, WebSocketState
from pyramid_asgi_ws.scope import RequestMixin
from pyramid_asgi_ws.sse_format import (
    HEARTBEAT,
    check_field,
    format_comment,
    format_event,
    retry_field,
)
from pyramid_asgi_ws.sse_groups import (
    LAST_EVENT_ID,
    StreamMembership,
    stream_body,
)
from pyramid_asgi_ws.wsgi.pool import shielded

if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from pyramid.request import Request

Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
T = TypeVar('T')

log = logging.getLogger('pyramid_asgi_ws')

#: The response headers of every stream: no cache may keep it, and nginx
#: must pass each event on at once instead of buffering the response.
STREAM_HEADERS = [
    (b'content-type', b'text/event-stream; charset=utf-8'),
    (b'cache-control', b'no-cache'),
    (b'x-accel-buffering', b'no'),
]

#: The query parameter read when a request has no ``Last-Event-ID``
#: header: ``EventSource`` sends the header only when it reconnects.
LAST_EVENT_ID_PARAM = 'last_event_id'

#: A stream's sends give the event loop a turn every this many sends
#: (see :data:`pyramid_asgi_ws.websocket.YIELD_EVERY`).
YIELD_EVERY = 16


def response_headers(
    allow_origin: str | None = None,
) -> list[tuple[bytes, bytes]]:
    """The headers of a stream: :data:`STREAM_HEADERS`, and those letting
    a cross-origin page read it when ``allow_origin`` says which (see
    :func:`~pyramid_asgi_ws.origin.cors_origin`): a listed origin reads
    it with credentials, ``*`` any page without them."""
    headers = list(STREAM_HEADERS)
    if allow_origin == '*':
        headers.append((b'access-control-allow-origin', b'*'))
    elif allow_origin is not None:
        headers += [
            (b'access-control-allow-origin', allow_origin.encode('latin-1')),
            (b'access-control-allow-credentials', b'true'),
            (b'vary', b'origin'),
        ]
    return headers


def utf8(value: str | None) -> str | None:
    """A header's value read as UTF-8, as browsers write ``Last-Event-ID``
    (headers are read as latin-1); as it is when it is no UTF-8."""
    if value is None:
        return None
    try:
        return value.encode('latin-1').decode('utf-8')
    except UnicodeError:  # not from a browser: no id of ours either
        return value


class StreamClosed(Exception):
    """The event stream has ended: the client went away, or it was closed.

    Raised by :meth:`EventStream.send` (and a join or a comment) once the
    stream is over. A consumer waiting on something else when the client
    goes (a queue, a sleep) is cancelled instead: it sees
    :class:`asyncio.CancelledError` there, and its ``finally`` blocks run.
    Either way the consumer's end is a normal one.
    """


class EventStream(RequestMixin, GroupsMixin):
    """One server-sent events stream, as a consumer sees it.

    The response (status 200 and
    :data:`~pyramid_asgi_ws.sse.STREAM_HEADERS`) has started when the
    consumer runs; the consumer sends events with :meth:`send` and
    the stream ends when it returns. :class:`StreamClosed` says the
    client went away. Comments go out as heartbeats every ``heartbeat``
    seconds without a write (``None``: none); ``retry`` (seconds), sent
    first, is the browser's reconnection delay. What the request said
    (``request``, ``matchdict``, ``path``, ``headers``) comes from
    :class:`~pyramid_asgi_ws.scope.RequestMixin`.
    """

    membership_class = StreamMembership
    _kind = 'event stream'

    def __init__(
        self,
        scope: dict[str, Any],
        receive: Receive,
        send: Send,
        *,
        request_factory: Callable[[EventStream], Request] | None = None,
        heartbeat: float | None = 15.0,
        retry: float | None = None,
        send_queue_size: int = 256,
        send_overflow: str = 'close',
        runner: Callable[..., Awaitable[Any]] | None = None,
        allow_origin: str | None = None,
    ) -> None:
        self.scope = scope
        self._receive = receive
        self._send = send
        self._request_factory = request_factory
        self._request = None
        self._runner = runner
        self.heartbeat = heartbeat
        self.retry = retry
        #: The response's ``Access-Control-Allow-Origin`` (see
        #: :func:`~pyramid_asgi_ws.sse.response_headers`), or ``None``.
        self.allow_origin = allow_origin
        self.send_queue_size = send_queue_size
        self.send_overflow = send_overflow
        self.application_state = WebSocketState.CONNECTING
        self.close_code: int | None = None
        self._sends = 0
        self._last_write = 0.0
        self._ended = False  # the response's last body is sent
        self._over = asyncio.Event()
        self._consumer: asyncio.Task[Any] | None = None

    # -- what the request said ---------------------------------------------

    @property
    def last_event_id(self) -> str | None:
        """The id of the last event the client saw, or ``None``.

        From the ``Last-Event-ID`` header, which ``EventSource`` sends
        when it reconnects, else from the ``last_event_id`` query
        parameter, which a page can set on its first connection (from
        what it stored, say). Empty means none.
        """
        value = utf8(self.headers.get('last-event-id'))
        if value is None:  # read from the scope: no request built for it
            query = self.scope.get('query_string', b'').decode('latin-1')
            value = parse_qs(query).get(LAST_EVENT_ID_PARAM, [None])[0]
        return value or None

    @property
    def closed(self) -> bool:
        """Whether the stream is over (the client left, or it was ended)."""
        return self.application_state is WebSocketState.DISCONNECTED

    async def wait_closed(self) -> None:
        """Wait until the stream is over: a consumer that only forwards
        group messages joins, then waits here (it is cancelled when the
        client goes or the server stops)."""
        await self._over.wait()

    async def run_sync(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> T:
        """Return ``fn(*args, **kwargs)`` run in the app's thread pool, as
        :meth:`WebSocket.run_sync <pyramid_asgi_ws.WebSocket.run_sync>`
        does (``get_current_request()`` is this stream's request)."""
        if self._runner is None:
            raise RuntimeError('this EventStream has no thread pool')
        result: T = await shielded(self._runner(self, fn, args, kwargs), fn)
        return result

    # -- sending -----------------------------------------------------------

    async def send(
        self, data: Any, event: str | None = None, id: Any = None
    ) -> None:
        """Send one event: ``data`` (a str, or anything JSON-serialisable,
        sent as JSON) of type ``event`` (``None``: ``message``) with
        ``id``, which becomes the client's ``Last-Event-ID``.

        Line breaks in ``data`` are safe; one in ``event`` or ``id`` (or
        NUL in ``id``) is a :class:`ValueError`. Raises
        :class:`StreamClosed` once the stream is over.
        """
        await self._write(format_event(data, event, id))

    def push(
        self, data: Any, event: str | None = None, id: Any = None
    ) -> bool:
        """Queue an event behind the group messages queued so far, without
        waiting; :meth:`send` writes at once, ahead of them.

        For a consumer whose own events must keep their place among the
        group's (a marker after what :meth:`join` replayed, say). The
        send queue's bounds apply (``send_queue_size``, ``send_overflow``).
        Returns whether it was queued.
        """
        return self.membership.outbox.push(
            stream_body(format_event(data, event, id))
        )

    async def comment(self, text: str = '') -> None:
        """Send a comment, which browsers ignore (a heartbeat, say)."""
        await self._write(format_comment(text))

    async def _write(self, body: bytes) -> None:
        if self.application_state is not WebSocketState.CONNECTED:
            raise StreamClosed(f'the event stream {self.path} is over')
        try:
            await self._send(stream_body(body))
        except OSError:  # ASGI 2.4: the client is gone
            self._gone()
            raise StreamClosed(
                f'the client of {self.path} went away'
            ) from None
        except RuntimeError:
            if not self.closed:
                raise
            # ended meanwhile by another task (shutdown's close, say)
            raise StreamClosed(
                f'the event stream {self.path} is over'
            ) from None
        self._last_write = asyncio.get_running_loop().time()
        self._sends += 1
        if not self._sends % YIELD_EVERY:
            await asyncio.sleep(0)  # see YIELD_EVERY

    async def _transmit(self, message: Message) -> None:
        # what the send queue sends: events, or the overflow's close
        if message['type'] == 'websocket.close':
            await self._end()
            self._stop_consumer()
        else:
            await self._write(message['body'])

    # -- groups -------------------------------------------------------------

    async def join(  # type: ignore[override]
        self,
        group: str,
        info: Any = None,
        since: Any = LAST_EVENT_ID,
        event: str | None = None,
    ) -> bool:
        """Add this stream to ``group``; its messages go out as events.

        Each event's ``id`` is the message's position in the group's
        history (in a composite id once the stream is in several groups
        with history) and its type ``event`` (``None``: ``message``).
        ``since`` (default: :attr:`last_event_id`) is the position of the
        last message the client saw, or a composite id holding it:
        everything after it is sent first, in order, then the live
        messages. Returns ``False`` when the history does not reach back
        to ``since`` (then only live messages come): tell the client to
        reload what it shows. ``since=None`` (or a composite id without
        the group, or the default for a group without history) joins live
        only and returns ``True``.
        """
        if event is not None:
            check_field(event, 'event')
        if self.closed:
            raise StreamClosed(f'the event stream {self.path} is over')
        member = self.membership
        assert isinstance(member, StreamMembership)  # membership_class
        member.resume_from(self.last_event_id)
        return await member.join(self.broadcaster, group, info, since, event)

    # -- the stream's life (the application drives it) ---------------------

    async def _start(self) -> bool:
        """Start the response, with the ``retry:`` field if any, else a
        comment; return whether the client is still there."""
        start: Message = {'type': 'http.response.start', 'status': 200}
        start['headers'] = response_headers(self.allow_origin)
        try:
            await self._send(start)
        except OSError:  # gone already
            self._gone()
            return False
        self.application_state = WebSocketState.CONNECTED
        # a first write: some servers (daphne) send the headers with it,
        # and EventSource opens once they arrive
        first = HEARTBEAT
        if self.retry is not None:
            first = retry_field(self.retry).encode() + b'\n'
        try:
            await self._write(first)
        except StreamClosed:
            return False
        if self._over.is_set():  # closed while it started (shutdown)
            await self._end()
        return not self.closed

    def _gone(self) -> None:
        log.debug('the client of event stream %s went away', self.path)
        self.application_state = WebSocketState.DISCONNECTED
        self._ended = True  # nobody is left to read an end
        self._over.set()
        self._stop_consumer()

    def _stop_consumer(self) -> None:
        consumer = self._consumer
        if consumer is not None and consumer is not asyncio.current_task():
            consumer.cancel('the event stream is over')

    async def _end(self) -> None:
        """End the response (once); the client may reconnect."""
        if self._ended or self.application_state is WebSocketState.CONNECTING:
            return
        self._ended = True
        self.application_state = WebSocketState.DISCONNECTED
        self._over.set()
        try:
            await self._send({'type': 'http.response.body', 'body': b''})
        except (OSError, RuntimeError):  # the client went meanwhile
            pass

    async def close(self) -> None:
        """End the stream: queued group messages go out first (for at
        most :data:`~pyramid_asgi_ws.broadcast.outbox.FLUSH_TIMEOUT`
        seconds), then the response ends; a consumer still running (when
        the application ends it at shutdown) is cancelled.
        ``EventSource`` reconnects after its retry delay."""
        if self.application_state is WebSocketState.CONNECTED:
            await self._flush()
        self._over.set()  # a stream still starting ends as it starts
        await self._end()
        self._stop_consumer()


__all__ = [
    'FLUSH_TIMEOUT',
    'LAST_EVENT_ID_PARAM',
    'STREAM_HEADERS',
    'EventStream',
    'StreamClosed',
    'StreamMembership',
]
