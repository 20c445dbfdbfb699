"""A WSGI to ASGI bridge with its own thread pool.

:class:`WsgiToAsgi` runs a :term:`WSGI` application in a bounded pool of
worker threads and serves it as an ASGI 3 application.  The request body
streams into ``wsgi.input`` and the response streams out with
backpressure; a response whose body is a list or tuple crosses from the
worker thread to the event loop in one handoff.

Each part lives in the module named for it, and none imports anything
else of the package: :mod:`~pyramid_asgi_ws.wsgi.environ` (the environ),
:mod:`~pyramid_asgi_ws.wsgi.body` (``wsgi.input``),
:mod:`~pyramid_asgi_ws.wsgi.channels` (the bounded handoffs between the
loop and a thread), :mod:`~pyramid_asgi_ws.wsgi.response` (one request),
:mod:`~pyramid_asgi_ws.wsgi.filewrapper`,
:mod:`~pyramid_asgi_ws.wsgi.pool` and
:mod:`~pyramid_asgi_ws.wsgi.suspend` (the pool's calls that suspend
themselves on the event loop: async views).
"""

import asyncio
import contextvars
import typing

from pyramid_asgi_ws.wsgi.body import (
    Body,
    ClientDisconnect,
    RequestEntityTooLarge,
)
from pyramid_asgi_ws.wsgi.environ import (
    BadRequest,
    below_root,
    build_environ,
)
from pyramid_asgi_ws.wsgi.filewrapper import ZEROCOPY, FileWrapper
from pyramid_asgi_ws.wsgi.pool import Pool
from pyramid_asgi_ws.wsgi.response import (
    BODY_BUFFER_SIZE,
    STREAM_BUFFER_SIZE,
    TOO_LARGE,
    Call,
    send_error,
)

__all__ = [
    'BODY_BUFFER_SIZE',
    'BadRequest',
    'DEFAULT_THREADS',
    'PREREAD_SIZE',
    'STREAM_BUFFER_SIZE',
    'ZEROCOPY',
    'ClientDisconnect',
    'FileWrapper',
    'RequestEntityTooLarge',
    'WsgiToAsgi',
    'below_root',
    'build_environ',
    'send_error',
]

Scope = dict[str, typing.Any]
Message = dict[str, typing.Any]
Receive = typing.Callable[[], typing.Awaitable[Message]]
Send = typing.Callable[[Message], typing.Awaitable[None]]
Environ = dict[str, typing.Any]
StartResponse = typing.Callable[..., typing.Callable[[bytes], None]]
WSGIApp = typing.Callable[[Environ, StartResponse], typing.Iterable[bytes]]

#: Default size of the thread pool running WSGI calls.  WSGI views block
#: on I/O (databases, HTTP calls) far more than they compute, and the GIL
#: caps CPU parallelism anyway, so the pool is sized for concurrency, not
#: for cores: 32 is the ceiling of :mod:`asyncio`'s default executor and
#: absorbs a burst of a few dozen slow requests.  Threads start lazily.
DEFAULT_THREADS = 32
#: A request body up to this size is received on the event loop before a
#: worker thread is taken, so clients that send a body slowly (or stall
#: in the middle of one) cannot tie up the pool; a larger body streams to
#: the application, which starts reading it once this much has arrived.
PREREAD_SIZE = 65536


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


class WsgiToAsgi:
    """Serve the WSGI application ``wsgi_application`` as an ASGI 3
    application, a drop-in replacement for asgiref's class.

    WSGI calls run in a pool of at most ``threads`` threads (default
    :data:`DEFAULT_THREADS`).  A request no environ can hold is answered
    with 400 before any of the application runs (see
    :exc:`~pyramid_asgi_ws.wsgi.environ.BadRequest`): more than
    ``duplicate_header_limit`` copies of one header, a path UTF-8 cannot
    encode (lone surrogates; servers decode the bytes of a path that are
    not UTF-8 as U+FFFD, so Pyramid sees those and answers 404), a
    header name that is not an HTTP token, or a query string that is not
    UTF-8 once unescaped (WebOb could not decode its parameters).  A
    header whose name holds ``_`` is left out of the environ (it would
    pass for the one with ``-``).  One with a body over
    ``max_body_size`` bytes (when given) is answered with 413.
    ``lifespan`` scopes are acknowledged and ``websocket`` scopes refused
    with a close.  :meth:`run_sync` runs other synchronous code in the
    same pool; call :meth:`close` to shut the thread pool down.
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
        self.pool = Pool(self.threads)

    def close(self) -> None:
        """Shut the thread pool's threads down once the calls already
        queued have run. A later request starts a fresh pool (threads start
        only when needed), so an application whose lifespan runs again,
        as under a second test client, keeps serving."""
        self.pool.close()
        self.pool = Pool(self.threads)

    def run_sync(
        self, fn: typing.Callable[..., typing.Any], *args: typing.Any
    ) -> 'asyncio.Future[typing.Any]':
        """Run the synchronous ``fn(*args)`` in the thread pool; await the
        returned future for its result (or its exception).

        For code on the event loop that must call something blocking; the
        loop keeps serving meanwhile, and views share the same threads.
        """
        return self.pool.call(fn, *args)

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
        call = Call(self, scope, receive, send)
        max_body_size = self.max_body_size
        if max_body_size is not None:
            for name, value in scope.get('headers', ()):
                if name.lower() == b'content-length' and value.isdigit():
                    if int(value) > max_body_size:
                        await send_error(send, 413, TOO_LARGE)
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
                    await send_error(send, 413, TOO_LARGE)
                    return
            data = b''.join(chunks)
        if more:
            call.loop_context = contextvars.copy_context()
        body = Body(call, data, more, max_body_size)
        try:
            environ = build_environ(
                scope,
                typing.cast(typing.IO[bytes], body),
                duplicate_header_limit=self.duplicate_header_limit,
            )
        except BadRequest as exc:
            await send_error(send, 400, exc.answer)
            return
        context = contextvars.copy_context()
        # spawned: an async view suspends its greenlet, not its thread
        job = self.pool.spawn(
            call.loop,
            context.run,
            call.run,
            environ,
            receive=None if more else receive,
        )
        try:
            await call.respond(body)
        finally:
            job.cancel()  # what it still awaits has nobody to answer
