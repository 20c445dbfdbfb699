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

:meth:`Pool.spawn` runs a call in a :mod:`greenlet` of its thread, so
that the call can :func:`suspend` itself on an awaitable (an ``async
def`` view's coroutine): the awaitable runs as a task on the event loop,
the thread goes on with other calls meanwhile, and the call resumes in
the same thread (a greenlet cannot change threads) once the task is
done. Each thread thus takes, in order, resumptions of its own suspended
calls and new calls from the shared queue (see
:mod:`~pyramid_asgi_ws.wsgi.suspend`); a :class:`Home` made in the call
runs other calls in that thread, as resumptions, while it is suspended.
"""

import asyncio
from collections import deque
import contextlib
import contextvars
import logging
import queue
import threading
import typing
import weakref

from pyramid_asgi_ws.wsgi.suspend import (
    Job,
    begin,
    drain,
    greenlet,
    here,
)

log = logging.getLogger('pyramid_asgi_ws.wsgi')

T = typing.TypeVar('T')

#: A cancelled task still waiting for its pool call after this many
#: seconds is logged (once): the thread cannot be stopped.
SLOW_CANCEL = 5.0


class _Worker:
    """A pool thread's own state: its inbox (resumptions of its suspended
    calls, wake-ups), whether it was woken (or started) and has not yet
    said so, how many of its calls are suspended, and its spare runner
    greenlets."""

    __slots__ = ('inbox', 'woken', 'parked', 'spare')

    def __init__(self) -> None:
        self.inbox: queue.SimpleQueue[typing.Any] = queue.SimpleQueue()
        self.woken = True  # as it starts
        self.parked = 0
        self.spare: list[typing.Any] = []


_Found = tuple[_Worker, threading.Thread | None] | None

#: What a pool thread waits for when it has nothing to run.
IDLE = object()


def _wake(found: _Found) -> None:
    """Wake the thread :meth:`Pool._rouse` found, or start it."""
    if found is None:
        return
    worker, thread = found
    if thread is None:
        worker.inbox.put(None)  # wake up
    else:
        thread.start()


class Pool:
    """At most ``size`` daemon threads running calls; a thread starts only
    when no idle one can take the call, and a call waits in a shared
    backlog when every thread is busy."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._backlog: deque[typing.Any] = deque()
        self._waking = 0  # threads woken (or started), not running yet
        #: Spawned calls that suspended themselves, while their requests
        #: hold them (event loop only).
        self.suspended: weakref.WeakSet[Job] = weakref.WeakSet()
        self.closed = False

    @property
    def busy(self) -> int:
        """How many threads run a call now (for the metrics)."""
        return len(self.threads) - len(self._idle)

    @property
    def waiting(self) -> int:
        """How many calls wait for a free thread (for the metrics)."""
        return len(self._backlog)

    def submit(self, fn: typing.Callable[..., object], *args: object) -> None:
        """Run ``fn(*args)`` in a pool thread."""
        with self._lock:
            if self.closed:
                raise RuntimeError('The thread pool is closed')
            self._backlog.append((fn, args))
            found = self._rouse()
        _wake(found)

    def _rouse(self) -> '_Found':
        """The idle thread to wake (or the thread to start) for the
        backlog, unless one is on its way already (under the lock).

        As from a shared :class:`queue.SimpleQueue`, one thread wakes at
        a time and, taking a call with more behind it, wakes the next: a
        burst of blocking calls spreads over the threads, while quick
        calls are taken by the threads already running them.
        """
        if self._waking:
            return None
        if self._idle:
            worker = self._idle.pop()
            worker.woken = True
            found: _Found = (worker, None)
        elif len(self.threads) < self.size:
            worker = _Worker()
            thread = threading.Thread(
                target=self._work,
                args=(worker,),
                name=f'asgi_ws-wsgi-{len(self.threads)}',
                daemon=True,
            )
            self.threads.append(thread)
            found = (worker, thread)
        else:
            return None
        self._waking += 1
        return found

    def spawn(
        self,
        loop: asyncio.AbstractEventLoop,
        fn: typing.Callable[..., object],
        *args: object,
        receive: typing.Callable[[], typing.Awaitable[typing.Any]]
        | None = None,
    ) -> 'Job':
        """Run ``fn(*args)`` in a pool thread, in a greenlet of its own so
        that it may :func:`suspend` itself on an awaitable run on ``loop``.

        ``receive`` (an ASGI receive callable whose request body has all
        arrived) is watched while the call is suspended: an
        ``http.disconnect`` cancels the awaitable. Without greenlet
        installed this is :meth:`submit`.
        """
        job = Job(self, loop, receive)
        if greenlet is None:  # pragma: no cover - see the import
            self.submit(fn, *args)
        else:
            self.submit(begin, job, fn, args)
        return job

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
        future, settling = _settling(fn, args)
        self.submit(_settle, *settling)
        return future

    def _work(self, worker: _Worker) -> None:
        here.worker = worker
        inbox = worker.inbox
        lock = self._lock
        backlog = self._backlog
        idle = self._idle
        job: typing.Any = None
        self._awake(worker)
        while True:
            if job is not None:
                try:
                    job[0](*job[1])
                except Exception:  # keep the thread for the next call
                    log.exception('Error in a WSGI thread pool call')
                del job
            if not inbox.empty():  # resumptions first
                job = inbox.get()
            else:
                found = None
                with lock:
                    if backlog:
                        job = backlog.popleft()
                        if backlog:
                            found = self._rouse()
                    elif not self.closed:
                        idle.append(worker)
                        job = IDLE
                    elif worker.parked:
                        job = IDLE
                    else:
                        return
                if job is not IDLE:
                    _wake(found)
                    continue
                job = inbox.get()  # a resumption, or None to wake up
                self._awake(worker)
            if job is not None and backlog:
                # A resumption runs before the backlog: pass the backlog
                # on, or a thread woken for it would hold it meanwhile.
                with lock:
                    found = self._rouse()
                _wake(found)

    def _awake(self, worker: _Worker) -> None:
        """Note that ``worker``'s thread runs again: no longer on its way
        if it was woken or started, no longer idle if a resumption woke
        it."""
        with self._lock:
            if worker.woken:
                worker.woken = False
                self._waking -= 1
            else:
                with contextlib.suppress(ValueError):
                    self._idle.remove(worker)  # not there once closed

    async def drain(self, timeout: float) -> None:
        """Cancel the suspended calls and wait, at most ``timeout``
        seconds, for them to end in their threads (event loop)."""
        await drain(self, timeout)

    def close(self) -> None:
        """Let queued calls finish, cancel the suspended ones, then end
        the threads (each once its suspended calls have ended)."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            idle, self._idle = self._idle, []
            self._waking += len(idle)
            for worker in idle:
                worker.woken = True
        for worker in idle:
            worker.inbox.put(None)  # wake up to end
        for job in list(self.suspended):
            job.cancel()


class Home:
    """The pool thread of the suspended call it is made in (inside that
    call, an ``async def`` view's greenlet): :meth:`call` runs functions
    there, from the event loop, while the call is suspended."""

    __slots__ = ('job',)

    def __init__(self) -> None:
        job = getattr(greenlet.getcurrent(), 'job', None)
        if job is None:
            raise RuntimeError('Home() outside a call started by Pool.spawn')
        self.job: Job = job

    def call(
        self, fn: typing.Callable[..., typing.Any], *args: typing.Any
    ) -> 'asyncio.Future[typing.Any]':
        """As :meth:`Pool.call`, but in the suspended call's own thread,
        taken as its resumptions are: before the new calls of the shared
        backlog, once the thread is done with what it runs now."""
        future, settling = _settling(fn, args)
        self.job.inbox.put((_settle, settling))
        return future


def _settling(
    fn: typing.Callable[..., typing.Any], args: tuple[typing.Any, ...]
) -> tuple['asyncio.Future[typing.Any]', tuple[typing.Any, ...]]:
    """A future for a pool call of ``fn(*args)`` made on the running
    loop, and the arguments of the :func:`_settle` that resolves it, in a
    copy of the caller's context variables."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    return future, (loop, future, contextvars.copy_context(), fn, args)


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
