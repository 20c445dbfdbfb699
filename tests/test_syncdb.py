"""SyncWebSocketConsumer and publishing with a database, through uvicorn.

tests/apps/syncdb.py is the cookiecutter's layout: pyramid_tm with an
explicit manager, SQLAlchemy on a SQLite file, zope.sqlalchemy. What the
database holds is read from the file itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
import contextlib
import json
from pathlib import Path
import sqlite3
from typing import Any
import urllib.error
import urllib.request

import pytest
from websockets.asyncio.client import connect

from tests.support import ServerProcess, serve
from tests.wsclient import TIMEOUT, close_code, open_ws


@pytest.fixture(scope='module')
def db(tmp_path_factory) -> Iterator[tuple[ServerProcess, Path]]:
    path = tmp_path_factory.mktemp('syncdb') / 'notes.sqlite'
    env = {'SYNCDB_PATH': str(path), 'SYNCDB_THREADS': '4'}
    with serve('uvicorn', 'tests.apps.syncdb:app', env) as server:
        yield server, path


def texts(path: Path) -> list[str]:
    """The notes in the database file, as committed."""
    with sqlite3.connect(path) as connection:
        rows = connection.execute('SELECT text FROM notes ORDER BY id')
        return [text for (text,) in rows]


def command(ws: Any, **fields: Any) -> Any:
    ws.send(json.dumps(fields))
    return json.loads(ws.recv(timeout=TIMEOUT))


def get(server: ServerProcess, path: str) -> int:
    try:
        with urllib.request.urlopen(server.url + path, timeout=TIMEOUT) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


@contextlib.contextmanager
def listener(server: ServerProcess) -> Iterator[Any]:
    """A socket in the group ``notes``, once it says it joined."""
    with open_ws(server.ws_url + '/listen/notes') as ws:
        assert ws.recv(timeout=TIMEOUT) == 'joined'
        yield ws


def only_kept(path: Path, listening: Any, dropped: str, kept: str) -> None:
    """The listener hears ``kept`` first, and only it is in the database."""
    assert listening.recv(timeout=TIMEOUT) == kept
    found = texts(path)
    assert kept in found and dropped not in found


def test_a_message_handler_commits_its_row(db):
    server, path = db
    with open_ws(server.ws_url + '/notes') as ws:
        assert command(ws, op='save', text='kept')['saved'] > 0
        # calls run one at a time: this one starts after the last commit
        assert command(ws, op='count') == {'count': len(texts(path))}
    assert 'kept' in texts(path)


def test_a_raising_handler_is_rolled_back_and_closes_with_1011(db):
    server, path = db
    with listener(server) as listening:
        with open_ws(server.ws_url + '/notes') as ws:
            ws.send(json.dumps({'op': 'fail', 'text': 'rolled back'}))
            assert close_code(ws)[0] == 1011
        with open_ws(server.ws_url + '/notes') as ws:
            assert command(ws, op='save', text='after')['saved'] > 0
        # the failed handler's ws.broadcast went nowhere
        only_kept(path, listening, 'rolled back', 'after')


def test_a_view_publishes_only_what_it_commits(db):
    server, path = db
    with listener(server) as listening:
        assert get(server, '/publish?text=aborted&fail=1') == 500
        assert get(server, '/publish?text=committed') == 200
        only_kept(path, listening, 'aborted', 'committed')


def test_without_a_transaction_the_message_goes_at_once(db):
    server, _ = db
    with listener(server) as listening:
        assert get(server, '/now?text=at%20once') == 500
        assert listening.recv(timeout=TIMEOUT) == 'at once'


SOCKETS = 200


async def many_sockets(url: str) -> list[str]:
    """Open SOCKETS sockets at once; each says something and hears it back
    while all are open, twice."""
    sockets = await asyncio.gather(
        *(connect(url, open_timeout=TIMEOUT) for _ in range(SOCKETS))
    )
    try:

        async def roundtrip(number: int, ws: Any) -> str:
            await ws.send(f'hello {number}')
            answer: str = await asyncio.wait_for(ws.recv(), TIMEOUT)
            return answer

        answers = []
        for _ in range(2):
            answers = await asyncio.gather(
                *(roundtrip(n, ws) for n, ws in enumerate(sockets))
            )
        return answers
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))


def test_200_concurrent_sockets_with_4_threads(db):
    server, _ = db
    answers = asyncio.run(many_sockets(server.ws_url + '/echo'))
    assert answers == [f'hello {n}' for n in range(SOCKETS)]
