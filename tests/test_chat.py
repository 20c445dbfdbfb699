"""The chat example (examples/chat) served by ``pserve`` on its own ini.

Real server, real HTTP and WebSocket clients: the session keeps the name,
sockets join rooms, messages fan out, the plain form post is broadcast,
and two workers share a Redis broker.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import json
from pathlib import Path
import re
import shutil
import subprocess
import sys
import time
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from tests.support import ROOT, ServerProcess, free_port, wait_for_port
from tests.wsclient import close_code, open_ws, refused_status

CHAT = ROOT / 'examples' / 'chat'
INI = CHAT / 'development.ini'
TIMEOUT = 5.0

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def pserve_command(port: int, **config_vars: Any) -> list[str]:
    """The README's demo command, on ``port``, with ini overrides."""
    overrides = [f'{key}={value}' for key, value in config_vars.items()]
    return [
        sys.executable, '-m', 'pyramid.scripts.pserve', str(INI),
        f'http_port={port}', *overrides,
    ]  # fmt: skip


def start_chat(port: int | None = None, **config_vars: Any) -> ServerProcess:
    """Start the chat example with pserve and wait until it listens."""
    port = port or free_port()
    server = ServerProcess(pserve_command(port, **config_vars), port, cwd=CHAT)
    return server.wait_ready()


@contextlib.contextmanager
def chat_server(**config_vars: Any) -> Iterator[ServerProcess]:
    server = start_chat(**config_vars)
    try:
        yield server
    finally:
        server.stop()
        # pytest shows this output only for a test that failed
        print(Path(server.logfile.name).read_text(errors='replace'))


@pytest.fixture(scope='module')
def chat() -> Iterator[ServerProcess]:
    with chat_server() as server:
        yield server


def csrf_token(html: str) -> str:
    match = _CSRF.search(html)
    assert match is not None, html
    return match.group(1)


def post(
    session: requests.Session, url: str, **data: str
) -> requests.Response:
    """POST a form, not following the redirect it answers with."""
    return session.post(url, data=data, allow_redirects=False, timeout=TIMEOUT)


def post_message(
    session: requests.Session, base: str, room: str, text: str
) -> requests.Response:
    """Post ``text`` with the room page's plain HTML form."""
    page = session.get(f'{base}/rooms/{room}', timeout=TIMEOUT)
    token = csrf_token(page.text)
    return post(
        session, f'{base}/rooms/{room}/messages', text=text, csrf_token=token
    )


def visitor(base: str, name: str) -> requests.Session:
    """A browser-like HTTP session that picked ``name`` on the home page."""
    session = requests.Session()
    page = session.get(base + '/', timeout=TIMEOUT)
    assert page.status_code == 200
    answer = post(
        session, base + '/name', name=name, csrf_token=csrf_token(page.text)
    )
    assert answer.status_code == 303, answer.text
    return session


def cookie_header(session: requests.Session) -> str:
    return '; '.join(f'{k}={v}' for k, v in session.cookies.items())


def socket(
    server: ServerProcess,
    session: requests.Session,
    room: str,
    since: str | None = None,
):
    """Open the room's socket as the page would: cookie and own Origin,
    and ``?since=`` the last position it had when it comes back."""
    query = '' if since is None else '?' + urlencode({'since': since})
    return open_ws(
        f'{server.ws_url}/ws/{room}{query}',
        origin=server.url,
        additional_headers={'Cookie': cookie_header(session)},
        open_timeout=TIMEOUT,
    )


def next_of(ws: Any, *kinds: str, timeout: float = TIMEOUT) -> dict[str, Any]:
    """Return the next message of one of ``kinds``, skipping the others."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f'no {kinds!r} message in {timeout} s')
        message = json.loads(ws.recv(timeout=left))
        if message['type'] in kinds:
            return message


def presence_until(ws: Any, names: list[str]) -> dict[str, Any]:
    """Read presence updates until the online list is ``names``."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        message = next_of(ws, 'presence', deadline - time.monotonic())
        if message['online'] == sorted(names):
            return message


# -- pages and the session --------------------------------------------------


def test_name_is_kept_in_the_session(chat):
    session = visitor(chat.url, 'Ada Lovelace')
    home = session.get(chat.url + '/', timeout=TIMEOUT)
    assert 'You are <strong id="me">Ada Lovelace</strong>' in home.text
    room = session.get(chat.url + '/rooms/lobby', timeout=TIMEOUT)
    assert room.status_code == 200
    # the page gets its socket URL from request.consumer_url
    assert f'data-socket-url="{chat.ws_url}/ws/lobby"' in room.text


def test_room_without_a_name_goes_to_the_home_page(chat):
    answer = requests.get(
        chat.url + '/rooms/lobby', allow_redirects=False, timeout=TIMEOUT
    )
    assert answer.status_code == 303
    assert answer.headers['Location'] == chat.url + '/?next=%2Frooms%2Flobby'


