"""The cookbook recipe's two examples, rewritten with the add-on, served."""

from __future__ import annotations

import os
import re
import urllib.request

import pytest

from tests.support import ROOT, SERVERS, serve
from tests.wsclient import TIMEOUT, open_ws, refused_status

RECIPE = {'PYTHONPATH': f'{ROOT / "examples" / "recipe"}{os.pathsep}{ROOT}'}


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        return response.read().decode()


@pytest.mark.parametrize('kind', SERVERS)
def test_hello_example(kind):
    with serve(kind, 'hello:app', RECIPE) as server:
        assert fetch(server.url + '/') == 'Hello'
    assert 'Traceback' not in server.log()


def test_echo_example_page_points_at_its_own_socket():
    with serve('uvicorn', 'echo:app', RECIPE) as server:
        page = fetch(server.url + '/')
        socket_url = re.search(r'new WebSocket\("([^"]+)"\)', page).group(1)
        assert socket_url == f'{server.ws_url}/ws'
        with open_ws(socket_url, origin=server.url) as ws:
            ws.send('hello')
            assert ws.recv(timeout=TIMEOUT) == 'hello'
            ws.send(b'\x01\x02')
            assert ws.recv(timeout=TIMEOUT) == b'\x01\x02'
        # the recipe crashed here; the add-on answers 404
        assert refused_status(server.ws_url + '/wss') == 404
        with urllib.request.urlopen(
            urllib.request.Request(
                server.url + '/', headers={'Host': 'chat.example.org'}
            ),
            timeout=TIMEOUT,
        ) as response:
            assert b'ws://chat.example.org/ws' in response.read()
