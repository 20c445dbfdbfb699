"""The bridge's thread pool.

Why not :class:`concurrent.futures.ThreadPoolExecutor`: measured on the
hello view (uvicorn on one core, ``wrk -c64`` on the other, as ``bench``
does), the executor costs about 15 % more server CPU per request (a
:class:`~concurrent.futures.Future` and its lock per call), and its
threads are joined when the interpreter exits, so a view that never
returns would hold a stopping server past its ``shutdown_timeout``.
This pool's daemon threads keep the stop bounded.

:meth:`Pool.call` is the awaitable way in, for code on the event loop
that must run something synchronous (a root factory, a security policy)
without stalling the loop; :func:`shielded` awaits such a call so that a
cancelled task still waits for it to end.
"""

import asyncio
import contextvars
import logging
import queue
import threading
import typing

log = logging.getLogger('pyramid_asgi_ws.wsgi')

T = typing.TypeVar('T')

#: A cancelled task still waiting for its pool call after this many
#: seconds is logged (once): the thread cannot be stopped.
SLOW_CANCEL = 5.0


class Pool:
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

    def call(
        self, fn: typing.Callable[..., typing.Any], *args: typing.Any
    ) -> 'asyncio.Future[typing.Any]':
        """Run ``fn(*args)`` in a pool thread; return an asyncio future of
        its result or exception.

        It runs in a copy of the caller's context variables. Awaiting the
        future holds no thread; cancelling it drops the outcome, but a
        call already queued still runs to its end: await it through
        :func:`shielded` to wait for that end.
        """
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        context = contextvars.copy_context()
        self.submit(_settle, loop, future, context, fn, args)
        return future

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


async def shielded(call: typing.Awaitable[T], fn: object = None) -> T:
    """Await ``call``, a pool call (of ``fn``, named in the logs); when
    the awaiting task is cancelled meanwhile, wait for the call to end,
    then raise the cancellation.

    A thread cannot be stopped: without the wait, what runs after a
    cancellation (a request's finished callbacks, closing its database
    session) would run beside the call still using the same request.
    What the call returns then is dropped and what it raises is logged.
    The wait is logged after :data:`SLOW_CANCEL` seconds; a second
    cancellation (``asyncio.run`` cancels what is left as it ends) stops
    it, so that a call that never returns cannot hold a stop for good.
    """
    future = asyncio.ensure_future(call)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await _outlive(future, fn)
        raise


async def _outlive(future: 'asyncio.Future[typing.Any]', fn: object) -> None:
    """Wait for the pool call of ``fn`` its cancelled caller gave up."""
    name = 'A thread pool call' if fn is None else _name(fn)
    try:
        done, _ = await asyncio.wait({future}, timeout=SLOW_CANCEL)
        if not done:
            log.warning(
                '%s still runs in the thread pool %s s after its task was '
                'cancelled; the task waits for it to end',
                name,
                SLOW_CANCEL,
            )
            await asyncio.wait({future})
    except asyncio.CancelledError:
        log.warning(
            '%s still runs in the thread pool: cancelled again, '
            'its task stops waiting for it',
            name,
        )
        raise
    if not future.cancelled() and future.exception() is not None:
        log.error(
            '%s raised while its task was cancelled',
            name,
            exc_info=future.exception(),
        )


def _name(fn: object) -> str:
    """Name ``fn`` for a log line."""
    return getattr(fn, '__qualname__', None) or repr(fn)


def _settle(
    loop: asyncio.AbstractEventLoop,
    future: 'asyncio.Future[typing.Any]',
    context: contextvars.Context,
    fn: typing.Callable[..., typing.Any],
    args: tuple[typing.Any, ...],
) -> None:
    """Run a :meth:`Pool.call` in its thread and hand its outcome back."""
    result: typing.Any = None
    error: BaseException | None = None
    try:
        result = context.run(fn, *args)
    except StopIteration as exc:  # a future cannot hold one
        error = RuntimeError(f'{fn!r} raised StopIteration')
        error.__cause__ = exc
    except BaseException as exc:  # the awaiting task raises it
        error = exc
    try:
        loop.call_soon_threadsafe(_resolve, future, result, error)
    except RuntimeError:  # the loop is closed: nobody waits any more
        pass


def _resolve(
    future: 'asyncio.Future[typing.Any]',
    result: typing.Any,
    error: BaseException | None,
) -> None:
    if future.cancelled():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
