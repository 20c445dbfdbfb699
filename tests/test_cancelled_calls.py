"""A task cancelled during a pool call waits for the call to end.

What runs after the cancellation (on_disconnect, the request's finished
callbacks) must never run beside a call still using the same request:
:func:`pyramid_asgi_ws.wsgi.pool.shielded` serves ``ws.run_sync``, the
handshake's check and a SyncWebSocketConsumer's methods. In process with
direct application calls, and once through a real uvicorn.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from typing import Any

from pyramid.config import Configurator
from pyramid.threadlocal import get_current_request
import pytest

from pyramid_asgi_ws.wsgi import pool
from pyramid_asgi_ws.wsgi.pool import Pool, shielded
from tests.asgi import Channel, http_scope, ws_scope
from tests.support import (
    ServerProcess,
    free_port,
    server_command,
    until,
)
from tests.wsclient import open_ws

TIMEOUT = 5


class Call:
    """A blocking call that records when it starts and ends, and runs
    until it is released (or for ``TIMEOUT`` seconds)."""

    def __init__(self, log: list[str], raises: bool = False) -> None:
        self.log = log
        self.raises = raises
        self.release = threading.Event()

    def __call__(self, *args: Any) -> str:
        self.log.append('call')
        self.release.wait(TIMEOUT)
        self.log.append('called')
        if self.raises:
            raise ValueError('raised while cancelled')
        return 'done'


async def cancel_mid_call(awaitable: Any, call: Call) -> asyncio.Task[Any]:
    """Start ``awaitable`` in a task, cancel it once ``call`` runs, release
    the call once the cancellation was delivered; return the task, ended
    by the cancellation."""
    log = call.log
    task = asyncio.ensure_future(awaitable)
    await until(lambda: 'call' in log, 'the call to start')
    task.cancel()
    await asyncio.sleep(0.05)  # any wrongly early end comes now
    assert not task.done(), 'the task ended while its call still ran'
    log.append('released')
    call.release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    return task


# -- the helper -----------------------------------------------------------


async def in_pool(workers: Pool, call: Call, named: bool = True) -> Any:
    """Submit ``call`` and await it as the add-on does."""
    if named:
        return await shielded(workers.call(call), call.__call__)
    return await shielded(workers.call(call))


@pytest.mark.parametrize('raises', [False, True])
def test_shielded_returns_or_raises_what_the_call_did(raises):
    log: list[str] = []
    call = Call(log, raises)
    call.release.set()

    async def main() -> Any:
        workers = Pool(1)
        try:
            return await in_pool(workers, call)
        finally:
            workers.close()

    if raises:
        with pytest.raises(ValueError, match='raised while cancelled'):
            asyncio.run(main())
    else:
        assert asyncio.run(main()) == 'done'


@pytest.mark.parametrize(
    'raises, named, name',
    [
        (False, True, ''),
        (True, True, 'Call.__call__'),
        (True, False, 'A thread pool call'),
    ],
)
def test_a_cancelled_wait_ends_after_the_call(raises, named, name, caplog):
    call = Call([], raises)

    async def main() -> None:
        workers = Pool(1)
        await cancel_mid_call(in_pool(workers, call, named), call)
        call.log.append('cancelled')
        workers.close()

    with caplog.at_level(logging.ERROR, 'pyramid_asgi_ws'):
        asyncio.run(main())
    assert call.log == ['call', 'released', 'called', 'cancelled']
    raised = [f'{name} raised while its task was cancelled'] if name else []
    assert [r.getMessage() for r in caplog.records] == raised


def test_a_long_wait_is_logged_and_a_second_cancel_ends_it(
    monkeypatch, caplog
):
    monkeypatch.setattr(pool, 'SLOW_CANCEL', 0.05)
    log: list[str] = []
    call = Call(log)

    async def main() -> None:
        workers = Pool(1)
        task = asyncio.ensure_future(in_pool(workers, call))
        await until(lambda: 'call' in log, 'the call to start')
        task.cancel()
        await until(
            lambda: 'still runs' in caplog.text, 'the slow wait logged'
        )
        assert not task.done()
        task.cancel()  # as asyncio.run does with what is left at its end
        with pytest.raises(asyncio.CancelledError):
            await task
        assert 'called' not in log
        call.release.set()
        workers.close()

    with caplog.at_level(logging.WARNING, 'pyramid_asgi_ws'):
        asyncio.run(main())
    logged = [r.getMessage() for r in caplog.records]
    assert logged == [
        'Call.__call__ still runs in the thread pool 0.05 s after its '
        'task was cancelled; the task waits for it to end',
        'Call.__call__ still runs in the thread pool: cancelled again, '
        'its task stops waiting for it',
    ]


# -- through the application ----------------------------------------------


def make_app(*consumers: tuple[str, Any, dict[str, Any]]) -> Any:
    config = Configurator(settings={'asgi_ws.threads': '2'})
    config.include('pyramid_asgi_ws')
    for pattern, consumer, options in consumers:
        config.add_asgi_consumer(pattern, consumer, **options)
    return config.make_asgi_app()


def finishing(log: list[str], request: Any = None) -> None:
    """Have the request (the current one by default) log its finished
    callbacks."""
    request = request or get_current_request()
    request.add_finished_callback(lambda request: log.append('finished'))


def cancelled_while(call: Call, app: Any, scope: dict[str, Any]) -> None:
    """Serve ``scope`` with ``app``, cancelling it while ``call`` runs."""

    async def main() -> None:
        channel = Channel({'type': f'{scope["type"]}.connect'})
        served = app(scope, channel.receive, channel.send)
        await cancel_mid_call(served, call)
        call.log.append('cancelled')

    asyncio.run(main())


def checking(call: Call) -> Any:
    """A ``factory=`` that runs ``call`` in the handshake's check."""

    def factory(request):
        finishing(call.log, request)
        return call(request)

    return factory


