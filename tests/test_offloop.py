"""The application's synchronous code runs in the thread pool, not the loop.

Through a real uvicorn (``tests/apps/offloop.py``): a security policy
taking 200 ms per identity lets 20 handshakes through at once while an
echo socket keeps answering, ``asgi_ws.threads`` bounds the policy calls
running at once, and ``ws.run_sync``, the request and root factories,
the forbidden view and the finished callbacks all run in pool threads.
The bridge's awaitable calls and the lazy request are tested in-process.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any
import urllib.error
import urllib.request

from pyramid.config import Configurator
from pyramid.security import NO_PERMISSION_REQUIRED
import pytest
from websockets.exceptions import InvalidStatus

from pyramid_asgi_ws import WebSocket
from pyramid_asgi_ws.wsgi.pool import Pool
from tests.asgi import Channel, run, ws_scope
from tests.support import serve
from tests.wsclient import TIMEOUT, open_ws

POOL_THREAD = 'asgi_ws-wsgi-'
#: A round trip on the echo socket while slow handshakes run must stay
#: well under the policy's 200 ms: on the loop it would take all of it.
ROUND_TRIP_BOUND = 0.1


@pytest.fixture(scope='module')
def server():
    with serve('uvicorn', 'tests.apps.offloop:app') as server:
        yield server


def get(url: str) -> tuple[int, Any, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def stats(server, reset: bool = False) -> dict:
    _, _, body = get(f'{server.url}/stats{"?reset" if reset else ""}')
    return json.loads(body)


def slow_handshake(server) -> dict:
    with open_ws(f'{server.ws_url}/slow') as ws:
        return json.loads(ws.recv(timeout=TIMEOUT))


def test_slow_policy_leaves_the_loop_answering(server):
    stats(server, reset=True)
    results: list[dict] = []
    failures: list[BaseException] = []

    def one() -> None:
        try:
            results.append(slow_handshake(server))
        except BaseException as exc:  # reported by the test below
            failures.append(exc)

    with open_ws(f'{server.ws_url}/echo') as echo:
        echo.send('warm')
        assert echo.recv(timeout=TIMEOUT) == 'warm'
        clients = [threading.Thread(target=one) for _ in range(20)]
        started = time.monotonic()
        for client in clients:
            client.start()
        round_trips = []
        while any(client.is_alive() for client in clients):
            sent = time.perf_counter()
            echo.send('ping')
            assert echo.recv(timeout=TIMEOUT) == 'ping'
            round_trips.append(time.perf_counter() - sent)
            time.sleep(0.01)
        took = time.monotonic() - started
        for client in clients:
            client.join(TIMEOUT)
    assert not failures, failures
    assert len(results) == 20
    # 20 calls of 200 ms on 4 threads: five rounds at least
    assert took >= 0.9
    assert len(round_trips) >= 20
    assert max(round_trips) < ROUND_TRIP_BOUND, max(round_trips)
    seen = stats(server)
    assert seen['most'] == 4
    assert all(name.startswith(POOL_THREAD) for name in seen['threads'])


def test_request_root_factory_and_policy_run_in_the_pool(server):
    where = slow_handshake(server)
    assert where['request'].startswith(POOL_THREAD)
    assert where['root'].startswith(POOL_THREAD)
    assert where['registry_current'] and where['root_saw_request']
    assert where['loop'] == 'MainThread'


def test_forbidden_view_renders_the_refusal_in_the_pool(server):
    with pytest.raises(InvalidStatus) as info:
        open_ws(f'{server.ws_url}/denied')
    response = info.value.response
    assert response.status_code == 403
    assert response.headers['X-Thread'].startswith(POOL_THREAD)


def test_http_consumers_are_checked_in_the_pool(server):
    status, headers, _ = get(f'{server.url}/http/denied')
    assert status == 403
    assert headers['X-Thread'].startswith(POOL_THREAD)
    assert get(f'{server.url}/http/allowed')[::2] == (200, b'allowed')


def test_finished_callbacks_run_in_a_pool_thread(server):
    start = len(server.log())
    slow_handshake(server)
    log = server.wait_for_log('finished in', start)
    assert f'finished in {POOL_THREAD}' in log
    assert 'current=True' in log


def test_run_sync_returns_raises_and_sees_the_request(server):
    with open_ws(f'{server.ws_url}/run_sync') as ws:
        ws.send('go')
        result = json.loads(ws.recv(timeout=TIMEOUT))
        assert result['thread'].startswith(POOL_THREAD)
        assert result['loop'] == 'MainThread'
        assert result['current'] is True
        assert result['mark'] == 'from the consumer'
        assert result['args'] == [1, 2]
        assert result['kwargs'] == {'fail': False}
        ws.send('fail')
        failed = json.loads(ws.recv(timeout=TIMEOUT))
        assert failed['raised'] == 'ValueError: failed in the pool'
        ws.send('go')  # the socket and the pool serve on
        assert json.loads(ws.recv(timeout=TIMEOUT))['current'] is True


# -- in-process ---------------------------------------------------------------


def test_pool_call_hands_back_results_and_exceptions():
    pool = Pool(2)

    def stop():
        raise StopIteration

    async def main():
        assert await pool.call(lambda a, b: a + b, 2, 3) == 5
        with pytest.raises(KeyError):
            await pool.call({}.__getitem__, 'missing')
        with pytest.raises(SystemExit):  # not only Exception
            await pool.call(exit, 3)
        with pytest.raises(RuntimeError, match='StopIteration'):
            await pool.call(stop)

    try:
        run(main())
    finally:
        pool.close()


def test_pool_call_cancelled_or_outlived_drops_its_outcome():
    pool = Pool(1)
    release = threading.Event()
    done = threading.Event()

    def blocked():
        release.wait(TIMEOUT)
        done.set()
        return 'late'

    async def cancel():
        future = pool.call(blocked)
        future.cancel()
        release.set()
        # the call still runs to its end; its outcome finds no taker
        await asyncio.get_running_loop().run_in_executor(
            None, done.wait, TIMEOUT
        )
        assert await pool.call(lambda: 'next') == 'next'

    async def leave():
        release.clear()
        done.clear()
        pool.call(blocked)

    try:
        run(cancel())
        run(leave())  # the loop closes while the call waits
        release.set()
        assert done.wait(TIMEOUT)
        assert pool.threads[0].is_alive()  # the thread took no harm
    finally:
        pool.close()


def plain_app(*consumers, **config_kw):
    config = Configurator(**config_kw)
    config.include('pyramid_asgi_ws')
    for pattern, consumer in consumers:
        config.add_asgi_consumer(
            pattern, consumer, permission=NO_PERMISSION_REQUIRED
        )
    return config.make_asgi_app()


def serve_one(app, path):
    channel = Channel({'type': 'websocket.connect'})

    async def main():
        await app(ws_scope(path), channel.receive, channel.send)

    run(main())
    return channel.sent


def test_without_app_code_the_request_is_built_when_first_read():
    seen = {}

    async def consumer(ws):
        seen['before'] = ws._request
        await ws.accept()
        seen['request'] = ws.request
        seen['thread'] = await ws.run_sync(
            lambda: threading.current_thread().name
        )
        await ws.close()

    sent = serve_one(plain_app(('/ws', consumer)), '/ws')
    assert [m['type'] for m in sent] == ['websocket.accept', 'websocket.close']
    assert seen['before'] is None  # nothing to run in the pool first
    assert seen['request'].context is not None
    assert seen['thread'].startswith(POOL_THREAD)


def test_run_sync_builds_the_request_in_the_pool_if_unread():
    seen = {}

    def current():
        from pyramid.threadlocal import get_current_request

        return get_current_request()

    async def consumer(ws):
        await ws.accept()
        seen['current'] = await ws.run_sync(current)
        seen['request'] = ws._request
        await ws.close()

    serve_one(plain_app(('/ws', consumer)), '/ws')
    assert seen['current'] is seen['request'] is not None


def test_finished_callbacks_only_when_there_are_some():
    ran = []

    async def consumer(ws):
        await ws.accept()
        ws.request.add_finished_callback(
            lambda request: ran.append(threading.current_thread().name)
        )
        await ws.close()

    async def bare(ws):
        await ws.accept()
        assert ws.request is not None  # built, with no callbacks
        await ws.close()

    app = plain_app(('/ws', consumer), ('/bare', bare))
    serve_one(app, '/bare')
    assert ran == []
    serve_one(app, '/ws')
    assert len(ran) == 1 and ran[0].startswith(POOL_THREAD)


def test_run_sync_needs_a_runner():
    ws = WebSocket(ws_scope(), None, None)
    with pytest.raises(RuntimeError, match='no thread pool'):
        run(ws.run_sync(print))


def test_finished_callbacks_of_a_request_never_built():
    from pyramid_asgi_ws.handshake import run_finished_callbacks

    ws = WebSocket(ws_scope(), None, None)
    run_finished_callbacks(None, ws)  # nothing to run, nothing built
    assert ws._request is None


def test_a_refused_handshake_still_runs_its_finished_callbacks():
    from tests.pkgs.locked import NobodyPolicy

    ran = []

    def factory(request):
        request.add_finished_callback(
            lambda request: ran.append(threading.current_thread().name)
        )

    async def consumer(ws):  # never runs
        await ws.accept()

    config = Configurator()
    config.include('pyramid_asgi_ws')
    config.set_security_policy(NobodyPolicy())
    config.add_asgi_consumer('/ws', consumer, permission='x', factory=factory)
    sent = serve_one(config.make_asgi_app(), '/ws')
    assert sent[0]['type'] == 'websocket.http.response.start'
    assert sent[0]['status'] == 401
    assert len(ran) == 1 and ran[0].startswith(POOL_THREAD)
