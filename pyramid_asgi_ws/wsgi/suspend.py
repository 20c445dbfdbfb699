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


class Cancelled(ClientDisconnect):
    """Raised where a suspended call awaited (an ``async def`` view, in
    its greenlet) when its task was cancelled: the client went away, the
    server ended the request, or the pool closed.

    It is an :class:`Exception`, so that what wraps the view (``pyramid_tm``
    aborting its transaction, exception views) sees it as a failure; the
    bridge answers nothing for it, as for any :class:`ClientDisconnect`.
    """


class Resume(tuple):  # type: ignore[type-arg]
    """A resumption in a thread's inbox: ``(_step, (glet, task))``."""

    __slots__ = ()


class Job:
    """A call started by :meth:`Pool.spawn`, as the event loop sees it.

    From its first suspension until its greenlet ends, it is in the pool's
    ``suspended`` set and ``ended`` is a future resolved at that end;
    ``task`` is the awaitable it waits for now, if any. Its methods run on
    the event loop.
    """

    __slots__ = (
        'pool', 'loop', 'receive', 'task', 'watcher', 'cancelled', 'ended',
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
        self.watcher: asyncio.Task[None] | None = None
        self.cancelled = False
        self.ended: asyncio.Future[None] | None = None

    def cancel(self) -> None:
        """Cancel the awaitable the call is suspended on, and any later
        one: the call resumes with :exc:`Cancelled`."""
        self.cancelled = True
        if self.task is not None:
            self.task.cancel()

    def _park(self, awaitable: typing.Any, glet: typing.Any) -> None:
        if self.ended is None:
            self.ended = self.loop.create_future()
            self.pool.suspended.add(self)
        task = asyncio.ensure_future(awaitable, loop=self.loop)
        self.task = task
        if self.cancelled:
            task.cancel()
        elif self.receive is not None:
            self.watcher = self.loop.create_task(self._watch())
        task.add_done_callback(functools.partial(self._done, glet))

    def _done(
        self, glet: typing.Any, task: 'asyncio.Task[typing.Any]'
    ) -> None:
        self.task = None
        if self.watcher is not None:
            self.watcher.cancel()
            self.watcher = None
        glet.worker.inbox.put(Resume((_step, (glet, task))))

    def _end(self) -> None:
        self.pool.suspended.discard(self)
        typing.cast(asyncio.Future[None], self.ended).set_result(None)

    async def _watch(self) -> None:
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
    jobs = list(pool.suspended)
    for job in jobs:
        job.cancel()
    if not jobs:
        return
    ended = [typing.cast(asyncio.Future[None], job.ended) for job in jobs]
    _, left = await asyncio.wait(ended, timeout=timeout)
    if left:
        log.warning(
            '%d cancelled async views still running after %s s',
            len(left),
            timeout,
        )


def begin(
    job: Job, fn: typing.Callable[..., object], args: tuple[object, ...]
) -> None:
    """Start a spawned call in a new greenlet of this thread."""
    glet = greenlet.greenlet(fn)
    glet.job = job
    glet.worker = here.worker
    glet.parked = False
    _advance(glet, glet.switch(*args))


def _step(glet: typing.Any, task: 'asyncio.Task[typing.Any]') -> None:
    """Resume a suspended call with its task's outcome."""
    glet.worker.parked -= 1
    if task.cancelled():
        out = glet.throw(Cancelled('The awaiting view was cancelled'))
    elif task.exception() is not None:
        out = glet.throw(task.exception())
    else:
        out = glet.switch(task.result())
    _advance(glet, out)


def _advance(glet: typing.Any, awaitable: typing.Any) -> None:
    """After a switch into ``glet``: park it if it suspended itself, tell
    the loop when a call that suspended has ended."""
    job = glet.job
    if glet.dead:
        if glet.parked:
            _tell(job.loop, job._end)
        return
    glet.parked = True
    glet.worker.parked += 1
    _tell(job.loop, job._park, awaitable, glet)


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
    (:exc:`Cancelled` when it was cancelled).

    Only for a call started by :meth:`Pool.spawn` (see :func:`suspendable`).
    """
    glet = greenlet.getcurrent()
    if getattr(glet, 'job', None) is None:
        raise RuntimeError('suspend() outside a call started by Pool.spawn')
    return typing.cast(T, glet.parent.switch(awaitable))