def test_an_async_consumer_cancelled_mid_run_sync():
    call = Call([])

    async def consumer(ws):
        await ws.accept()
        await ws.run_sync(finishing, call.log)
        await ws.run_sync(call)

    cancelled_while(call, make_app(('/ws', consumer, {})), ws_scope('/ws'))
    ended = ['called', 'finished', 'cancelled']
    assert call.log == ['call', 'released', *ended]


async def never_reached(*args: Any) -> None:
    raise AssertionError('the check was cancelled')


def test_a_handshake_cancelled_mid_check():
    call = Call([])
    app = make_app(('/ws', never_reached, {'factory': checking(call)}))
    cancelled_while(call, app, ws_scope('/ws'))
    ended = ['called', 'finished', 'cancelled']
    assert call.log == ['call', 'released', *ended]


def test_an_http_consumer_cancelled_mid_check():
    call = Call([])
    options = {'protocol': 'http', 'factory': checking(call)}
    app = make_app(('/h', never_reached, options))
    # the check's own finished callbacks run in its call
    cancelled_while(call, app, http_scope('/h'))
    ended = ['called', 'finished', 'cancelled']
    assert call.log == ['call', 'released', *ended]


# -- through uvicorn ------------------------------------------------------


def test_uvicorn_cancelling_mid_call_waits_for_it(tmp_path):
    release = tmp_path / 'release'
    port = free_port()
    command = server_command('uvicorn', 'tests.apps.cancelcall:app', port)
    server = ServerProcess(
        [*command, '--timeout-graceful-shutdown', '1'],
        port,
        env={'CANCELCALL_RELEASE': str(release)},
    )
    try:
        server.wait_ready()
        with open_ws(f'{server.ws_url}/slow') as ws:
            ws.send('go')
            server.wait_for_log('call started')
            server.signal()
            server.wait_for_log('Cancel 1 running task')
            time.sleep(0.05)  # any wrongly early finish comes now
            release.touch()
        # uvicorn ends by raising the signal it got again
        assert server.wait() == -signal.SIGTERM
    finally:
        server.stop()
        os.unlink(server.logfile.name)
    log = server.log()
    said = ('call started', 'call ended', 'finished')
    assert [line for line in log.splitlines() if line in said] == [*said], log
