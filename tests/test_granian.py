"""The chat example served by ``pserve`` with ``egg:pyramid_asgi_ws#granian``.

Real granian, real clients: the page and a chat message, an unknown or
unsupported option refused by name, a unix socket, and SIGTERM closing
open sockets with 1001 within ``shutdown_timeout``.
"""

from __future__ import annotations

import os
from pathlib import Path
import socket
import stat

import pytest

from pyramid_asgi_ws.runners.granian import granian_runner
from pyramid_asgi_ws.runners.options import ServerOptionError
from tests.fixtures.deploy import myproject_ini, pserve, wait_for_unix
from tests.fixtures.runners import (
    chat_served,
    check_page_and_chat,
    check_sigterm_closes_with_1001,
    check_unknown_option,
    status_line,
)

SHUTDOWN_TIMEOUT = 2.0


def test_page_and_chat(tmp_path):
    with chat_served(tmp_path, 'granian') as server:
        check_page_and_chat(server)
        # the access log goes through the ini's [loggers]
        server.wait_for_log('[granian.access')


def test_unknown_option_is_refused_by_name(tmp_path):
    check_unknown_option(tmp_path, 'granian')


@pytest.mark.parametrize(
    'options, message',
    [
        ({'ws_max_size': '1MB'}, "unknown option 'ws_max_size'"),
        ({'ws_ping_interval': '5'}, "unknown option 'ws_ping_interval'"),
        ({'workers': 2}, 'runs one process'),
        (
            {'listen': '127.0.0.1:1 127.0.0.1:2'},
            'serves one address',
        ),
    ],
)
def test_options_granian_cannot_honour_are_refused(options, message):
    with pytest.raises(ServerOptionError, match=message):
        granian_runner(object(), {}, **options)


def test_sigterm_closes_sockets_with_1001(tmp_path):
    with chat_served(
        tmp_path, 'granian', shutdown_timeout=SHUTDOWN_TIMEOUT
    ) as server:
        check_sigterm_closes_with_1001(server, SHUTDOWN_TIMEOUT)


def get_over_unix(path: Path, target: str = '/') -> bytes:
    """GET ``target`` over the unix socket ``path``; return the status
    line."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(
            f'GET {target} HTTP/1.1\r\nHost: localhost\r\n'
            'Connection: close\r\n\r\n'.encode()
        )
        return status_line(sock)


def test_unix_socket_is_open_to_local_users_and_removed(tmp_path):
    path = tmp_path / 'app.sock'
    proc = pserve(myproject_ini(tmp_path, 'granian', unix_socket=str(path)))
    try:
        wait_for_unix(path, proc)
        mode = stat.S_IMODE(os.stat(path).st_mode)
        assert get_over_unix(path) == b'HTTP/1.1 200 OK'
    finally:
        proc.stop()
    assert mode == 0o666, oct(mode)
    assert proc.proc.returncode == 0, proc.log()
    assert not path.exists()
