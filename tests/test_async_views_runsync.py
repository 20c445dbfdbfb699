"""``request.run_sync`` in async views, through a real uvicorn and under
WebTest (also from inside a running event loop): tests/apps/runsync.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
import concurrent.futures
from pathlib import Path
import socket
import threading
from typing import Any

import httpx
import pytest
import transaction
import webtest

from tests.support import ServerProcess, serve, wait_until
from tests.test_async_views import texts

TIMEOUT = 10
USER = {'X-User': 'alice'}


@pytest.fixture(scope='module')
def server(tmp_path_factory) -> Iterator[tuple[ServerProcess, Path]]:
    path = tmp_path_factory.mktemp('runsync') / 'notes.sqlite'
    env = {'ASYNCVIEWS_PATH': str(path), 'ASYNCVIEWS_THREADS': '4'}
    with serve('uvicorn', 'tests.apps.runsync:app', env) as running:
        yield running, path


def get(server: ServerProcess, path: str, **kw: Any) -> httpx.Response:
    return httpx.get(server.url + path, timeout=TIMEOUT, **kw)


def events(server: ServerProcess) -> list[str]:
    return get(server, '/events').json()


def test_a_query_in_run_sync_commits_with_the_request(server):
    running, path = server
    response = get(running, '/rs/save?text=kept')
    assert response.status_code == 200
    seen = response.json()
    # the query saw the note added (autoflush) in the request's own
    # transaction, in the request's thread with the request current
    assert seen['seen'] == 1 and seen['joined'] is True
    assert seen['current'] is True and seen['registry'] is True
    assert seen['thread'] == seen['root'] != seen['loop']
    assert seen['thread'].startswith('asgi_ws-wsgi-')
    assert 'kept' in texts(path)


def test_a_later_failure_aborts_what_run_sync_wrote(server):
    running, path = server
    response = get(running, '/rs/save?text=dropped&fail=1')
    assert response.status_code == 500
    assert response.json() == {'error': 'dropped'}
    assert 'dropped' not in texts(path)


def test_what_run_sync_raises_is_raised_in_the_view(server):
    running, _ = server
    assert get(running, '/rs/raises').text == 'caught from run_sync'


def test_other_requests_are_served_while_a_call_blocks(server):
    running, _ = server
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        blocked = executor.submit(get, running, '/rs/block?name=b1')
        wait_until(lambda: 'b1 blocks' in events(running), 'b1 to block')
        # sync and async views, while the call blocks its thread
        assert get(running, '/sync/hello/bob', headers=USER).status_code == 200
        assert (
            get(running, '/async/hello/bob', headers=USER).json()['name']
            == 'bob'
        )
        assert get(running, '/sleep?s=0').text == 'slept'
        assert not blocked.done()
        get(running, '/rs/release?name=b1')
        assert blocked.result(TIMEOUT).text == 'b1'


def test_a_cancelled_view_waits_for_its_call(server):
    """The client leaves while the call blocks: the view's cancellation
    waits for the call to end, and the finished callbacks run after."""
    running, _ = server
    client = socket.create_connection(('127.0.0.1', running.port))
    client.sendall(b'GET /rs/block?name=c1 HTTP/1.1\r\nHost: x\r\n\r\n')
    wait_until(lambda: 'c1 blocks' in events(running), 'c1 to block')
    client.close()
    wait_until(
        lambda: get(running, '/rs/state').json().get('c1'),
        'the view of c1 to be cancelled',
    )
    assert 'c1 cancelled' not in events(running)  # it waits for its call
    get(running, '/rs/release?name=c1')
    wait_until(lambda: 'c1 finished' in events(running), 'c1 to finish')
    mine = [event for event in events(running) if event.startswith('c1 ')]
    assert mine == ['c1 blocks', 'c1 released', 'c1 cancelled', 'c1 finished']


def test_run_sync_after_the_view_returned_is_refused(server):
    running, _ = server
    assert get(running, '/rs/later').text == 'returned'
    wait_until(
        lambda: any(e.startswith('too late: ') for e in events(running)),
        'the late call to be refused',
    )


# -- the WSGI slow path -------------------------------------------------


@pytest.fixture(scope='module')
def wsgi_app(tmp_path_factory) -> tuple[webtest.TestApp, Path]:
    from tests.apps.runsync import make_config

    path = tmp_path_factory.mktemp('runsync-wsgi') / 'notes.sqlite'
    return webtest.TestApp(make_config(str(path)).make_wsgi_app()), path


def check_slow_path(app: webtest.TestApp, path: Path, tag: str) -> str:
    """Check run_sync under WebTest; return the thread ``fn`` ran in."""
    seen = app.get(f'/rs/save?text={tag}-kept').json
    assert seen['seen'] == 1 and seen['joined'] is True
    assert seen['current'] is True and seen['registry'] is True
    assert seen['thread'] == seen['loop']  # in place
    app.get(f'/rs/save?text={tag}-dropped&fail=1', status=500)
    assert f'{tag}-kept' in texts(path)
    assert f'{tag}-dropped' not in texts(path)
    assert app.get('/rs/raises').text == 'caught from run_sync'
    assert app.get('/rs/where').json['current'] is True
    return seen['thread']


def test_run_sync_under_webtest(wsgi_app):
    thread = threading.current_thread().name
    assert check_slow_path(*wsgi_app, 'wsgi') == thread


def test_webtest_from_inside_a_running_loop(wsgi_app):
    """An ``async def`` test calling WebTest: the view runs on a private
    loop in a helper thread, with the caller's thread-locals and context
    variables."""
    app, path = wsgi_app

    async def main() -> None:
        thread = check_slow_path(app, path, 'in-loop')
        assert thread == 'asgi_ws-private-loop'
        traced = app.get('/async/traced', headers={'X-Request-Id': 'r-9'})
        assert traced.text == 'r-9'
        hello = app.get('/async/hello/bob', headers=USER)
        assert hello.json['name'] == 'bob'
        with pytest.raises(SystemExit, match='by the view'):
            app.get('/async/exits')

    try:
        asyncio.run(main())
    finally:
        # pyramid_tm aborts on Exception only: a SystemExit left the
        # request's transaction open in this thread, as a sync view's
        transaction.abort()
