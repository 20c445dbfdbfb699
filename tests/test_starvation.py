"""A consumer sending in a loop does not starve its worker's event loop.

A server's send returns without suspending while the client keeps up, so
without :data:`~pyramid_asgi_ws.websocket.YIELD_EVERY` a flooding consumer
would hold the loop: no HTTP request, echo or shutdown on that worker
would be served until the client fell behind.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import http.client
import re
import signal
import socket
import statistics
import threading
import time

import pytest

from tests.fixtures.deploy import echo_once, pserve, websocket
from tests.support import SERVERS, ServerProcess, free_port, serve
from tests.wsclient import raw_handshake

#: What the typical HTTP request or echo may take beside the flood (about
#: a millisecond with the yield; without it they wait seconds, or forever).
BOUND = 0.5
#: The longest any one of them may take: wide, since a machine busy with
#: other tests (and coverage) has spikes that say nothing of starvation.
CEILING = 3.0
#: Small messages: the client reads them faster than the server sends,
#: so the server's transport never pauses and its send never suspends.
FLOOD = '/flood/1024'


@contextlib.contextmanager
def flood_reader(server: ServerProcess) -> Iterator[list[int]]:
    """Read the flood as fast as possible in a thread; yield the count of
    bytes read so far (a one-item list) once the consumer floods."""
    sock = raw_handshake(server.port, FLOOD)
    read = [0]
    stop = threading.Event()

    def reading() -> None:
        buffer = bytearray(1 << 20)
        with contextlib.suppress(OSError):
            while not stop.is_set() and (count := sock.recv_into(buffer)):
                read[0] += count

    thread = threading.Thread(target=reading, daemon=True)
    thread.start()
    try:
        server.wait_for_log('FLOODING')
        yield read
    finally:
        stop.set()
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        thread.join(5)


def timed(action, *args) -> float:
    """Run ``action(*args)``; return the seconds it took."""
    started = time.monotonic()
    action(*args)
    return time.monotonic() - started


def ping(port: int) -> None:
    """GET /ping, failing after the ceiling."""
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=CEILING)
    try:
        conn.request('GET', '/ping')
        response = conn.getresponse()
        assert response.read() == b'pong'
    finally:
        conn.close()


@pytest.mark.parametrize('kind', SERVERS)
def test_http_and_echo_answer_beside_a_flooding_consumer(kind):
    with serve(kind, 'tests.apps.starve:app') as server:
        with (
            flood_reader(server) as read,
            websocket(f'{server.ws_url}/echo') as ws,
        ):
            before = read[0]
            pings = [timed(ping, server.port) for _ in range(20)]
            echoes = [timed(echo_once, ws) for _ in range(20)]
            assert read[0] > before, 'the flood stopped'
    for timings in (pings, echoes):
        assert statistics.median(timings) < BOUND, timings
        assert max(timings) < CEILING, timings


def starve_ini(directory, server: str, port: int):
    path = directory / 'starve.ini'
    path.write_text(
        '[app:main]\nuse = call:tests.apps.starve:main\n\n'
        f'[server:main]\nuse = egg:pyramid_asgi_ws#{server}\n'
        f'listen = 127.0.0.1:{port}\nshutdown_timeout = 4\n'
    )
    return path


@pytest.mark.parametrize('kind', ['uvicorn', 'hypercorn'])
def test_a_shutdown_reaches_a_flooding_consumer_at_once(tmp_path, kind):
    port = free_port()
    server = pserve(starve_ini(tmp_path, kind, port), port=port)
    server.wait_ready()
    try:
        with flood_reader(server):
            signalled = time.time()
            server.signal(signal.SIGTERM)
            log = server.wait_for_log('FLOOD ENDED', timeout=5)
        status = server.wait(10)
    finally:
        server.stop()
    ended = re.search(r'FLOOD ENDED code=(\d+) at=([\d.]+)', log)
    assert ended is not None, log
    assert ended.group(1) == '1001', log
    assert float(ended.group(2)) - signalled < CEILING, log
    assert status == 0, server.log()


def test_daphne_stops_beside_a_flooding_consumer():
    # daphne has no runner and tells the application nothing of its stop
    # (see SERVERS.md): it must still exit, in about 0.5 s, flood or not
    # (the bound is wide for a loaded machine).
    with serve('daphne', 'tests.apps.starve:app') as server:
        with flood_reader(server):
            server.signal(signal.SIGTERM)
            assert server.wait(10) == 0, server.log()
