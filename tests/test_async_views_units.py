"""The pool's suspendable calls (wsgi.pool, wsgi.suspend) and the async
view deriver (asyncviews), in process."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
from types import SimpleNamespace
from typing import Any
import warnings

from pyramid.threadlocal import manager
import pytest

from pyramid_asgi_ws import asyncviews
from pyramid_asgi_ws.asyncviews import awaited_view, is_async_view
from pyramid_asgi_ws.wsgi import suspend as suspending
from pyramid_asgi_ws.wsgi.pool import Pool
from pyramid_asgi_ws.wsgi.suspend import Cancelled, suspend, suspendable
from tests.support import until

TIMEOUT = 5


class Recorder:
    """A spawned call: records its threads, awaits ``awaitable`` through
    :func:`suspend`, and records the outcome."""

    def __init__(self, awaitable: Any) -> None:
        self.awaitable = awaitable
        self.threads: list[int] = []
        self.outcome: Any = None
        self.done = threading.Event()

    def __call__(self) -> None:
        self.threads.append(threading.get_ident())
        try:
            self.outcome = suspend(self.awaitable)
        except BaseException as exc:
            self.outcome = exc
        self.threads.append(threading.get_ident())
        self.done.set()


async def wait_for(event: threading.Event) -> None:
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, event.wait, TIMEOUT)


@pytest.fixture
def pool():
    workers = Pool(1)
    yield workers
    workers.close()


def test_a_suspended_call_frees_its_thread_and_resumes_in_it(pool):
    async def main() -> None:
        loop = asyncio.get_running_loop()
        release = loop.create_future()
        call = Recorder(release)
        job = pool.spawn(loop, call)
        # the single thread runs another call while the first awaits
        other = threading.Event()
        await asyncio.sleep(0.05)
        pool.submit(other.set)
        await wait_for(other)
        assert job in pool.suspended and not call.done.is_set()
        release.set_result('released')
        await wait_for(call.done)
        await until(lambda: job.finished, 'the job to finish')
        assert call.outcome == 'released'
        assert call.threads[0] == call.threads[1]

    asyncio.run(main())


def test_what_the_awaitable_raises_is_raised_at_the_suspension(pool):
    async def fail() -> None:
        raise LookupError('from the loop')

    call = Recorder(fail())

    async def main() -> None:
        pool.spawn(asyncio.get_running_loop(), call)
        await wait_for(call.done)

    asyncio.run(main())
    assert isinstance(call.outcome, LookupError)


def test_a_job_cancelled_before_it_suspends_resumes_cancelled(pool):
    started = threading.Event()
    go = threading.Event()

    async def never() -> None:
        raise AssertionError('never runs')

    def body() -> Any:
        started.set()
        go.wait(TIMEOUT)
        return suspend(never())

    outcome: list[Any] = []
    done = threading.Event()

    def run() -> None:
        try:
            body()
        except Cancelled as exc:
            outcome.append(type(exc))  # not its traceback: the frames
        done.set()

    async def main() -> None:
        job = pool.spawn(asyncio.get_running_loop(), run)
        await wait_for(started)
        job.cancel()
        go.set()
        await wait_for(done)
        await until(lambda: job.finished, 'the job to finish')

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        asyncio.run(main())
        gc.collect()
    assert len(outcome) == 1
    # the coroutine that never started is closed, not 'never awaited'
    assert not [w for w in caught if 'never awaited' in str(w.message)]


def _disconnecting(*messages: Any) -> Any:
    queue = list(messages)

    async def receive() -> Any:
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        if item is None:
            await asyncio.sleep(TIMEOUT)
        return item

    return receive


@pytest.mark.parametrize(
    'messages',
    [
        [{'type': 'http.request'}, {'type': 'http.disconnect'}],
        [OSError('receive failed')],
    ],
    ids=['disconnect', 'receive fails'],
)
def test_the_watcher_cancels_on_a_disconnect(pool, messages, caplog):
    caplog.set_level(logging.DEBUG, 'pyramid_asgi_ws.wsgi')

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        call = Recorder(asyncio.sleep(TIMEOUT * 2))
        pool.spawn(loop, call, receive=_disconnecting(*messages))
        await wait_for(call.done)
        return call.outcome

    assert isinstance(asyncio.run(main()), Cancelled)
    assert 'while a view awaited' in caplog.text


async def stubborn() -> None:
    """Sleep; once cancelled, take a while longer to end."""
    try:
        await asyncio.sleep(TIMEOUT)
    except asyncio.CancelledError:
        await asyncio.sleep(0.3)
        raise


def test_close_cancels_suspended_calls_and_waits_for_their_thread():
    workers = Pool(2)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        call = Recorder(stubborn())
        workers.spawn(loop, call)
        await asyncio.sleep(0.05)
        idle = threading.Event()
        workers.submit(idle.set)  # a second thread, idle after this
        await wait_for(idle)
        await until(lambda: workers.suspended, 'a suspended call')
        workers.close()
        # the thread of the call stays until the call has ended
        await asyncio.sleep(0.1)
        assert sum(thread.is_alive() for thread in workers.threads) == 1
        await wait_for(call.done)
        assert isinstance(call.outcome, Cancelled)
        for thread in workers.threads:
            await loop.run_in_executor(None, thread.join, TIMEOUT)
            assert not thread.is_alive()

    asyncio.run(main())


def test_a_resumption_wakes_an_idle_thread(pool):
    async def main() -> None:
        loop = asyncio.get_running_loop()
        release = loop.create_future()
        call = Recorder(release)
        pool.spawn(loop, call)
        await until(lambda: pool.suspended, 'a suspended call')
        await until(lambda: pool.busy == 0, 'the thread to go idle')
        assert pool.busy == 0 and pool.waiting == 0
        release.set_result(1)
        await wait_for(call.done)
        # it is idle again, and takes the next call
        more = threading.Event()
        await asyncio.sleep(0.05)
        pool.submit(more.set)
        await wait_for(more)

    asyncio.run(main())


def test_drain(pool, caplog):
    async def main() -> None:
        await pool.drain(0.1)  # nothing suspended: at once
        call = Recorder(stubborn())
        pool.spawn(asyncio.get_running_loop(), call)
        await until(lambda: pool.suspended, 'a suspended call')
        await pool.drain(0.1)
        assert 'still running after 0.1 s' in caplog.text
        await wait_for(call.done)

    asyncio.run(main())


def test_suspend_outside_a_spawned_call():
    assert not suspendable()
    coroutine = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match='outside a call'):
        suspend(coroutine)
    coroutine.close()


def test_a_closed_loop_is_not_told(caplog):
    caplog.set_level(logging.DEBUG, 'pyramid_asgi_ws.wsgi')
    loop = asyncio.new_event_loop()
    loop.close()
    suspending._tell(loop, print)
    assert 'the event loop is closed' in caplog.text


# -- the deriver ----------------------------------------------------------


async def coroutine_view(request: Any) -> str:
    return 'x'


class AsyncCall:
    async def __call__(self) -> str:
        return 'x'

    def sync(self) -> str:
        return 'x'

    async def method(self) -> str:
        return 'x'


@pytest.mark.parametrize(
    'view, attr, expected',
    [
        (coroutine_view, None, True),
        (lambda request: 'x', None, False),
        (AsyncCall, None, True),
        (AsyncCall, 'method', True),
        (AsyncCall, 'sync', False),
        (AsyncCall(), None, True),
        (AsyncCall(), 'method', True),
        (AsyncCall(), 'sync', False),
    ],
)
def test_is_async_view(view, attr, expected):
    assert is_async_view(view, attr) is expected


def test_a_sync_view_is_left_alone():
    def view(context: Any, request: Any) -> str:
        return 'x'

    info = SimpleNamespace(original_view=view, options={})
    assert awaited_view(view, info) is view


def test_an_async_view_returning_no_awaitable_passes_it_on():
    info = SimpleNamespace(original_view=coroutine_view, options={})
    wrapped = awaited_view(lambda context, request: 'plain', info)
    assert wrapped(None, None) == 'plain'


def test_set_aside_without_transaction(monkeypatch):
    monkeypatch.setitem(sys.modules, 'transaction', None)
    manager.push({'request': 'mine'})
    try:
        held = asyncviews.Held()
        held.set_aside(SimpleNamespace())
        assert manager.stack == []
        with held.lent():
            assert manager.get() == {'request': 'mine'}
        assert manager.stack == []
        held.restore()
        assert manager.get() == {'request': 'mine'}
    finally:
        manager.pop()


def test_a_failing_spawned_call_is_logged_and_its_greenlet_kept(pool, caplog):
    greenlets: list[Any] = []
    done = threading.Event()

    def fail() -> None:
        greenlets.append(suspending.greenlet.getcurrent())
        raise ValueError('spawned call failed')

    def after() -> None:
        greenlets.append(suspending.greenlet.getcurrent())
        done.set()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        pool.spawn(loop, fail)
        pool.spawn(loop, after)
        await wait_for(done)

    asyncio.run(main())
    assert 'spawned call failed' in caplog.text
    assert greenlets[0] is greenlets[1]  # a spare, not a new one


def test_a_thread_taking_a_call_with_more_behind_wakes_the_next():
    """Two blocking calls queued at once, one thread woken for them: it
    takes the first and wakes (here: starts) a thread for the second, so
    that the two overlap."""
    from pyramid_asgi_ws.wsgi import pool as pooling

    workers = Pool(3)
    release = threading.Event()
    started = [threading.Event() for _ in range(3)]

    def blocker(n: int) -> None:
        started[n].set()
        release.wait(TIMEOUT)

    try:
        workers.submit(blocker, 0)
        assert started[0].wait(TIMEOUT)
        with workers._lock:  # both at once, as a burst arriving
            workers._backlog.extend([(blocker, (1,)), (blocker, (2,))])
            found = workers._rouse()
        pooling._wake(found)
        assert all(event.wait(TIMEOUT) for event in started)
        assert len(workers.threads) == 3
    finally:
        release.set()
        workers.close()


def test_a_spare_greenlet_keeps_nothing_of_its_last_call(pool):
    import gc
    import weakref

    class Environ(dict):  # weakly referenceable, as a request's objects
        pass

    environ = Environ()
    seen = weakref.ref(environ)
    done = threading.Event()

    def call(environ: Environ) -> None:
        done.set()

    async def main(environ: Environ) -> None:
        pool.spawn(asyncio.get_running_loop(), call, environ)
        await wait_for(done)
        # the greenlet is back among the spares once its thread is idle
        await until(lambda: pool.busy == 0, 'the thread to go idle')

    asyncio.run(main(environ))
    del environ
    gc.collect()
    assert seen() is None
