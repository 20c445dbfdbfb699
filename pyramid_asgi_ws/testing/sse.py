"""Server-sent events in tests: a parser, and a session of the test client.

:class:`EventParser` reads a ``text/event-stream`` as a browser does, so
a test can read one from any client (httpx streaming from a real server,
say); :class:`EventStreamTestSession` is what
:meth:`TestClient.sse() <pyramid_asgi_ws.testing.TestClient.sse>`
returns.
"""

from __future__ import annotations

from dataclasses import dataclass
import re
import time
from typing import TYPE_CHECKING, Any

from pyramid_asgi_ws.sse import StreamClosed
from pyramid_asgi_ws.testing.channel import Channel
from pyramid_asgi_ws.testing.exceptions import (
    StreamRefused,
    WebSocketTimeout,
)
from pyramid_asgi_ws.testing.loop import Message
from pyramid_asgi_ws.testing.scope import header_dict

if TYPE_CHECKING:  # pragma: no cover - the client imports this module
    from pyramid_asgi_ws.testing.client import TestClient

_LINES = re.compile(rb'\r\n|\r|\n')

#: A ``retry`` value browsers take: ASCII digits (``str.isdigit`` takes
#: ``'²'``, which ``int()`` refuses).
_DIGITS = re.compile(r'[0-9]+')


@dataclass
class Event:
    """One event as a browser dispatches it.

    ``id`` is the stream's last event id when it came (what the browser
    would send back as ``Last-Event-ID``), ``retry`` the last reconnection
    delay the stream asked for, in milliseconds.
    """

    data: str
    event: str = 'message'
    id: str | None = None
    retry: int | None = None


class EventParser:
    """Turn the bytes of an event stream into :class:`Event` objects.

    :meth:`feed` takes bytes as they come, split anywhere, and returns the
    events completed; ``comments`` counts comment lines (heartbeats).
    ``last_event_id`` is what the browser would send back as
    ``Last-Event-ID``: the last ``id`` field of a complete event.
    """

    def __init__(self) -> None:
        self.comments = 0
        self.last_event_id: str | None = None
        self.retry: int | None = None
        self._buffer = b''
        self._after_cr = False
        self._first = True  # a byte order mark may start the stream
        self._data: list[str] = []
        self._event = ''
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[Event]:
        """Return the events that ``chunk`` completes."""
        if not chunk:
            return []
        if self._after_cr and chunk.startswith(b'\n'):
            chunk = chunk[1:]  # the second half of a CRLF
        data = self._buffer + chunk
        # split bytes, not text: a chunk may end inside a character
        *lines, self._buffer = _LINES.split(data)
        self._after_cr = data.endswith(b'\r')
        events = []
        for line in lines:
            text = line.decode('utf-8', 'replace')
            if self._first:
                self._first = False
                text = text.removeprefix('\ufeff')
            event = self._line(text)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> Event | None:
        if not line:
            return self._dispatch()
        if line.startswith(':'):
            self.comments += 1
            return None
        name, _, value = line.partition(':')
        value = value[1:] if value.startswith(' ') else value
        if name == 'data':
            self._data.append(value)
        elif name == 'event':
            self._event = value
        elif name == 'id' and '\0' not in value:
            self._id = value or None
        elif name == 'retry' and _DIGITS.fullmatch(value):
            self.retry = int(value)
        return None

    def _dispatch(self) -> Event | None:
        # as a browser: the id counts once its event is complete
        self.last_event_id = self._id
        data, self._data = self._data, []
        event, self._event = self._event, ''
        if not data:
            return None
        return Event(
            '\n'.join(data),
            event or 'message',
            self.last_event_id,
            self.retry,
        )


#: What an application may send on an HTTP scope.
HTTP_MESSAGES = frozenset({'http.response.start', 'http.response.body'})


