"""One HTTP request through the bridge: the application's run in a
worker thread and the sending of its response on the event loop."""

import asyncio
import contextvars
import logging
from types import TracebackType
import typing

from pyramid_asgi_ws.wsgi.body import (
    Body,
    ClientDisconnect,
    RequestEntityTooLarge,
)
from pyramid_asgi_ws.wsgi.channels import Feed, Pipe, PipeClosed
from pyramid_asgi_ws.wsgi.filewrapper import ZEROCOPY, FileWrapper

if typing.TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from pyramid_asgi_ws.wsgi import WsgiToAsgi

log = logging.getLogger('pyramid_asgi_ws.wsgi')

Scope = dict[str, typing.Any]
Message = dict[str, typing.Any]
Receive = typing.Callable[[], typing.Awaitable[Message]]
Send = typing.Callable[[Message], typing.Awaitable[None]]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
OptExcInfo = ExcInfo | tuple[None, None, None]
Environ = dict[str, typing.Any]
Write = typing.Callable[[bytes], None]

#: Bytes a streaming response may queue between the worker thread and the
#: event loop before the worker blocks (on top of one chunk in flight).
STREAM_BUFFER_SIZE = 65536

#: Bytes of request body the event loop may receive ahead of the
#: application's reads of ``wsgi.input`` (on top of one message).
BODY_BUFFER_SIZE = 262144

#: The text of the 413 answer to a body over ``max_body_size``.
TOO_LARGE = b'Request Entity Too Large'


class Start:
    """The response's start, as the event loop sends it."""

    __slots__ = ('status', 'headers')

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]]):
        self.status = status
        self.headers = headers


#: The ASGI header name of each WSGI one seen, at most
#: :data:`NAMES_LIMIT` of them (applications send a handful).
_NAMES: dict[str, bytes] = {}
NAMES_LIMIT = 256


def _name(name: str) -> bytes:
    encoded = name.lower().encode('latin-1')
    if len(_NAMES) < NAMES_LIMIT:
        _NAMES[name] = encoded
    return encoded


class Failure(typing.NamedTuple):
    exc_info: ExcInfo


END = object()


