"""The chat example served by ``pserve`` with ``egg:pyramid_asgi_ws#granian``.

Real granian, real clients: the page and a chat message, an unknown or
unsupported option refused by name, a unix socket, and SIGTERM closing
open sockets with 1001 within ``shutdown_timeout``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
import os
import signal
import threading
import time
from typing import Any, TypeVar

from granian.errors import FatalError
import pytest

from pyramid_asgi_ws.runners import granian as granian_runners
from pyramid_asgi_ws.runners.granian import (
    granian_runner,
    granian_server,
    serve_granian,
)
from pyramid_asgi_ws.runners.options import (
    ServerOptionError,
    parse_server_options,
)
from tests.fixtures.runners import (
    chat_served,
    check_page_and_chat,
    check_sigterm_closes_with_1001,
    check_unix_socket,
    check_unknown_option,
)
from tests.support import free_port
from tests.test_chat import TIMEOUT, visitor

SHUTDOWN_TIMEOUT = 2.0
T = TypeVar('T')


def test_page_and_chat(tmp_path):
    with chat_served(tmp_path, 'granian') as server:
        check_page_and_chat(server)
        # the access log goes through the ini's [loggers]
        server.wait_for_log('[granian.access')


@pytest.mark.parametrize(
    'proxy_headers, scheme', [('true', 'wss'), ('false', 'ws')]
)
def test_proxy_headers_from_the_local_proxy(tmp_path, proxy_headers, scheme):
    with chat_served(
        tmp_path, 'granian', proxy_headers=proxy_headers
    ) as server:
        session = visitor(server.url, 'pat')
        forwarded = {
            'X-Forwarded-For': '203.0.113.7',
            'X-Forwarded-Proto': 'https',
        }
        room = session.get(
            server.url + '/rooms/lobby', headers=forwarded, timeout=TIMEOUT
        )
    url = f'{scheme}://127.0.0.1:{server.port}/ws/lobby'
    assert f'data-socket-url="{url}"' in room.text


def test_unknown_option_is_refused_by_name(tmp_path):
    check_unknown_option(tmp_path, 'granian')


@pytest.mark.parametrize(
    'options, message',
    [
        ({'ws_max_size': '1MB'}, "unknown option 'ws_max_size'"),
        ({'ws_ping_interval': '5'}, "unknown option 'ws_ping_interval'"),
        ({'app_name': 'main'}, "unknown option 'app_name'"),
        ({'workers': 2}, 'runs one process'),
        (
            {'listen': '127.0.0.1:1 127.0.0.1:2'},
            'serves one address',
        ),
    ],
)
def test_options_granian_cannot_honour_are_refused(options, message):
    with pytest.raises(ServerOptionError, match=message):
        granian_runner(object(), {}, **options)


def test_sigterm_closes_sockets_with_1001(tmp_path):
    with chat_served(
        tmp_path, 'granian', shutdown_timeout=SHUTDOWN_TIMEOUT
    ) as server:
        check_sigterm_closes_with_1001(server, SHUTDOWN_TIMEOUT)


def test_unix_socket_is_open_to_local_users_and_removed(tmp_path):
    check_unix_socket(tmp_path, 'granian')


class Lifespan:
    """A raw ASGI application that says when its lifespan started, and
    whose lifespan shutdown takes ``shutdown_delay`` seconds; its startup
    fails if ``startup`` is ``'failed'``."""

    def __init__(
        self, shutdown_delay: float = 0.0, startup: str = 'complete'
    ) -> None:
        self.started = asyncio.Event()
        self.shutdown_delay = shutdown_delay
        self.startup = startup

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope['type'] == 'lifespan'
        await receive()
        await send({'type': f'lifespan.startup.{self.startup}'})
        self.started.set()
        await receive()
        await asyncio.sleep(self.shutdown_delay)
        await send({'type': 'lifespan.shutdown.complete'})


class Closing:
    """Stands for the application's ``close_connections``: says when it
    was called, and ends only when ``done`` is set."""

    def __init__(self) -> None:
        self.called = asyncio.Event()
        self.done = asyncio.Event()

    async def close_connections(self, *args: Any) -> None:
        self.called.set()
        await self.done.wait()


def granian(served: Lifespan) -> Any:
    """granian's embedded server for ``served``, made by the runner."""
    opts = parse_server_options({'port': free_port()}, 'granian')
    return granian_server(served, opts)


async def stop_granian(
    served: Lifespan, app: Closing, timeout: float, signals: int
) -> float:
    """Serve ``served`` with granian embedded; once it started, send
    SIGTERM ``signals`` times (each after ``app`` began to close); return
    the seconds from the first signal until granian stopped."""
    server = granian(served)
    serving = asyncio.ensure_future(serve_granian(app, server, timeout))
    await asyncio.wait_for(served.started.wait(), 10)
    started = time.monotonic()
    for _ in range(signals):
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(app.called.wait(), 10)
    await asyncio.wait_for(serving, 10 + timeout)
    return time.monotonic() - started


def run_granian(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main``, then wait for granian's threads to end as the runner
    does: one left running when pytest exits would abort it."""
    try:
        return asyncio.run(main)
    finally:
        granian_runners.wait_for_threads(granian_runners.THREADS_TIMEOUT)


def test_second_signal_stops_waiting_for_websockets():
    app = Closing()
    elapsed = run_granian(stop_granian(Lifespan(), app, 30.0, signals=2))
    assert not app.done.is_set()
    assert elapsed < 10


def test_lifespan_shutdown_is_bounded_by_shutdown_timeout(caplog):
    app = Closing()
    app.done.set()
    served = Lifespan(shutdown_delay=30.0)
    elapsed = run_granian(stop_granian(served, app, 0.5, signals=1))
    assert elapsed < 10
    assert 'granian did not stop within 0.5 s' in caplog.text


def test_failed_startup_ends_the_runner():
    served = Lifespan(startup='failed')
    with pytest.raises(FatalError, match='ASGI lifespan startup'):
        run_granian(
            asyncio.wait_for(
                serve_granian(Closing(), granian(served), 5.0), 20
            )
        )


def test_granian_threads_are_awaited_until_they_settle(monkeypatch):
    # granian's runtime threads wind down a moment after its server
    # returned; one (7) stays parked for good
    polls = iter([{7, 8}, {7, 8}, {7, 9}, {7}])
    calls = []

    def threads() -> set[int]:
        calls.append(time.monotonic())
        return next(polls, {7})

    monkeypatch.setattr(granian_runners, 'native_threads', threads)
    granian_runners.wait_for_threads(10.0, settle=0.1)
    # the set last changed at the fourth look, and stayed for 0.1 s
    assert len(calls) > 4
    assert calls[-1] - calls[3] >= 0.09


def test_threads_that_never_settle_are_awaited_only_until_the_timeout(
    monkeypatch,
):
    counter = iter(range(10**9))
    monkeypatch.setattr(
        granian_runners, 'native_threads', lambda: {next(counter)}
    )
    started = time.monotonic()
    granian_runners.wait_for_threads(0.1, settle=1.0)
    assert 0.1 <= time.monotonic() - started < 5


def test_native_threads_are_not_pythons():
    assert threading.get_native_id() not in granian_runners.native_threads()
