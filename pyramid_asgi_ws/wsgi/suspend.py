"""Calls of the bridge's pool that suspend themselves on the event loop.

A call started by :meth:`~pyramid_asgi_ws.wsgi.pool.Pool.spawn` runs in a
greenlet of its pool thread. :func:`suspend`, called inside it, switches
back to the thread's main greenlet handing over an awaitable; the thread
asks the event loop to run it as a task (:meth:`Job._park`) and goes on
with other calls. When the task is done, its resumption is queued to that
same thread (a greenlet cannot change threads), which switches back into
the greenlet with the outcome.
"""

import asyncio
import contextvars
import functools
import logging
import threading
import typing

from pyramid_asgi_ws.wsgi.body import ClientDisconnect

try:
    import greenlet
except ImportError:  # pragma: no cover - greenlet comes with the async extra
    greenlet = None

if typing.TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from pyramid_asgi_ws.wsgi.pool import Pool

log = logging.getLogger('pyramid_asgi_ws.wsgi')

T = typing.TypeVar('T')

#: The pool thread's own state (its ``worker``), set by the pool.
here = threading.local()

#: Spare runner greenlets a pool thread keeps for its next spawned calls:
#: making one costs about 12 µs, switching into one about 0.3 µs, and
#: one kept costs about 8 KiB. On uvicorn under ``wrk -c64`` the async
#: hello view cost the same with 32 as with 128 (65 and 66 µs a request,
#: 68 with 16), and 32 bound what a burst leaves to 0.25 MiB a thread.
SPARE_GREENLETS = 32

#: What a runner greenlet hands back to its thread once its call ended.
DONE = object()


class Cancelled(ClientDisconnect):
    """Raised where a suspended call awaited (an ``async def`` view, in
    its greenlet) when its task was cancelled: the client went away, the
    server ended the request, or the pool closed.

    It is an :class:`Exception`, so that what wraps the view (``pyramid_tm``
    aborting its transaction, exception views) sees it as a failure; the
    bridge answers nothing for it, as for any
    :class:`~pyramid_asgi_ws.wsgi.body.ClientDisconnect`.
    """


#: Seconds a call stays suspended before its client's disconnect is
#: watched: most awaits end sooner, and watching costs a task each.
WATCH_AFTER = 0.05


class Job:
    """A call started by :meth:`Pool.spawn`, as the event loop sees it.

    ``task`` is the awaitable it waits for now, if any; ``finished`` is
    set (by its thread) once a call that suspended has ended. From its
    first suspension on, the job is in the pool's ``suspended`` set, for
    as long as the request holds it. Its methods run on the event loop.
    """

    __slots__ = (
        'pool', 'loop', 'receive', 'task', 'watcher', 'cancelled',
        'finished', 'inbox', '__weakref__',
    )  # fmt: skip

    def __init__(
        self,
        pool: 'Pool',
        loop: asyncio.AbstractEventLoop,
        receive: typing.Callable[[], typing.Awaitable[typing.Any]] | None,
    ) -> None:
        self.pool = pool
        self.loop = loop
        self.receive = receive
        self.task: asyncio.Task[typing.Any] | None = None
        self.watcher: asyncio.Handle | asyncio.Task[None] | None = None
        self.cancelled = False
        self.finished = False
        #: The inbox of the thread running the call (set there).
        self.inbox: typing.Any = None

    def cancel(self) -> None:
        """Cancel the awaitable the call is suspended on, and any later
        one: the call resumes with :exc:`Cancelled`."""
        self.cancelled = True
        if self.task is not None:
            self.task.cancel()

    def _park(
        self,
        glet: typing.Any,
        awaitable: typing.Any,
        context: contextvars.Context,
    ) -> None:
        self.pool.suspended.add(self)
        # the task copies the context it is made in: the caller's
        task = context.run(self.loop.create_task, _guarded(awaitable))
        self.task = task
        if self.cancelled:
            task.cancel()
        elif self.receive is not None:
            self.watcher = self.loop.call_later(WATCH_AFTER, self._watch)
        task.add_done_callback(functools.partial(self._done, glet, awaitable))

    def _done(
        self,
        glet: typing.Any,
        awaitable: typing.Any,
        task: 'asyncio.Task[typing.Any]',
    ) -> None:
        self.task = None
        if asyncio.iscoroutine(awaitable):
            # one whose task was cancelled before it started is closed,
            # not left 'never awaited'; any other has ended already
            awaitable.close()
        if self.watcher is not None:
            self.watcher.cancel()
            self.watcher = None
        # a resumption, in its thread's inbox as a call
        self.inbox.put((_step, (glet, task)))

    def _watch(self) -> None:
        self.watcher = self.loop.create_task(self._disconnect())

    async def _disconnect(self) -> None:
        receive = typing.cast(
            typing.Callable[[], typing.Awaitable[typing.Any]], self.receive
        )
        try:
            while (await receive())['type'] != 'http.disconnect':
                pass
            log.debug('Client disconnected while a view awaited')
        except Exception as exc:
            log.debug('receive() failed while a view awaited: %r', exc)
        self.watcher = None
        self.cancel()


