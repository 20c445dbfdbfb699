"""Clients that stall mid-upload cannot take every view thread."""

from __future__ import annotations

import contextlib
import socket
import urllib.request

import pytest

from tests.support import serve
from tests.wsclient import TIMEOUT


@pytest.mark.parametrize('kind', ['uvicorn', 'hypercorn'])
def test_stalled_small_uploads_leave_the_pool_free(kind):
    with serve(kind, 'tests.apps.stall:app') as server:
        with contextlib.ExitStack() as stack:
            for _ in range(8):  # four times the two pool threads
                sock = stack.enter_context(
                    socket.create_connection(('127.0.0.1', server.port), 5)
                )
                sock.sendall(
                    b'POST / HTTP/1.1\r\nHost: x\r\n'
                    b'Content-Length: 1000\r\n\r\n' + b'x' * 10
                )
            request = urllib.request.Request(
                server.url + '/', data=b'y' * 5, method='POST'
            )
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                assert response.read() == b'5'
