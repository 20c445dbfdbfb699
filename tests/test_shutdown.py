"""Graceful shutdown: pserve, real clients, SIGTERM, close code 1001."""

from __future__ import annotations

import contextlib
import signal
import time

import pytest

from tests.fixtures.deploy import (
    close_frame,
    echo_once,
    myproject_ini,
    pserve,
    websocket,
)
from tests.support import free_port

CLIENTS = 3
#: What must never appear in the log of a clean shutdown.
BAD_LINES = (
    'Task was destroyed',
    'was never awaited',
    'Traceback',
    'Exception in ASGI',
    'Cancel',
    'ERROR',
)


@pytest.mark.parametrize(
    ('server', 'signum', 'options'),
    [
        ('uvicorn', signal.SIGTERM, {}),
        ('uvicorn', signal.SIGINT, {}),
        ('uvicorn', signal.SIGTERM, {'workers': '2'}),
        ('hypercorn', signal.SIGTERM, {}),
    ],
    ids=['uvicorn-term', 'uvicorn-int', 'uvicorn-workers', 'hypercorn-term'],
)
def test_signal_closes_every_websocket_with_1001(
    tmp_path, server, signum, options
):
    port = free_port()
    ini = myproject_ini(
        tmp_path,
        server,
        listen=f'127.0.0.1:{port}',
        shutdown_timeout='4',
        **options,
    )
    proc = pserve(ini, port=port).wait_ready()
    url = f'ws://127.0.0.1:{port}/ws/echo'
    try:
        with contextlib.ExitStack() as stack:
            clients = [stack.enter_context(websocket(url)) for _ in range(3)]
            for ws in clients:
                echo_once(ws)
            started = time.monotonic()
            proc.signal(signum)
            frames = [close_frame(ws, timeout=4) for ws in clients]
            elapsed = time.monotonic() - started
        status = proc.wait(15)
    finally:
        proc.stop()
    log = proc.log()
    assert [(f.code, f.reason) for f in frames] == [
        (1001, 'server shutting down')
    ] * CLIENTS, log
    assert elapsed < 3, log
    assert status == 0, log
    # every consumer noticed (with the app's own 1001 on every server) and
    # finished before the shutdown hooks ran
    assert log.count('echo consumer finished with code 1001') == 3, log
    finished = log.rindex('echo consumer finished')
    assert log.index('shutdown hook ran with 0 sockets open') > finished, log
    assert not [bad for bad in BAD_LINES if bad in log], log


def test_idle_server_stops_at_once(tmp_path):
    port = free_port()
    ini = myproject_ini(tmp_path, listen=f'127.0.0.1:{port}')
    proc = pserve(ini, port=port).wait_ready()
    try:
        started = time.monotonic()
        proc.signal(signal.SIGTERM)
        assert proc.wait(10) == 0, proc.log()
        assert time.monotonic() - started < 2, proc.log()
    finally:
        proc.stop()
    assert 'shutdown hook ran with 0 sockets open' in proc.log()


def stubborn_ini(tmp_path, server: str = 'uvicorn'):
    """An ini serving the stubborn consumers, and its port."""
    port = free_port()
    ini = tmp_path / 'stubborn.ini'
    ini.write_text(
        '[app:main]\nuse = call:tests.fixtures.apps:stubborn_app\n\n'
        f'[server:main]\nuse = egg:pyramid_asgi_ws#{server}\n'
        f'listen = 127.0.0.1:{port}\nshutdown_timeout = 2\n'
    )
    return ini, port


@pytest.mark.parametrize('second', [None, signal.SIGINT])
def test_stubborn_consumer_delays_the_stop_at_most_the_timeout(
    tmp_path, second
):
    ini, port = stubborn_ini(tmp_path)
    proc = pserve(ini, port=port).wait_ready()
    try:
        with websocket(f'ws://127.0.0.1:{port}/ws/stubborn') as ws:
            started = time.monotonic()
            proc.signal(signal.SIGTERM)
            assert close_frame(ws, timeout=4).code == 1001
            if second is not None:
                # a second signal stops waiting for the consumer to finish
                proc.signal(second)
            proc.wait(10)
            elapsed = time.monotonic() - started
    finally:
        proc.stop()
    log = proc.log()
    # the whole stop, uvicorn's own graceful wait included, takes at most
    # the 2 s of shutdown_timeout; a second signal ends it at once
    if second is None:
        assert 1.5 < elapsed < 3, log
    else:
        assert elapsed < 1.5, log
    assert 'Task was destroyed' not in log


@pytest.mark.parametrize('server', ['uvicorn', 'hypercorn'])
def test_consumer_that_never_reads_cannot_prolong_the_stop(tmp_path, server):
    # the consumer never reads, so it never hears of the close
    ini, port = stubborn_ini(tmp_path, server)
    proc = pserve(ini, port=port).wait_ready()
    try:
        with websocket(f'ws://127.0.0.1:{port}/ws/deaf') as ws:
            ws.recv(timeout=5)  # the consumer runs
            started = time.monotonic()
            proc.signal(signal.SIGTERM)
            status = proc.wait(10)
            elapsed = time.monotonic() - started
    finally:
        proc.stop()
    log = proc.log()
    assert status == 0, log
    assert 1.5 < elapsed < 3, log
