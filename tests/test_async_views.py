"""``async def`` views through a real uvicorn, WebTest and Pyramid's
scripts: tests/apps/asyncviews.py answers each request the same from a
synchronous view and from its async twin."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
import contextlib
import json
from pathlib import Path
import resource
import signal
import socket
import sqlite3
import sys
import time
from typing import Any

import httpx
import pytest
import transaction
import webtest

from tests.support import ServerProcess, free_port, serve, wait_until

TIMEOUT = 10
USER = {'X-User': 'alice'}

#: (path after /{kind}, headers, what it shows) for the twins.
CASES = [
    ('/hello/bob', USER, 'success'),
    ('/hello/bob', {}, 'forbidden'),
    ('/missing', USER, 'not found'),
    ('/save?text=oops&fail=1', USER, 'raised error'),
    ('/moved', {}, 'HTTP exception returned'),
    ('/created', {}, 'request.response'),
    ('/klass', {}, 'view class, async __call__'),
    ('/klass?attr=1', {}, 'view class, async attr method'),
    ('/traced', {'X-Request-Id': 'r-1'}, 'context variables'),
    ('/cancels', {}, 'CancelledError raised'),
    ('/exits', {}, 'SystemExit raised'),
]
#: The cases whose view raises what no WSGI server answers.
UNCAUGHT = {
    'CancelledError raised': asyncio.CancelledError,
    'SystemExit raised': SystemExit,
}


@pytest.fixture(scope='module')
def server(tmp_path_factory) -> Iterator[tuple[ServerProcess, Path]]:
    path = tmp_path_factory.mktemp('asyncviews') / 'notes.sqlite'
    env = {'ASYNCVIEWS_PATH': str(path), 'ASYNCVIEWS_THREADS': '4'}
    with serve('uvicorn', 'tests.apps.asyncviews:app', env) as running:
        yield running, path


def texts(path: Path) -> list[str]:
    """The notes committed to the database file."""
    with sqlite3.connect(path) as connection:
        rows = connection.execute('SELECT text FROM notes ORDER BY id')
        return [text for (text,) in rows]


def events(server: ServerProcess) -> list[str]:
    return httpx.get(server.url + '/events', timeout=TIMEOUT).json()


def answer(response: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """What the twins must agree on: status, headers, body."""
    headers = sorted(
        (name.lower(), value)
        for name, value in response.headers.items()
        if name.lower() not in ('date', 'server')
    )
    status = getattr(response, 'status_code', None) or response.status_int
    return status, headers, response.content


@pytest.mark.parametrize(
    'path, headers, shows', CASES, ids=[case[2] for case in CASES]
)
def test_an_async_view_answers_as_its_sync_twin(server, path, headers, shows):
    running, _ = server
    with httpx.Client(base_url=running.url, timeout=TIMEOUT) as client:
        sync = answer(client.get('/sync' + path, headers=headers))
        async_ = answer(client.get('/async' + path, headers=headers))
    assert async_ == sync
    expected = {
        'success': 200,
        'forbidden': 403,
        'not found': 404,
        'raised error': 500,
        'HTTP exception returned': 302,
        'request.response': 201,
        'CancelledError raised': 500,
        'SystemExit raised': 500,  # not the server stopped
    }.get(shows, 200)
    assert sync[0] == expected
    if shows == 'context variables':
        assert sync[2] == b'r-1'
    if shows == 'CancelledError raised':
        log = running.log()
        assert 'returned without starting response' not in log, log
    if shows == 'SystemExit raised':  # the loop would re-raise it
        assert events(running) and running.proc.poll() is None


def test_blocking_parts_run_in_the_pool_and_the_coroutine_on_the_loop(
    server,
):
    running, _ = server
    where = httpx.get(running.url + '/where', headers=USER, timeout=TIMEOUT)
    threads = where.json()
    assert threads['root'].startswith('asgi_ws-wsgi-'), threads
    assert threads['policy'] == threads['root'], threads
    assert threads['view'] == threads['after await'] == 'MainThread'
    finished = wait_until(
        lambda: [e for e in events(running) if e.startswith('where fin')],
        'the finished callback',
    )
    assert finished[-1] == f'where finished in {threads["root"]}'


@pytest.mark.parametrize('kind', ['hypercorn', 'daphne'])
def test_other_servers(tmp_path, kind):
    env = {'ASYNCVIEWS_PATH': str(tmp_path / 'notes.sqlite')}
    with serve(kind, 'tests.apps.asyncviews:app', env) as running:
        with httpx.Client(base_url=running.url, timeout=TIMEOUT) as client:
            for path, headers, _ in CASES:
                sync = answer(client.get('/sync' + path, headers=headers))
                async_ = answer(client.get('/async' + path, headers=headers))
                assert async_ == sync, path
        started = time.monotonic()
        statuses = asyncio.run(_gather(running.url, 200, s='1'))
        assert statuses == [200] * 200
        assert time.monotonic() - started < 30  # 50 s one thread each


def test_granian_runner(tmp_path):
    """pserve with ``egg:pyramid_asgi_ws#granian`` (granian's embedded
    server on pserve's loop): the twins agree, 200 views awaiting sleep(1)
    overlap, a client leaving cancels its view."""
    port = free_port()
    ini = tmp_path / 'granian.ini'
    ini.write_text(
        '[app:main]\n'
        'use = call:tests.apps.asyncviews:main\n'
        f'path = {tmp_path / "notes.sqlite"}\n'
        '[server:main]\n'
        'use = egg:pyramid_asgi_ws#granian\n'
        f'listen = 127.0.0.1:{port}\n'
    )
    command = [sys.executable, '-m', 'pyramid.scripts.pserve', str(ini)]
    running = ServerProcess(command, port).wait_ready()
    try:
        with httpx.Client(base_url=running.url, timeout=TIMEOUT) as client:
            for path, headers, _ in CASES:
                sync = answer(client.get('/sync' + path, headers=headers))
                async_ = answer(client.get('/async' + path, headers=headers))
                assert async_ == sync, path
        started = time.monotonic()
        statuses = asyncio.run(_gather(running.url, 200, s='1'))
        assert statuses == [200] * 200
        assert time.monotonic() - started < 30  # 50 s one thread each
        with awaiting(running, 'granian-left'):
            pass
        wait_until(
            lambda: 'finished slow NoneType' in events(running),
            'the slow request finished',
        )
        assert 'slow cancelled' in events(running)
    finally:
        running.stop()


def test_the_transaction_commits_or_aborts_as_for_the_sync_twin(server):
    running, path = server
    for kind in ('sync', 'async'):
        for fail in ('', '1'):
            response = httpx.get(
                f'{running.url}/{kind}/save',
                params={'text': f'{kind}-{fail or "kept"}', 'fail': fail},
                headers=USER,
                timeout=TIMEOUT,
            )
            assert response.status_code == (500 if fail else 200)
    found = texts(path)
    assert 'sync-kept' in found and 'async-kept' in found
    assert 'sync-1' not in found and 'async-1' not in found
    done = events(running)
    assert 'finished /async/save' in done and 'finished /sync/save' in done


async def _gather(url: str, count: int, **params: Any) -> list[int]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=0)
    async with httpx.AsyncClient(
        base_url=url, limits=limits, timeout=120, headers=USER
    ) as client:
        responses = await asyncio.gather(
            *(client.get('/sleep', params=params) for _ in range(count))
        )
    return [response.status_code for response in responses]


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < min(hard, 8192):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))


def test_a_thousand_awaiting_views_on_four_threads(server):
    running, _ = server
    raise_nofile()
    started = time.monotonic()
    statuses = asyncio.run(_gather(running.url, 1000, s='1'))
    elapsed = time.monotonic() - started
    print(f'1000 views awaiting sleep(1), 4 threads: {elapsed:.1f} s')
    assert statuses == [200] * 1000
    # one thread per request at a time would take 250 s
    assert elapsed < 60


def test_concurrent_transactions_stay_apart(server):
    """Fifty async saves at once through four threads, each with the
    default thread-local transaction manager: every one commits its own
    note."""
    running, path = server

    async def saves() -> list[int]:
        async with httpx.AsyncClient(
            base_url=running.url, timeout=60, headers=USER
        ) as client:
            responses = await asyncio.gather(
                *(
                    client.get('/async/save', params={'text': f'many-{n}'})
                    for n in range(50)
                )
            )
        return [response.status_code for response in responses]

    assert asyncio.run(saves()) == [200] * 50
    found = [text for text in texts(path) if text.startswith('many-')]
    assert sorted(found) == sorted(f'many-{n}' for n in range(50))


@pytest.mark.parametrize('kind', ['sync', 'async'])
def test_request_bodies(server, kind):
    running, _ = server
    url = f'{running.url}/{kind}/echo'
    small = httpx.post(url, content=b'{"n": 1}', timeout=TIMEOUT)
    assert small.json() == {'size': 8, 'json': 1}
    # streamed in (over 64 KiB): the async twin reads it in the thread
    data = json.dumps({'n': 2, 'pad': 'x' * 300_000}).encode()
    parts = iter([data[:1000], data[1000:]])
    big = httpx.post(url, content=parts, timeout=TIMEOUT)
    assert big.json() == {'size': len(data), 'json': 2}
    # asgi_ws.max_body_size is 1,000,000: declared or streamed, 413
    over = b'x' * 1_000_001
    assert httpx.post(url, content=over, timeout=TIMEOUT).status_code == 413
    chunked = httpx.post(
        url, content=iter([over[:70_000], over[70_000:]]), timeout=TIMEOUT
    )
    assert chunked.status_code == 413


@contextlib.contextmanager
def awaiting(running: ServerProcess, text: str) -> Iterator[socket.socket]:
    """A connection whose request waits in the slow view (saving
    ``text``), once the view says so; leaving closes it."""
    before = events(running).count('slow waits')
    with socket.create_connection(('127.0.0.1', running.port)) as sock:
        sock.sendall(
            f'GET /slow?text={text} HTTP/1.1\r\nHost: x\r\n\r\n'.encode()
        )
        wait_until(
            lambda: events(running).count('slow waits') > before,
            'the slow view awaiting',
        )
        yield sock


def test_a_client_leaving_cancels_the_view_and_its_transaction(server):
    running, path = server
    before = events(running).count('finished slow NoneType')
    start = len(running.log())  # what other tests logged is theirs
    with awaiting(running, 'left'):
        pass
    wait_until(
        lambda: events(running).count('finished slow NoneType') > before,
        'the slow request finished',
    )
    assert 'slow cancelled' in events(running)
    assert 'left' not in texts(path)
    log = running.log()[start:]
    assert 'Traceback' not in log and 'Task was destroyed' not in log, log


def test_suspended_views_are_cancelled_at_shutdown(tmp_path):
    path = tmp_path / 'notes.sqlite'
    port = free_port()
    command = [
        sys.executable, '-m', 'uvicorn', 'tests.apps.asyncviews:app',
        '--host', '127.0.0.1', '--port', str(port),
        '--timeout-graceful-shutdown', '1',
    ]  # fmt: skip
    running = ServerProcess(
        command, port, {'ASYNCVIEWS_PATH': str(path)}
    ).wait_ready()
    try:
        with awaiting(running, 'stopped'):
            started = time.monotonic()
            running.signal(signal.SIGTERM)
            status = running.wait(15)
            elapsed = time.monotonic() - started
    finally:
        running.stop()
    log = running.log()
    # uvicorn's command line ends by re-raising the signal it caught, and
    # logs the connection task it cancelled after its graceful timeout
    assert status in (0, -signal.SIGTERM), log
    assert elapsed < 10, log  # the view would sleep 30 s
    assert 'slow cancelled' in log and 'finished slow' in log, log
    assert 'stopped' not in texts(path)
    assert 'Task was destroyed' not in log and 'never awaited' not in log, log


# -- the same application under WebTest, the testing client, the scripts


@pytest.fixture(scope='module')
def wsgi_app(tmp_path_factory) -> tuple[webtest.TestApp, Path]:
    from tests.apps.asyncviews import make_config

    path = tmp_path_factory.mktemp('asyncviews-wsgi') / 'notes.sqlite'
    return webtest.TestApp(make_config(str(path)).make_wsgi_app()), path


def webtest_answer(response: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = sorted((k.lower(), v) for k, v in response.headerlist)
    return response.status_int, headers, response.body


@pytest.mark.parametrize(
    'path, headers, shows', CASES, ids=[case[2] for case in CASES]
)
def test_webtest_under_make_wsgi_app(wsgi_app, path, headers, shows):
    app, _ = wsgi_app
    if shows in UNCAUGHT:
        for kind in ('sync', 'async'):
            with pytest.raises(UNCAUGHT[shows], match='by the view'):
                app.get(f'/{kind}{path}', headers=headers)
            # pyramid_tm aborts on Exception only: a BaseException leaves
            # the request's transaction open in this thread, for both
            transaction.abort()
        return
    sync = app.get('/sync' + path, headers=headers, expect_errors=True)
    async_ = app.get('/async' + path, headers=headers, expect_errors=True)
    assert webtest_answer(async_) == webtest_answer(sync)


def test_webtest_transactions_and_bodies(wsgi_app):
    app, path = wsgi_app
    app.get('/async/save?text=wsgi-kept', headers=USER)
    app.get('/async/save?text=wsgi-1&fail=1', headers=USER, status=500)
    assert 'wsgi-kept' in texts(path) and 'wsgi-1' not in texts(path)
    response = app.post('/async/echo', b'{"n": 3}')
    assert response.json == {'size': 8, 'json': 3}


def test_the_testing_client_drives_async_views():
    from pyramid_asgi_ws.testing import TestClient
    from tests.apps.asyncviews import app

    with TestClient(app) as client:
        response = client.http.get('/async/hello/carol', headers=USER)
        assert response.json == {
            'user': 'alice',
            'name': 'carol',
            'route': 'hello',
        }
        assert client.http.get('/async/hello/carol', status=403).json == {
            'denied': True
        }


@pytest.fixture
def ini(tmp_path) -> str:
    path = tmp_path / 'app.ini'
    path.write_text(
        '[app:main]\n'
        'use = call:tests.apps.asyncviews:main\n'
        f'path = {tmp_path / "notes.sqlite"}\n'
    )
    return str(path)


def test_proutes_and_pviews_show_async_views(ini):
    from pyramid import threadlocal
    from pyramid.scripts.proutes import PRoutesCommand
    from pyramid.scripts.pviews import PViewsCommand

    lines: list[str] = []
    before = list(threadlocal.manager.stack)
    try:
        command = PRoutesCommand(['proutes', ini])
        command.out = lines.append
        assert command.run() == 0
        routes = '\n'.join(lines)
        lines.clear()
        command = PViewsCommand(['pviews', ini, '/async/hello/bob'])
        command.out = lines.append
        assert command.run() == 0
    finally:
        # the commands' bootstrap pushes a request and never pops it: the
        # tests that follow in this thread would see it as the current one
        threadlocal.manager.stack[:] = before
    assert 'tests.apps.asyncviews.async_hello' in routes, routes
    assert 'tests.apps.asyncviews.sync_hello' in routes, routes
    views = '\n'.join(lines)
    assert 'tests.apps.asyncviews.async_hello' in views, views
    assert 'required permission = view' in views, views


def test_the_shutdown_cancels_views_still_awaiting_and_waits_for_them(
    tmp_path,
):
    """In process, with a server that does not cancel the request itself:
    the lifespan shutdown cancels the view, and ends once the request has
    ended in its thread (transaction aborted, finished callbacks run)."""
    from tests.apps.asyncviews import EVENTS, make_config
    from tests.asgi import Channel, http_scope

    path = tmp_path / 'notes.sqlite'
    app = make_config(str(path)).make_asgi_app()
    sent: list[dict[str, Any]] = []

    async def main() -> None:
        lifespan = Channel({'type': 'lifespan.startup'})
        life = asyncio.ensure_future(
            app({'type': 'lifespan'}, lifespan.receive, lifespan.send)
        )
        gone = asyncio.get_running_loop().create_future()
        messages = [{'type': 'http.request', 'body': b''}]

        async def receive() -> dict[str, Any]:
            return messages.pop() if messages else await gone

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        before = EVENTS.count('slow waits')
        scope = http_scope('/slow', query_string=b'text=drained')
        request = asyncio.ensure_future(app(scope, receive, send))
        while EVENTS.count('slow waits') == before:
            await asyncio.sleep(0.01)
        ended = EVENTS.count('finished slow NoneType')
        lifespan.incoming.put_nowait({'type': 'lifespan.shutdown'})
        await asyncio.wait_for(life, TIMEOUT)
        assert lifespan.types() == [
            'lifespan.startup.complete',
            'lifespan.shutdown.complete',
        ]
        assert EVENTS.count('finished slow NoneType') == ended + 1
        await asyncio.wait_for(request, TIMEOUT)

    asyncio.run(main())
    assert sent == []  # nobody to answer
    assert 'drained' not in texts(path)