class Call:
    """One HTTP request: the worker-thread half runs the application and
    feeds a :class:`Pipe`; the event-loop half sends what comes out."""

    started = False  # the worker has emitted the response start
    sent = False  # the event loop has sent the response start
    status: str | None = None
    headers: list[tuple[str, str]] = []
    content_length: int | None = None
    remaining: int | None = None
    feed: Feed | None = None
    #: The file wrapper handed to the event loop for zero-copy sending:
    #: whichever side ends the request closes it.
    file: FileWrapper | None = None

    def __init__(
        self,
        bridge: 'WsgiToAsgi',
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        self.bridge = bridge
        self.scope = scope
        self.receive = receive
        self.send = send
        self.loop = asyncio.get_running_loop()
        self.pipe = Pipe(self.loop, STREAM_BUFFER_SIZE)
        self.loop_context: contextvars.Context | None = None

    # -- worker thread -------------------------------------------------

    def receive_from_thread(self) -> Message:
        """Wait for the next ASGI message (worker thread)."""
        feed = self.feed
        if feed is None:
            if self.pipe.closed:
                raise ClientDisconnect('Request ended')
            feed = self.feed = Feed(self.loop, BODY_BUFFER_SIZE)
            self.loop.call_soon_threadsafe(
                self._start_feed, feed, context=self.loop_context
            )
        return feed.get()

    def start_response(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: OptExcInfo | None = None,
    ) -> Write:
        """The WSGI ``start_response`` callable."""
        if exc_info is not None and exc_info[0] is not None:
            try:
                if self.started:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise RuntimeError('start_response was already called')
        self.status = status
        self.headers = headers
        self.content_length = None
        for name, value in headers:
            if name.lower() == 'content-length':
                self.content_length = int(value)
        self.remaining = self.content_length
        return self.write

    def _start(self) -> Start:
        if self.status is None:
            raise RuntimeError(
                'The WSGI application did not call start_response'
            )
        self.started = True
        names = _NAMES
        return Start(
            int(self.status.split(' ', 1)[0]),
            [
                (names.get(name) or _name(name), value.encode('latin-1'))
                for name, value in self.headers
            ],
        )

    def _clip(self, data: bytes) -> bytes:
        # Like asgiref, never send more than the Content-Length declared.
        if self.remaining is not None:
            data = data[: self.remaining]
            self.remaining -= len(data)
        return data

    def write(self, data: bytes) -> None:
        """The ``write()`` callable ``start_response`` returns."""
        if type(data) is not bytes:
            data = bytes(data)
        if not self.started:
            self.pipe.put(self._start(), self._clip(data))
        elif data:
            self.pipe.put(self._clip(data))

    def run(self, environ: Environ) -> None:
        """Run the application (worker thread)."""
        iterable: typing.Any = None
        try:
            try:
                iterable = self.bridge.wsgi_application(
                    environ, self.start_response
                )
                items = self._produce(iterable)
                if items[-1] is not END:
                    self.file = iterable  # the event loop sends it
                    iterable = None
            finally:
                close = getattr(iterable, 'close', None)
                if close is not None:
                    close()
            self.pipe.put(*items)
        except PipeClosed:
            self._close_file()
        except BaseException as exc:
            try:
                self.pipe.put(Failure((type(exc), exc, exc.__traceback__)))
            except PipeClosed:
                if not isinstance(exc, ClientDisconnect):
                    log.error(
                        'Error in WSGI application after disconnect',
                        exc_info=(type(exc), exc, exc.__traceback__),
                    )
            del exc

    def _produce(self, iterable: typing.Any) -> list[typing.Any]:
        if not self.started and isinstance(iterable, (list, tuple)):
            body = b''.join(iterable)
            return [self._start(), self._clip(body), END]
        if (
            type(iterable) is FileWrapper
            and not self.started
            and ZEROCOPY in (self.scope.get('extensions') or {})
            and iterable.fileno() is not None
        ):
            return [self._start(), iterable]
        for data in iterable:
            if data:
                self.write(data)
                if self.remaining == 0:
                    break
        if not self.started:
            return [self._start(), END]
        return [END]

    # -- event loop ------------------------------------------------------

    def _start_feed(self, feed: Feed) -> None:
        if self.pipe.closed:
            feed.close(ClientDisconnect('Request ended'))
        else:
            feed.task = self.loop.create_task(feed.run(self.receive))

    async def _watch_disconnect(self) -> None:
        try:
            while (await self.receive())['type'] != 'http.disconnect':
                pass
        except Exception as exc:
            log.debug('receive() failed during the response: %r', exc)
        self.pipe.close()

    async def respond(self, body: Body) -> None:
        """Send what the worker thread produces (event loop)."""
        watcher = None
        try:
            while True:
                items = await self.pipe.get()
                if (
                    watcher is None
                    and not body.more
                    and type(items[-1]) in (bytes, Start)
                ):
                    watcher = self.loop.create_task(self._watch_disconnect())
                if await self._send_items(items):
                    return
        except PipeClosed:
            log.debug('Client disconnected during the response')
        except OSError as exc:
            # uvicorn raises ClientDisconnected, an OSError, on send.
            log.debug('Client went away: %r', exc)
        finally:
            self.pipe.close()
            if watcher is not None:
                watcher.cancel()
            if self.feed is not None:
                self.feed.close(ClientDisconnect('Request ended'))
            self._close_file()

    def _close_file(self) -> None:
        # Called by the side that ends the request, or by both: closing a
        # file twice is harmless, leaving it open is not.
        file, self.file = self.file, None
        if file is not None:
            file.close()

    async def _send_items(self, items: list[typing.Any]) -> bool:
        send = self.send
        count = len(items)
        index = 0
        while index < count:
            item = items[index]
            index += 1
            kind = type(item)
            if kind is bytes:
                # Coalesce the chunks queued while the last send waited.
                first = index - 1
                while index < count and type(items[index]) is bytes:
                    index += 1
                if index - first > 1:
                    item = b''.join(items[first:index])
                more = index == count or items[index] is not END
                await send(
                    {
                        'type': 'http.response.body',
                        'body': item,
                        'more_body': more,
                    }
                )
                if not more:
                    return True
            elif kind is Start:
                await send(
                    {
                        'type': 'http.response.start',
                        'status': item.status,
                        'headers': item.headers,
                    }
                )
                self.sent = True
            elif item is END:
                await send({'type': 'http.response.body', 'body': b''})
                return True
            elif kind is FileWrapper:
                # respond() closes the file however this ends
                await send_file(send, item, self.content_length)
                return True
            else:
                await answer_failure(send, item.exc_info, self.sent)
                return True
        return False


async def send_file(
    send: Send, wrapper: FileWrapper, count: int | None
) -> None:
    """Hand the file of ``wrapper`` to the server's zero-copy extension,
    ``count`` bytes of it (all when ``None``) from where it stands."""
    file = wrapper.filelike
    message = {
        'type': ZEROCOPY,
        'file': file,
        'offset': file.tell(),
        'more_body': False,
    }
    if count is not None:
        message['count'] = count
    await send(message)


async def answer_failure(send: Send, exc_info: ExcInfo, sent: bool) -> None:
    """Answer what the application raised: 413 for a body too large, 500
    for anything else, nothing for a client gone; once the response has
    started (``sent``) only ending the connection is left."""
    exc = exc_info[1]
    if isinstance(exc, ClientDisconnect):
        log.debug('Client disconnected during the request body')
        return
    if sent:
        log.error(
            'Error in WSGI application after the response started; '
            'ending the connection',
            exc_info=exc_info,
        )
        raise exc
    if isinstance(exc, RequestEntityTooLarge):
        await send_error(send, 413, TOO_LARGE)
        return
    log.error('Error in WSGI application', exc_info=exc_info)
    await send_error(send, 500, b'Internal Server Error')


async def send_error(send: Send, status: int, text: bytes) -> None:
    """Answer an HTTP scope with a short plain-text error and close."""
    await send(
        {
            'type': 'http.response.start',
            'status': status,
            'headers': [
                (b'content-type', b'text/plain; charset=utf-8'),
                (b'content-length', str(len(text)).encode('ascii')),
                (b'connection', b'close'),
            ],
        }
    )
    await send({'type': 'http.response.body', 'body': text})
