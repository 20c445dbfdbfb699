"""The notes example (examples/notes) served by ``pserve`` on its own ini.

A real uvicorn, a SQLite file of the test's own, and the example's
``initialize_notes_db``: what the sockets hear follows the transaction
of the view or of the consumer's method, and the rows follow it too.
Every socket says it has joined before anything is posted, and where a
message must not arrive, a later one is awaited and must come first.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import json
from pathlib import Path
import sqlite3
import subprocess
import sys
from typing import Any

import pytest
import requests

from tests.support import ROOT, ServerProcess, free_port
from tests.test_chat import cookie_header, csrf_token, post
from tests.wsclient import TIMEOUT, close_code, open_ws, refused_status

NOTES = ROOT / 'examples' / 'notes'
INI = NOTES / 'development.ini'


@pytest.fixture(scope='module')
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh SQLite file, made by the example's initialize script, with
    the users ``demo`` and ``bob``."""
    path = tmp_path_factory.mktemp('notes') / 'notes.sqlite'
    for user in ('demo', 'bob'):
        subprocess.run(
            [sys.executable, '-m', 'notes.scripts.initialize_db', str(INI),
             f'db_url=sqlite:///{path}', '--user', user, '--password', user],
            cwd=NOTES, check=True, capture_output=True, timeout=60,
        )  # fmt: skip
    return path


@pytest.fixture(scope='module')
def server(database: Path) -> Iterator[ServerProcess]:
    port = free_port()
    command = [
        sys.executable, '-m', 'pyramid.scripts.pserve', str(INI),
        f'http_port={port}', f'db_url=sqlite:///{database}',
    ]  # fmt: skip
    running = ServerProcess(command, port, cwd=NOTES).wait_ready()
    try:
        yield running
    finally:
        running.stop()
        # pytest shows this output only for a test that failed
        print(running.log())


def rows(database: Path) -> list[tuple[str, str, str]]:
    """The notes committed so far: text, how it came, who wrote it."""
    with sqlite3.connect(database) as db:
        return db.execute(
            'SELECT text, via, users.name FROM notes '
            'JOIN users ON users.id = notes.author_id ORDER BY notes.id'
        ).fetchall()


def texts(database: Path) -> list[str]:
    return [text for text, _, _ in rows(database)]


def log_in(
    session: requests.Session, base: str, name: str, password: str
) -> requests.Response:
    """Post the login form as ``name``."""
    page = session.get(base + '/login', timeout=TIMEOUT)
    return post(
        session,
        base + '/login',
        name=name,
        password=password,
        csrf_token=csrf_token(page.text),
    )


def login(base: str, name: str) -> requests.Session:
    """A browser-like session logged in as ``name`` (password ``name``)."""
    session = requests.Session()
    answer = log_in(session, base, name, name)
    assert answer.status_code == 303, answer.text
    return session


def post_note(
    session: requests.Session, base: str, text: str, path: str = '/notes'
) -> requests.Response:
    """Post ``text`` with the page's plain form (to ``path``)."""
    token = csrf_token(session.get(base + '/', timeout=TIMEOUT).text)
    return post(session, base + path, text=text, csrf_token=token)


@contextlib.contextmanager
def socket(server: ServerProcess, session: requests.Session) -> Iterator[Any]:
    """Open the notes socket as the page does, once it has joined the
    group ``notes``."""
    with open_ws(
        f'{server.ws_url}/ws/notes',
        origin=server.url,
        additional_headers={'Cookie': cookie_header(session)},
    ) as ws:
        joined = receive(ws)
        assert joined['type'] == 'joined', joined
        yield ws


def receive(ws: Any) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=TIMEOUT))


def test_the_page_needs_a_user_from_the_database(server):
    answer = requests.get(
        server.url + '/', allow_redirects=False, timeout=TIMEOUT
    )
    assert answer.headers['Location'] == server.url + '/login'
    wrong = log_in(requests.Session(), server.url, 'demo', 'guess')
    assert wrong.status_code == 400
    assert 'wrong password' in wrong.text
    page = login(server.url, 'demo').get(server.url + '/', timeout=TIMEOUT)
    assert '<strong id="me">demo</strong>' in page.text
    # the page gets its socket URL from request.consumer_url
    assert f'data-socket-url="{server.ws_url}/ws/notes"' in page.text


def test_the_handshake_loads_the_user_or_refuses(server):
    # The notes policy queries request.dbsession with the explicit
    # manager: the handshake's check runs in a transaction of request.tm
    url = f'{server.ws_url}/ws/notes'
    assert refused_status(url, origin=server.url) == 401
    bob = {'Cookie': cookie_header(login(server.url, 'bob'))}
    with open_ws(url, origin=server.url, additional_headers=bob) as ws:
        # on_connect read request.identity in its own transaction
        assert receive(ws) == {'type': 'joined', 'user': 'bob'}
    assert 'NoTransaction' not in server.log()


def test_a_form_post_reaches_two_sockets_and_is_committed(server, database):
    demo, bob = login(server.url, 'demo'), login(server.url, 'bob')
    with socket(server, demo) as first, socket(server, bob) as second:
        answer = post_note(demo, server.url, 'posted with the form')
        assert answer.status_code == 303
        for ws in (first, second):
            note = receive(ws)
            assert note['type'] == 'note'
            assert note['text'] == 'posted with the form'
            assert note['author'] == 'demo'
            assert note['via'] == 'form'
    assert ('posted with the form', 'form', 'demo') in rows(database)
    page = demo.get(server.url + '/', timeout=TIMEOUT)
    assert 'posted with the form' in page.text


def test_a_view_that_fails_after_broadcasting_sends_and_keeps_nothing(
    server, database
):
    demo = login(server.url, 'demo')
    with socket(server, demo) as first, socket(server, demo) as second:
        failed = post_note(
            demo, server.url, 'lost with the view', '/notes/failing'
        )
        assert failed.status_code == 500
        assert "Not saved: failing after saving 'lost with the view'" in (
            failed.text
        )
        assert post_note(demo, server.url, 'after the failure').ok
        # the failed note would have come first: only the later one does
        for ws in (first, second):
            assert receive(ws)['text'] == 'after the failure'
    assert 'lost with the view' not in texts(database)
    assert 'after the failure' in texts(database)


def test_a_note_sent_over_the_socket_is_committed(server, database):
    with socket(server, login(server.url, 'bob')) as ws:
        ws.send(json.dumps({'text': '  written on the socket  '}))
        note = receive(ws)  # from the group, once committed
        assert note['text'] == 'written on the socket'
        assert note['via'] == 'socket'
        assert note['author'] == 'bob'
        ws.send(json.dumps({'text': '   '}))
        assert receive(ws) == {'type': 'error', 'error': 'a note needs text'}
    assert ('written on the socket', 'socket', 'bob') in rows(database)


def test_a_socket_handler_that_raises_is_rolled_back_and_closes_1011(
    server, database
):
    demo = login(server.url, 'demo')
    with socket(server, demo) as failing, socket(server, demo) as other:
        failing.send(json.dumps({'text': 'lost with the socket', 'fail': 1}))
        assert close_code(failing)[0] == 1011
        other.send(json.dumps({'text': 'after the socket failed'}))
        # the failed note would have been announced first
        assert receive(other)['text'] == 'after the socket failed'
    assert 'lost with the socket' not in texts(database)
    assert 'after the socket failed' in texts(database)
    assert 'notes.saving.Failure' in server.log()
