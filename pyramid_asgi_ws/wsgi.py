"""A WSGI to ASGI bridge with its own thread pool.

:class:`WsgiToAsgi` runs a :term:`WSGI` application in a bounded pool of
worker threads and serves it as an ASGI 3 application.  The request body
streams into ``wsgi.input`` and the response streams out with
backpressure; a response whose body is a list or tuple crosses from the
worker thread to the event loop in one handoff.
"""

import asyncio
from collections import deque
import contextvars
import logging
import queue
import sys
import threading
from types import TracebackType
import typing

__all__ = [
    'DEFAULT_THREADS',
    'ClientDisconnect',
    'FileWrapper',
    'RequestEntityTooLarge',
    'WsgiToAsgi',
    'build_environ',
]

log = logging.getLogger(__name__)

Scope = dict[str, typing.Any]
Message = dict[str, typing.Any]
Receive = typing.Callable[[], typing.Awaitable[Message]]
Send = typing.Callable[[Message], typing.Awaitable[None]]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
OptExcInfo = ExcInfo | tuple[None, None, None]
Environ = dict[str, typing.Any]
Write = typing.Callable[[bytes], None]
StartResponse = typing.Callable[..., Write]
WSGIApp = typing.Callable[[Environ, StartResponse], typing.Iterable[bytes]]

#: Default size of the thread pool running WSGI calls.  WSGI views block
#: on I/O (databases, HTTP calls) far more than they compute, and the GIL
#: caps CPU parallelism anyway, so the pool is sized for concurrency, not
#: for cores: 32 is the ceiling of :mod:`asyncio`'s default executor and
#: absorbs a burst of a few dozen slow requests.  Threads start lazily.
DEFAULT_THREADS = 32

#: Bytes a streaming response may queue between the worker thread and the
#: event loop before the worker blocks (on top of one chunk in flight).
STREAM_BUFFER_SIZE = 65536

#: Bytes of request body the event loop may receive ahead of the
#: application's reads of ``wsgi.input`` (on top of one message).
BODY_BUFFER_SIZE = 262144

#: A request body up to this size is received on the event loop before a
#: worker thread is taken, so clients that send a body slowly (or stall
#: in the middle of one) cannot tie up the pool; a larger body streams to
#: the application, which starts reading it once this much has arrived.
PREREAD_SIZE = 65536

ZEROCOPY = 'http.response.zerocopysend'


class ClientDisconnect(OSError):
    """Raised by ``wsgi.input`` when the client went away before the
    request body was complete."""


class RequestEntityTooLarge(ValueError):
    """Raised by ``wsgi.input`` when the request body exceeds
    ``max_body_size``; answered with 413 if the response has not started.
    """


class _PipeClosed(Exception):
    """The event loop stopped consuming the response."""


def _join(values: list[str], name: str) -> str:
    return ('; ' if name == 'HTTP_COOKIE' else ',').join(values)


def below_root(path: str, root: str) -> str | None:
    """Return what follows the mount point ``root`` in ``path``, or None.

    ``/app/ws`` is ``/ws`` below ``/app``, ``/app`` is ``''``, and
    ``/application`` is not below ``/app`` at all.
    """
    root = root.rstrip('/')
    if not root:
        return None
    if path == root or path.startswith(root + '/'):
        return path[len(root) :]
    return None