def test_name_form_returns_to_next_and_rejects_bad_names(chat):
    session = requests.Session()
    token = csrf_token(session.get(chat.url + '/', timeout=TIMEOUT).text)
    bad = post(session, chat.url + '/name', name='   ', csrf_token=token)
    assert bad.status_code == 400
    assert 'Pick a name of 1 to 32' in bad.text
    # ``next`` is followed only within the application
    for target, expected in [
        ('/rooms/python', chat.url + '/rooms/python'),
        ('//evil.example/', chat.url + '/'),
        ('http://evil.example/', chat.url + '/'),
    ]:
        answer = post(
            session,
            chat.url + '/name',
            name='Bo',
            csrf_token=token,
            next=target,
        )
        assert answer.headers['Location'] == expected


def test_posts_without_the_csrf_token_are_refused(chat):
    session = visitor(chat.url, 'mallory')
    answer = post(session, chat.url + '/rooms/lobby/messages', text='forged')
    assert answer.status_code == 400


def test_join_form_redirects_to_the_room(chat):
    session = visitor(chat.url, 'joiner')
    joined = session.get(
        chat.url + '/rooms',
        params={'room': ' Python '},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert joined.headers['Location'] == chat.url + '/rooms/python'
    refused = session.get(
        chat.url + '/rooms', params={'room': 'no spaces!'}, timeout=TIMEOUT
    )
    assert 'Room names use letters' in refused.text


# -- the socket -------------------------------------------------------------


def test_socket_needs_a_name_the_own_origin_and_a_room_name(chat):
    url = f'{chat.ws_url}/ws/lobby'
    assert refused_status(url, origin=chat.url) == 403
    headers = {'Cookie': cookie_header(visitor(chat.url, 'eve'))}
    evil = 'http://evil.example'
    assert refused_status(url, origin=evil, additional_headers=headers) == 403
    too_long = f'{chat.ws_url}/ws/{"x" * 33}'
    assert (
        refused_status(too_long, origin=chat.url, additional_headers=headers)
        == 404
    )
    with open_ws(url, origin=chat.url, additional_headers=headers) as ws:
        assert next_of(ws, 'welcome')['name'] == 'eve'


def test_room_join_presence_and_fan_out(chat):
    alice = visitor(chat.url, 'alice')
    bob = visitor(chat.url, 'bob')
    carol = visitor(chat.url, 'carol')
    with socket(chat, alice, 'fanout') as a:
        assert next_of(a, 'welcome') == {
            'type': 'welcome',
            'room': 'fanout',
            'name': 'alice',
            'caught_up': True,
        }
        presence_until(a, ['alice'])
        with (
            socket(chat, bob, 'fanout') as b,
            socket(chat, carol, 'elsewhere') as c,
        ):
            presence_until(a, ['alice', 'bob'])
            presence_until(b, ['alice', 'bob'])
            presence_until(c, ['carol'])
            a.send(json.dumps({'text': '  hello bob  '}))
            for ws in (a, b):
                message = next_of(ws, 'message')
                assert message['name'] == 'alice'
                assert message['text'] == 'hello bob'
                assert message['via'] == 'socket'
                assert message['room'] == 'fanout'
            # blank and non-object messages are ignored, not broadcast
            b.send(json.dumps({'text': '   '}))
            b.send(json.dumps(['not', 'an', 'object']))
            b.send(json.dumps({'text': 'hi alice'}))
            assert next_of(a, 'message')['text'] == 'hi alice'
            # the other room heard nothing
            with pytest.raises(TimeoutError):
                next_of(c, 'message', timeout=0.3)
        presence_until(a, ['alice'])


def test_form_post_is_broadcast_to_the_room(chat):
    listener = visitor(chat.url, 'listener')
    poster = visitor(chat.url, 'poster')
    with socket(chat, listener, 'forms') as ws:
        presence_until(ws, ['listener'])
        answer = post_message(
            poster, chat.url, 'forms', 'sent without a socket'
        )
        assert answer.status_code == 303
        assert answer.headers['Location'] == chat.url + '/rooms/forms'
        message = next_of(ws, 'message')
        assert message['name'] == 'poster'
        assert message['text'] == 'sent without a socket'
        assert message['via'] == 'form'
        back = poster.get(answer.headers['Location'], timeout=TIMEOUT)
        assert 'Posted with the plain form.' in back.text


def said(ws: Any, count: int) -> list[dict[str, Any]]:
    """The next ``count`` chat messages."""
    return [next_of(ws, 'message') for _ in range(count)]


def until_welcome(ws: Any) -> tuple[list[str], dict[str, Any]]:
    """The texts of the chat messages before ``welcome`` (the replay, once
    each), and the welcome."""
    texts = []
    while (message := next_of(ws, 'message', 'welcome'))['type'] != 'welcome':
        texts.append(message['text'])
    return texts, message


def test_a_page_that_comes_back_gets_what_it_missed(chat):
    alice = visitor(chat.url, 'alice')
    bob = visitor(chat.url, 'bob')
    with socket(chat, bob, 'away') as b:
        next_of(b, 'welcome')
        with socket(chat, alice, 'away') as a:
            next_of(a, 'welcome')
            b.send(json.dumps({'text': 'before'}))
            last = next_of(a, 'message')
            assert last['text'] == 'before' and last['position']
        for text in ('one', 'two', 'three'):
            b.send(json.dumps({'text': text}))
        assert [m['text'] for m in said(b, 4)][1:] == ['one', 'two', 'three']
        with socket(chat, alice, 'away', since=last['position']) as a:
            missed, welcome = until_welcome(a)
            assert missed == ['one', 'two', 'three']
            assert welcome['caught_up'] is True
            b.send(json.dumps({'text': 'live'}))
            assert next_of(a, 'message')['text'] == 'live'
        # a position the room's history does not hold: live only
        with socket(chat, alice, 'away', since='1-1') as a:
            assert next_of(a, 'welcome')['caught_up'] is False
            b.send(json.dumps({'text': 'now'}))
            assert next_of(a, 'message')['text'] == 'now'


def test_presence_lists_keep_no_history(chat):
    alice = visitor(chat.url, 'alice')
    with socket(chat, alice, 'lists') as a:
        assert 'position' not in presence_until(a, ['alice'])


def test_malformed_frames_close_the_socket(chat):
    with socket(chat, visitor(chat.url, 'sloppy'), 'lobby') as ws:
        next_of(ws, 'welcome')
        ws.send('{not json')
        assert close_code(ws)[0] == 1007


# -- two workers on Redis ---------------------------------------------------


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on a free port; yields its URL."""
    executable = shutil.which('redis-server')
    assert executable, 'redis-server is missing: run scripts/setup.sh'
    port = free_port()
    proc = subprocess.Popen(
        [executable, '--port', str(port), '--bind', '127.0.0.1',
         '--save', '', '--appendonly', 'no'],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port, proc, timeout=10)
        yield f'redis://127.0.0.1:{port}/0'
    finally:
        proc.terminate()
        proc.wait(10)


def socket_pids(server: ServerProcess, room: str) -> list[str]:
    """The PIDs that accepted each socket to ``room``, from the log."""
    pattern = rf'\]\[(\d+):[^]]*\] [^"]*"WebSocket /ws/{room}" \[accepted\]'
    return re.findall(pattern, server.log())


def test_a_page_catches_up_across_a_restart_with_redis():
    """Alice's server stops; Bob, on another server of the same Redis,
    says three things; Alice's server is back (a new process on the same
    port) and her socket, with ``since``, gets the three."""
    with redis_server() as url, chat_server(broadcast_url=url) as other:
        alice = visitor(other.url, 'alice')
        bob = visitor(other.url, 'bob')
        port = free_port()
        with (
            chat_server(port=port, broadcast_url=url) as hers,
            socket(hers, alice, 'restart') as a,
        ):
            next_of(a, 'welcome')
            with socket(other, bob, 'restart') as b:
                b.send(json.dumps({'text': 'before'}))
                last = next_of(a, 'message')
        with socket(other, bob, 'restart') as b:
            for text in ('one', 'two', 'three'):
                b.send(json.dumps({'text': text}))
            said(b, 3)
            with (
                chat_server(port=port, broadcast_url=url) as hers,
                socket(hers, alice, 'restart', last['position']) as a,
            ):
                missed, welcome = until_welcome(a)
                assert missed == ['one', 'two', 'three']
                assert welcome['caught_up'] is True


def test_two_workers_share_rooms_through_redis():
    with (
        redis_server() as url,
        chat_server(workers=2, broadcast_url=url) as server,
        contextlib.ExitStack() as stack,
    ):
        server.wait_for_log('Application startup complete.', count=2)
        names: list[str] = []
        sockets: list[Any] = []
        # The kernel picks the worker of each connection; open sockets
        # until both workers hold some (the log format names the PID).
        while len(sockets) < 4 or len(set(socket_pids(server, 'busy'))) < 2:
            assert len(sockets) < 20, socket_pids(server, 'busy')
            names.append(f'user{len(names)}')
            session = visitor(server.url, names[-1])
            sockets.append(
                stack.enter_context(socket(server, session, 'busy'))
            )
            next_of(sockets[-1], 'welcome')
        # presence spans both workers
        for ws in sockets:
            presence_until(ws, names)
        sockets[0].send(json.dumps({'text': 'across workers'}))
        for ws in sockets:
            assert next_of(ws, 'message')['text'] == 'across workers'
        assert (
            post_message(session, server.url, 'busy', 'x').status_code == 303
        )
        for ws in sockets:
            assert next_of(ws, 'message')['via'] == 'form'
