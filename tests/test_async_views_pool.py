"""The pool's scheduling of resumptions beside new calls (wsgi.pool),
in process: races a review found."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import threading
from typing import Any

import pytest

from pyramid_asgi_ws.wsgi import pool as pooling
from pyramid_asgi_ws.wsgi.pool import Pool
from pyramid_asgi_ws.wsgi.suspend import suspend
from tests.support import until

TIMEOUT = 5


async def wait_for(event: threading.Event) -> None:
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, event.wait, TIMEOUT)


async def warm(pool: Pool) -> None:
    """Start every thread of ``pool`` and wait until all are idle."""
    barrier = threading.Barrier(pool.size)
    done = [threading.Event() for _ in range(pool.size)]
    for event in done:
        pool.submit(lambda event=event: (barrier.wait(TIMEOUT), event.set()))
    for event in done:
        await wait_for(event)
    await until(lambda: len(pool._idle) == pool.size, 'every thread idle')


Race = Callable[[Pool, 'asyncio.Future[None]', threading.Event], None]


def resume_beside_a_call(race: Race, rounds: int = 5) -> list[bool]:
    """On a warm pool of two threads, a spawned call suspends, then
    ``race(pool, release, ran)`` resumes it (``release``) beside a new
    call (``ran.set``); the resumed call blocks until that call has run.
    Return, for each round, whether it ran meanwhile."""
    pool = Pool(2)
    outcomes: list[bool] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await warm(pool)
        release: asyncio.Future[None] = loop.create_future()
        ran = threading.Event()

        def call() -> None:
            suspend(release)
            outcomes.append(ran.wait(TIMEOUT))

        job = pool.spawn(loop, call)
        await until(
            lambda: pool.suspended and not pool.busy, 'suspended, thread idle'
        )
        race(pool, release, ran)
        await until(lambda: job.finished, 'the job to finish')

    try:
        for _ in range(rounds):
            asyncio.run(main())
    finally:
        pool.close()
    return outcomes


def test_a_call_arriving_with_a_resumption_takes_another_idle_thread():
    """The resumption reaches the idle thread that parked the call, and a
    new call comes in the same loop iteration: the call must go to the
    other idle thread, not wait behind the resumption (it did: the thread
    taking the resumption counted as woken for the call)."""

    def race(pool: Pool, release: Any, ran: Any) -> None:
        release.add_done_callback(lambda _: pool.submit(ran.set))
        release.set_result(None)

    assert resume_beside_a_call(race) == [True] * 5


def test_a_woken_thread_meeting_a_resumption_passes_the_backlog_on():
    """The call comes first and wakes the thread that parked the job (the
    last to go idle); its resumption is in the inbox too when the thread
    runs: the thread runs it first, so it wakes the other for the call."""

    def race(pool: Pool, release: Any, ran: Any) -> None:
        pool._lock.acquire()  # the woken thread waits for it
        pool._backlog.append((ran.set, ()))
        pooling._wake(pool._rouse())
        release.set_result(None)  # its resumption is queued next
        asyncio.get_running_loop().call_soon(pool._lock.release)

    assert resume_beside_a_call(race) == [True] * 5


def test_greenlets_beyond_the_spares_are_freed(monkeypatch):
    """Five calls suspended at once in one thread that keeps one spare:
    once they have ended, the four other greenlets are gone, and the
    spare once the thread has ended (the four were kept for ever: a
    started greenlet referring to itself from its own frame is in a
    cycle the garbage collector never frees)."""
    import gc
    import weakref

    from pyramid_asgi_ws.wsgi import suspend as suspending

    monkeypatch.setattr(suspending, 'SPARE_GREENLETS', 1)
    pool = Pool(1)
    greenlets: list[weakref.ref[object]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        release: asyncio.Future[None] = loop.create_future()

        def call() -> None:
            greenlets.append(weakref.ref(suspending.greenlet.getcurrent()))
            suspend(release)

        jobs = [pool.spawn(loop, call) for _ in range(5)]
        await until(lambda: len(pool.suspended) == 5, 'five suspended calls')
        release.set_result(None)
        await until(
            lambda: all(job.finished for job in jobs), 'the jobs to finish'
        )
        await until(
            lambda: pool.busy == 0, 'the thread to be done with the last call'
        )
        gc.collect()
        assert len(greenlets) == 5  # suspended at once: five greenlets
        assert sum(ref() is not None for ref in greenlets) == 1

    try:
        asyncio.run(main())
    finally:
        pool.close()
    pool.threads[0].join(TIMEOUT)
    gc.collect()
    # the spare goes with its thread
    assert all(ref() is None for ref in greenlets)


def test_home_runs_calls_in_the_suspended_calls_thread():
    """A call through a suspended call's Home runs in that call's thread,
    before the backlog, though another thread is idle."""
    pool = Pool(2)
    names: dict[str, str] = {}

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await warm(pool)
        release: asyncio.Future[None] = loop.create_future()
        homes: list[pooling.Home] = []

        def call() -> None:
            names['call'] = threading.current_thread().name
            homes.append(pooling.Home())
            suspend(release)

        job = pool.spawn(loop, call)
        await until(lambda: homes and not pool.busy, 'a home, thread idle')
        names['home'] = await homes[0].call(
            lambda: threading.current_thread().name
        )
        release.set_result(None)
        await until(lambda: job.finished, 'the job to finish')

    try:
        asyncio.run(main())
    finally:
        pool.close()
    assert names['home'] == names['call']


def test_home_outside_a_spawned_call_is_refused():
    with pytest.raises(RuntimeError, match='outside a call'):
        pooling.Home()