async def drain(pool: 'Pool', timeout: float) -> None:
    """Cancel the suspended calls of ``pool`` and wait, at most
    ``timeout`` seconds, for them to end in their threads."""
    jobs = [job for job in pool.suspended if not job.finished]
    for job in jobs:
        job.cancel()
    deadline = asyncio.get_running_loop().time() + timeout
    while jobs:
        jobs = [job for job in jobs if not job.finished]
        if asyncio.get_running_loop().time() > deadline:
            log.warning(
                '%d cancelled async views still running after %s s',
                len(jobs),
                timeout,
            )
            return
        await asyncio.sleep(0.01)


def begin(
    job: Job, fn: typing.Callable[..., object], args: tuple[object, ...]
) -> None:
    """Run a spawned call in a runner greenlet of this thread: a spare
    one, or a new one."""
    worker = here.worker
    job.inbox = worker.inbox
    spare = worker.spare
    if spare:
        glet = spare.pop()
    else:
        glet = greenlet.greenlet(_serve)
        glet.switch()  # to where it takes calls
    glet.job = job
    _advance(glet, glet.switch(job, fn, args))


def _serve() -> None:
    """What a runner greenlet runs: spawned calls, one after another.

    It starts without arguments and takes each call from a switch, so
    that it keeps nothing of a call once it is done (the request's
    environ): a greenlet's first arguments live as long as it does. Nor
    does it refer to itself (its ``job`` is set and cleared from its
    thread): a greenlet that has started is never garbage collected, so
    one dropped must be left with no reference, not in a cycle.
    """
    parent = greenlet.getcurrent().parent
    job, fn, args = parent.switch()
    while True:
        try:
            fn(*args)
        except Exception:  # keep the greenlet for the next call
            log.exception('Error in a WSGI thread pool call')
        job.finished = True
        job = fn = args = None  # type: ignore[assignment]
        job, fn, args = parent.switch(DONE)


def _step(glet: typing.Any, task: 'asyncio.Task[typing.Any]') -> None:
    """Resume a suspended call with its task's outcome."""
    here.worker.parked -= 1
    failed, outcome = _outcome(task, glet.job.cancelled)
    _advance(glet, glet.throw(outcome) if failed else glet.switch(outcome))


class Raised(typing.NamedTuple):
    """What a suspended call's awaitable raised that a task would not keep
    but raise out of the event loop, stopping the server."""

    exc: BaseException


async def _guarded(awaitable: typing.Awaitable[T]) -> 'T | Raised':
    """Await ``awaitable``; return the :exc:`KeyboardInterrupt` or
    :exc:`SystemExit` it raises, for its call to raise, as a synchronous
    view's is raised in its thread (and uvicorn catches an app's)."""
    try:
        return await awaitable
    except (KeyboardInterrupt, SystemExit) as exc:
        return Raised(exc)


def _outcome(
    task: 'asyncio.Future[typing.Any]', cancelled: bool
) -> tuple[bool, typing.Any]:
    """Whether ``task`` failed, and its result or what to raise where it
    was awaited: :exc:`Cancelled` when its job was ``cancelled``, but the
    :exc:`asyncio.CancelledError` the awaitable raised itself otherwise
    (as a synchronous call would raise it)."""
    try:
        result = task.result()
        if type(result) is Raised:
            return True, result.exc
        return False, result
    except asyncio.CancelledError as exc:
        if cancelled:
            return True, Cancelled('The awaiting view was cancelled')
        return True, exc
    except BaseException as exc:
        return True, exc


def _advance(glet: typing.Any, out: typing.Any) -> None:
    """After a switch into ``glet``: keep it as a spare if its call has
    ended, park it if the call suspended itself on ``out``."""
    worker = here.worker
    if out is DONE:
        glet.job = None
        if len(worker.spare) < SPARE_GREENLETS:
            worker.spare.append(glet)
        return  # else dropped: freeing it ends it (GreenletExit)
    worker.parked += 1
    _tell(glet.job.loop, glet.job._park, glet, *out)


def _tell(
    loop: asyncio.AbstractEventLoop,
    fn: typing.Callable[..., None],
    *args: typing.Any,
) -> None:
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the loop is closed: nobody waits any more
        log.debug('%r dropped: the event loop is closed', fn)


def suspendable() -> bool:
    """Whether the caller runs in a call started by :meth:`Pool.spawn`,
    which may :func:`suspend` itself."""
    if greenlet is None:  # pragma: no cover - see the import
        return False
    return getattr(greenlet.getcurrent(), 'job', None) is not None


def suspend(awaitable: typing.Awaitable[T]) -> T:
    """Run ``awaitable`` on the event loop as a task, switching back to the
    pool thread meanwhile; return its result or raise its exception
    (:exc:`Cancelled` when it was cancelled). A coroutine runs in a copy
    of the caller's context variables, as a task started by the caller
    would.

    Only for a call started by :meth:`Pool.spawn` (see :func:`suspendable`).
    """
    glet = greenlet.getcurrent()
    if getattr(glet, 'job', None) is None:
        raise RuntimeError('suspend() outside a call started by Pool.spawn')
    context = contextvars.copy_context()
    return typing.cast(T, glet.parent.switch(awaitable, context))