class StreamChannel(Channel):
    """Runs the application on one HTTP scope, as a server would: a GET
    without a body, then ``http.disconnect`` once the test leaves."""

    def start(self) -> None:
        """Send the request: a GET without a body."""
        self.put({'type': 'http.request', 'body': b'', 'more_body': False})
        self._task = self.runner.spawn(self._run())

    async def _send(self, message: Message) -> None:
        if message['type'] not in HTTP_MESSAGES:
            raise RuntimeError(
                f'unexpected ASGI message {message["type"]!r} sent on an '
                'HTTP request'
            )
        if self.app_closed:
            raise RuntimeError('the response is already complete')
        if self.client_closed:
            raise OSError('the client went away')
        if message['type'] == 'http.response.body' and not message.get(
            'more_body'
        ):
            self.app_closed = True
        self._from_app.put(message)


class EventStreamTestSession:
    """One event stream from the application, read synchronously.

    Made by :meth:`TestClient.sse`; entering it sends the request and
    returns once the stream started (``status``, ``headers``), or raises
    :class:`StreamRefused`. Leaving it goes away as a browser does
    (``http.disconnect``) and waits for the consumer to end.
    """

    __test__ = False

    def __init__(
        self, client: TestClient, scope: Message, timeout: float
    ) -> None:
        self.client = client
        self.scope = scope
        self.timeout = timeout
        self.status = 0
        self.headers: dict[str, str] = {}
        self.parser = EventParser()
        #: Whether the application ended the stream.
        self.ended = False
        self._pending: list[Event] = []
        self._channel: StreamChannel | None = None

    @property
    def comments(self) -> int:
        """How many comments (heartbeats) came so far."""
        return self.parser.comments

    def __enter__(self) -> EventStreamTestSession:
        if self._channel is not None:
            raise RuntimeError('this event stream session was already opened')
        runner = self.client._running_loop()
        channel = StreamChannel(
            self.client.app, self.scope, runner, self.timeout
        )
        self._channel = channel
        channel.start()
        try:
            start = channel.next(self.timeout, 'response start')
        except BaseException:
            channel.cancel()
            raise
        self.status = start['status']
        self.headers = header_dict(start.get('headers'))
        if self.status == 200 and self.headers.get(
            'content-type', ''
        ).startswith('text/event-stream'):
            return self
        body = b''
        while not self.ended:
            body += self._body()
        channel.wait(self.timeout)
        raise StreamRefused(self.status, self.headers, body)

    def __exit__(self, *exc_info: Any) -> None:
        channel = self._open()
        self.close()
        channel.wait(self.timeout, raising=exc_info[0] is None)

    def _open(self) -> StreamChannel:
        if self._channel is None:
            raise RuntimeError(
                'this event stream session is not open: use it as '
                '"with client.sse(path) as stream:"'
            )
        return self._channel

    def _body(self, timeout: float | None = None) -> bytes:
        message = self._open().next(
            self.timeout if timeout is None else timeout, 'event'
        )
        if message['type'] != 'http.response.body' or not message.get(
            'more_body'
        ):
            self.ended = True
        return bytes(message.get('body', b''))

    def receive(self, timeout: float | None = None) -> Event:
        """Return the next event, waiting at most ``timeout`` seconds (the
        session's by default), then raising :class:`WebSocketTimeout`.
        Raises :class:`~pyramid_asgi_ws.StreamClosed` once the application
        has ended the stream."""
        while not self._pending:
            if self.ended:
                raise StreamClosed('the application ended the event stream')
            self._pending.extend(self.parser.feed(self._body(timeout)))
        return self._pending.pop(0)

    def wait_comments(self, count: int, timeout: float | None = None) -> None:
        """Read on until ``count`` comments (heartbeats) came in all,
        keeping the events that come meanwhile for :meth:`receive`;
        after ``timeout`` seconds in all, raise :class:`WebSocketTimeout`.
        """
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while self.parser.comments < count and not self.ended:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WebSocketTimeout(
                    f'{self.parser.comments} of {count} comments from '
                    f'{self.scope["path"]} within {timeout} s'
                )
            self._pending.extend(self.parser.feed(self._body(left)))

    def receive_many(self, count: int, timeout: float | None = None) -> list:
        """Return the next ``count`` events."""
        return [self.receive(timeout) for _ in range(count)]

    def close(self) -> None:
        """Go away, as a browser closing the page: the application gets
        ``http.disconnect``. Does nothing the second time."""
        channel = self._open()
        if not channel.client_closed:
            channel.client_closed = True
            channel.put({'type': 'http.disconnect'})