def build_environ(
    scope: Scope,
    body: typing.IO[bytes],
    *,
    duplicate_header_limit: int | None = None,
) -> Environ:
    """Build a :pep:`3333` environ from an ASGI ``http`` or ``websocket``
    ``scope`` and a file-like request ``body``.

    Strings are decoded as latin-1 as :pep:`3333` asks.  A websocket scope
    gives ``REQUEST_METHOD`` ``GET`` and the ``http``/``https`` URL scheme.
    The scope itself is kept at ``environ['asgi.scope']``.  More than
    ``duplicate_header_limit`` copies of one header raise
    :exc:`ValueError`.
    """
    scheme = scope.get('scheme') or 'http'
    if scope['type'] == 'websocket':
        method = 'GET'
        scheme = {'ws': 'http', 'wss': 'https'}.get(scheme, scheme)
    else:
        method = scope['method']
    script_name = scope.get('root_path', '').encode('utf-8').decode('latin-1')
    path_info = scope['path'].encode('utf-8').decode('latin-1')
    below = below_root(path_info, script_name)
    if below is not None:
        path_info = below
    server = scope.get('server')
    if server is not None and server[1] is not None:
        server_name, server_port = server[0], str(server[1])
    else:
        server_name = 'localhost'
        server_port = '443' if scheme == 'https' else '80'
    environ: Environ = {
        'REQUEST_METHOD': method,
        'SCRIPT_NAME': script_name,
        'PATH_INFO': path_info,
        'QUERY_STRING': scope.get('query_string', b'').decode('latin-1'),
        'SERVER_NAME': server_name,
        'SERVER_PORT': server_port,
        'SERVER_PROTOCOL': 'HTTP/' + scope.get('http_version', '1.1'),
        'wsgi.version': (1, 0),
        'wsgi.url_scheme': scheme,
        'wsgi.input': body,
        'wsgi.errors': sys.stderr,
        'wsgi.multithread': True,
        'wsgi.multiprocess': True,
        'wsgi.run_once': False,
        'wsgi.input_terminated': True,
        'wsgi.file_wrapper': FileWrapper,
        'asgi.scope': scope,
    }
    client = scope.get('client')
    if client is not None:
        environ['REMOTE_ADDR'] = client[0]
        environ['REMOTE_PORT'] = str(client[1])
    repeated: dict[str, list[str]] = {}
    for raw_name, raw_value in scope.get('headers', ()):
        name = raw_name.decode('latin-1').upper().replace('-', '_')
        if name not in ('CONTENT_LENGTH', 'CONTENT_TYPE'):
            name = 'HTTP_' + name
        value = raw_value.decode('latin-1')
        if name not in environ:
            environ[name] = value
            continue
        values = repeated.setdefault(name, [environ[name]])
        if duplicate_header_limit and len(values) >= duplicate_header_limit:
            raise ValueError(
                f'Too many duplicate headers: {name} exceeds limit of '
                f'{duplicate_header_limit}'
            )
        values.append(value)
        environ[name] = _join(values, name)
    return environ


class FileWrapper:
    """The ``wsgi.file_wrapper``: iterates over ``filelike`` in blocks of
    ``block_size`` bytes, or lets the bridge hand the file to the server's
    ``http.response.zerocopysend`` extension when it has one."""

    def __init__(self, filelike: typing.Any, block_size: int = 8192) -> None:
        self.filelike = filelike
        self.block_size = block_size

    def __iter__(self) -> typing.Iterator[bytes]:
        read = self.filelike.read
        block_size = self.block_size
        while True:
            data = read(block_size)
            if not data:
                return
            yield data

    def close(self) -> None:
        """Close the file, if it can be closed."""
        close = getattr(self.filelike, 'close', None)
        if close is not None:
            close()

    def fileno(self) -> int | None:
        """The file descriptor, or ``None`` when the file has none."""
        try:
            return int(self.filelike.fileno())
        except (AttributeError, OSError, ValueError):
            return None


class _Body:
    """The ``wsgi.input`` stream, read in a worker thread: each read that
    needs more data waits for the next ``http.request`` message."""

    def __init__(
        self,
        call: '_Call',
        chunk: bytes,
        more: bool,
        max_body_size: int | None,
    ) -> None:
        self._call = call
        self._buffer = bytearray(chunk)
        self.more = more
        self._received = len(chunk)
        self._max = max_body_size
        self._error: Exception | None = None
        self._check_size()

    def _check_size(self) -> None:
        if self._max is not None and self._received > self._max:
            self.more = False
            self._error = RequestEntityTooLarge(
                f'Request body exceeds {self._max} bytes'
            )

    def _fill(self) -> None:
        if self._error is not None:
            raise self._error
        message = self._call.receive_from_thread()
        if message['type'] == 'http.request':
            chunk = message.get('body', b'')
            self._buffer += chunk
            self._received += len(chunk)
            self.more = message.get('more_body', False)
            self._check_size()
        elif message['type'] == 'http.disconnect':
            self.more = False
            self._error = ClientDisconnect('Client disconnected')
        else:
            self.more = False
            self._error = RuntimeError(
                "Expected ASGI message 'http.request' or 'http.disconnect', "
                f'but got {message["type"]!r}'
            )
        if self._error is not None:
            raise self._error

    def _take(self, size: int) -> bytes:
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def read(self, size: int | None = -1) -> bytes:
        """Read at most ``size`` bytes, or to the end if it is negative."""
        if size is None or size < 0:
            while self.more or self._error is not None:
                self._fill()
            return self._take(len(self._buffer))
        while len(self._buffer) < size and (self.more or self._error):
            self._fill()
        return self._take(size)

    def readline(self, size: int | None = -1) -> bytes:
        """Read one line, or at most ``size`` bytes of it."""
        if size is None or size < 0:
            size = sys.maxsize
        start = 0
        while True:
            end = self._buffer.find(b'\n', start, size)
            if end != -1:
                return self._take(end + 1)
            if len(self._buffer) >= size:
                return self._take(size)
            if not (self.more or self._error):
                return self._take(len(self._buffer))
            start = len(self._buffer)
            self._fill()

    def readlines(self, hint: int = -1) -> list[bytes]:
        """Read the remaining lines, stopping once ``hint`` bytes are
        read when it is positive."""
        lines: list[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                return lines

    def __iter__(self) -> typing.Iterator[bytes]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line


class _Feed:
    """Request body messages from the event loop to a worker thread,
    received ahead of the reads by at most ``limit`` bytes."""

    task: 'asyncio.Task[None] | None' = None

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self._loop = loop
        self._limit = limit
        self._queue: queue.SimpleQueue[typing.Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._size = 0
        self._room: asyncio.Future[None] | None = None

    async def run(self, receive: Receive) -> None:
        """Receive until the body ends (event loop)."""
        while True:
            try:
                message = await receive()
            except Exception as exc:
                self._queue.put(exc)
                return
            self._queue.put(message)
            if message['type'] != 'http.request' or not message.get(
                'more_body'
            ):
                return
            with self._lock:
                self._size += len(message.get('body', b''))
                if self._size < self._limit:
                    continue
                room = self._room = self._loop.create_future()
            await room

    def close(self, exc: Exception) -> None:
        """Stop receiving (event loop); reads past what was received
        raise ``exc``."""
        if self.task is not None:
            self.task.cancel()
        self._queue.put(exc)

    def get(self) -> Message:
        """The next message, waiting for it (worker thread)."""
        item = self._queue.get()
        if isinstance(item, Exception):
            self._queue.put(item)  # and for every later read
            raise item
        with self._lock:
            self._size -= len(item.get('body', b''))
            room = None
            if self._room is not None and self._size < self._limit:
                room, self._room = self._room, None
        if room is not None:
            self._loop.call_soon_threadsafe(_wake, room)
        return item


class _Pipe:
    """Response items from a worker thread to the event loop, at most
    ``limit`` queued bytes: a full pipe blocks the worker."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self._loop = loop
        self._limit = limit
        self._lock = threading.Lock()
        # Made when the worker first waits for room: most responses never
        # fill the pipe.
        self._room: threading.Condition | None = None
        self._items: deque[typing.Any] = deque()
        self._size = 0
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False

    def put(self, *items: typing.Any) -> None:
        """Queue ``items`` (worker thread); blocks while the pipe is full
        and raises :exc:`_PipeClosed` once the loop has stopped."""
        with self._lock:
            if self._size >= self._limit and not self.closed:
                if self._room is None:
                    self._room = threading.Condition(self._lock)
                while self._size >= self._limit and not self.closed:
                    self._room.wait()
            if self.closed:
                raise _PipeClosed
            for item in items:
                self._items.append(item)
                if type(item) is bytes:
                    self._size += len(item)
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            self._loop.call_soon_threadsafe(_wake, waiter)

    async def get(self) -> list[typing.Any]:
        """Take everything queued, waiting for at least one item; raises
        :exc:`_PipeClosed` once closed."""
        while True:
            with self._lock:
                if self.closed:
                    raise _PipeClosed
                if self._items:
                    items = list(self._items)
                    self._items.clear()
                    self._size = 0
                    if self._room is not None:
                        self._room.notify()
                    return items
                waiter = self._waiter = self._loop.create_future()
            await waiter

    def close(self) -> None:
        """Stop consuming (event loop): wakes and fails the worker."""
        with self._lock:
            self.closed = True
            if self._room is not None:
                self._room.notify_all()
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            _wake(waiter)


def _wake(waiter: 'asyncio.Future[None]') -> None:
    if not waiter.done():
        waiter.set_result(None)


class _Start(typing.NamedTuple):
    status: int
    headers: list[tuple[bytes, bytes]]


class _Failure(typing.NamedTuple):
    exc_info: ExcInfo


_END = object()


class _Call:
    """One HTTP request: the worker-thread half runs the application and
    feeds a :class:`_Pipe`; the event-loop half sends what comes out."""

    started = False  # the worker has emitted the response start
    sent = False  # the event loop has sent the response start
    status: str | None = None
    headers: list[tuple[str, str]] = []
    content_length: int | None = None
    remaining: int | None = None
    feed: _Feed | None = None

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
        self.pipe = _Pipe(self.loop, STREAM_BUFFER_SIZE)
        self.loop_context: contextvars.Context | None = None

    # -- worker thread -------------------------------------------------

    def receive_from_thread(self) -> Message:
        """Wait for the next ASGI message (worker thread)."""
        feed = self.feed
        if feed is None:
            if self.pipe.closed:
                raise ClientDisconnect('Request ended')
            feed = self.feed = _Feed(self.loop, BODY_BUFFER_SIZE)
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

    def _start(self) -> _Start:
        if self.status is None:
            raise RuntimeError(
                'The WSGI application did not call start_response'
            )
        self.started = True
        return _Start(
            int(self.status.split(' ', 1)[0]),
            [
                (name.lower().encode('latin-1'), value.encode('latin-1'))
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
                if items[-1] is not _END:
                    iterable = None  # the event loop closes it
            finally:
                close = getattr(iterable, 'close', None)
                if close is not None:
                    close()
            self.pipe.put(*items)
        except _PipeClosed:
            pass
        except BaseException as exc:
            try:
                self.pipe.put(_Failure((type(exc), exc, exc.__traceback__)))
            except _PipeClosed:
                if not isinstance(exc, ClientDisconnect):
                    log.error(
                        'Error in WSGI application after disconnect',
                        exc_info=(type(exc), exc, exc.__traceback__),
                    )
            del exc

    def _produce(self, iterable: typing.Any) -> list[typing.Any]:
        if not self.started and isinstance(iterable, (list, tuple)):
            body = b''.join(iterable)
            return [self._start(), self._clip(body), _END]
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
            return [self._start(), _END]
        return [_END]

    # -- event loop ------------------------------------------------------

    def _start_feed(self, feed: _Feed) -> None:
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

    async def respond(self, body: _Body) -> None:
        """Send what the worker thread produces (event loop)."""
        watcher = None
        try:
            while True:
                items = await self.pipe.get()
                if (
                    watcher is None
                    and not body.more
                    and type(items[-1]) in (bytes, _Start)
                ):
                    watcher = self.loop.create_task(self._watch_disconnect())
                if await self._send_items(items):
                    return
        except _PipeClosed:
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
                more = index == count or items[index] is not _END
                await send(
                    {
                        'type': 'http.response.body',
                        'body': item,
                        'more_body': more,
                    }
                )
                if not more:
                    return True
            elif kind is _Start:
                await send(
                    {
                        'type': 'http.response.start',
                        'status': item.status,
                        'headers': item.headers,
                    }
                )
                self.sent = True
            elif item is _END:
                await send({'type': 'http.response.body', 'body': b''})
                return True
            elif kind is FileWrapper:
                await self._send_file(item)
                return True
            else:
                await self._fail(item.exc_info)
                return True
        return False

    async def _send_file(self, wrapper: FileWrapper) -> None:
        try:
            file = wrapper.filelike
            message = {
                'type': ZEROCOPY,
                'file': file,
                'offset': file.tell(),
                'more_body': False,
            }
            if self.content_length is not None:
                message['count'] = self.content_length
            await self.send(message)
        finally:
            wrapper.close()

    async def _fail(self, exc_info: ExcInfo) -> None:
        exc = exc_info[1]
        if isinstance(exc, ClientDisconnect):
            log.debug('Client disconnected during the request body')
            return
        if self.sent:
            log.error(
                'Error in WSGI application after the response started; '
                'ending the connection',
                exc_info=exc_info,
            )
            raise exc
        if isinstance(exc, RequestEntityTooLarge):
            await send_error(self.send, 413, b'Request Entity Too Large')
            return
        log.error('Error in WSGI application', exc_info=exc_info)
        await send_error(self.send, 500, b'Internal Server Error')


class _Pool:
    """At most ``size`` daemon threads running calls from a queue; a
    thread starts only when no idle one can take the call."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.threads: list[threading.Thread] = []
        self._queue: queue.SimpleQueue[typing.Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._pending = 0
        self.closed = False

    def submit(self, fn: typing.Callable[..., object], *args: object) -> None:
        """Run ``fn(*args)`` in a pool thread."""
        with self._lock:
            if self.closed:
                raise RuntimeError('The thread pool is closed')
            self._pending += 1
            start = (
                self._pending > self._idle and len(self.threads) < self.size
            )
            if start:
                thread = threading.Thread(
                    target=self._work,
                    name=f'asgi_ws-wsgi-{len(self.threads)}',
                    daemon=True,
                )
                self.threads.append(thread)
        self._queue.put((fn, args))
        if start:
            thread.start()

    def _work(self) -> None:
        get = self._queue.get
        lock = self._lock
        while True:
            with lock:
                self._idle += 1
            job = get()
            with lock:
                self._idle -= 1
                self._pending -= 1
            if job is None:
                return
            try:
                job[0](*job[1])
            except Exception:  # keep the thread for the next call
                log.exception('Error in a WSGI thread pool call')
            del job

    def close(self) -> None:
        """Let queued calls finish, then end the threads."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            for _ in self.threads:
                self._pending += 1
                self._queue.put(None)


async def _request_message(receive: Receive) -> Message | None:
    """Return the next ``http.request`` message, or None on a disconnect."""
    message = await receive()
    if message['type'] == 'http.request':
        return message
    if message['type'] == 'http.disconnect':
        return None
    raise RuntimeError(
        "Expected ASGI message 'http.request' or 'http.disconnect', "
        f"but got {message['type']!r}"
    )


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


class WsgiToAsgi:
    """Serve the WSGI application ``wsgi_application`` as an ASGI 3
    application, a drop-in replacement for asgiref's class.

    WSGI calls run in a pool of at most ``threads`` threads (default
    :data:`DEFAULT_THREADS`).  A request with more than
    ``duplicate_header_limit`` copies of one header is answered with 400,
    one with a body over ``max_body_size`` bytes (when given) with 413.
    ``lifespan`` scopes are acknowledged and ``websocket`` scopes refused
    with a close.  Call :meth:`close` to shut the thread pool down.
    """

    def __init__(
        self,
        wsgi_application: WSGIApp,
        duplicate_header_limit: int | None = 100,
        *,
        threads: int | None = None,
        max_body_size: int | None = None,
    ) -> None:
        self.wsgi_application = wsgi_application
        self.duplicate_header_limit = duplicate_header_limit
        self.threads = threads or DEFAULT_THREADS
        self.max_body_size = max_body_size
        self.pool = _Pool(self.threads)

    def close(self) -> None:
        """Shut the thread pool's threads down once the calls already
        queued have run. A later request starts a fresh pool (threads start
        only when needed), so an application whose lifespan runs again,
        as under a second test client, keeps serving."""
        self.pool.close()
        self.pool = _Pool(self.threads)

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send
    ) -> None:
        kind = scope['type']
        if kind == 'http':
            await self._http(scope, receive, send)
        elif kind == 'lifespan':
            await self._lifespan(receive, send)
        elif kind == 'websocket':
            await receive()
            await send({'type': 'websocket.close', 'code': 1000})
        else:
            raise RuntimeError(f'Unsupported ASGI scope type {kind!r}')

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message['type'] == 'lifespan.startup':
                await send({'type': 'lifespan.startup.complete'})
            elif message['type'] == 'lifespan.shutdown':
                self.close()
                await send({'type': 'lifespan.shutdown.complete'})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        call = _Call(self, scope, receive, send)
        max_body_size = self.max_body_size
        if max_body_size is not None:
            for name, value in scope.get('headers', ()):
                if name.lower() == b'content-length' and value.isdigit():
                    if int(value) > max_body_size:
                        await send_error(
                            send, 413, b'Request Entity Too Large'
                        )
                        return
        message = await _request_message(receive)
        if message is None:
            return  # the client left before sending its request
        data = message.get('body', b'')
        more = message.get('more_body', False)
        if more:
            chunks = [data]
            received = len(data)
            while more and received <= PREREAD_SIZE:
                message = await _request_message(receive)
                if message is None:
                    return  # the client left before its body ended
                data = message.get('body', b'')
                chunks.append(data)
                received += len(data)
                more = message.get('more_body', False)
                if max_body_size is not None and received > max_body_size:
                    await send_error(send, 413, b'Request Entity Too Large')
                    return
            data = b''.join(chunks)
        if more:
            call.loop_context = contextvars.copy_context()
        body = _Body(call, data, more, max_body_size)
        try:
            environ = build_environ(
                scope,
                typing.cast(typing.IO[bytes], body),
                duplicate_header_limit=self.duplicate_header_limit,
            )
        except ValueError:
            await send(
                {
                    'type': 'http.response.start',
                    'status': 400,
                    'headers': [(b'content-type', b'text/plain')],
                }
            )
            await send(
                {
                    'type': 'http.response.body',
                    'body': b'Bad Request: Too many duplicate headers',
                }
            )
            return
        context = contextvars.copy_context()
        self.pool.submit(context.run, call.run, environ)
        await call.respond(body)
