"""The metrics endpoint behind proxies: a forwarded foreign client is
refused whatever the server makes of ``X-Forwarded-For``, through real
servers (tests/apps/metrics.py, which allows the machine itself)."""

from __future__ import annotations

import os

import pytest
import requests

from tests.support import ServerProcess, free_port, serve, server_command
from tests.wsclient import TIMEOUT

FOREIGN = '203.0.113.9'  # TEST-NET-3: never this machine


def get(server: ServerProcess, forwarded: str | None) -> int:
    headers = {} if forwarded is None else {'X-Forwarded-For': forwarded}
    response = requests.get(
        server.url + '/metrics', headers=headers, timeout=TIMEOUT
    )
    return response.status_code


def test_a_proxy_on_the_machine_does_not_let_the_world_in():
    # hypercorn keeps the proxy as the peer: 127.0.0.1, which is allowed
    with serve('hypercorn', 'tests.apps.metrics:app') as server:
        assert get(server, None) == 200
        assert get(server, '127.0.0.1') == 200  # a scraper on the machine
        assert get(server, FOREIGN) == 403
        assert f"'{FOREIGN}' (in x-forwarded-for) is not in" in server.log()


@pytest.mark.parametrize('trusted', ['127.0.0.1', '*'])
def test_a_spoofed_forwarded_for_does_not_let_a_client_in(trusted):
    # the client says 127.0.0.1, the proxy appends its real address;
    # uvicorn trusting every proxy (as on a unix socket) takes the first
    port = free_port()
    command = server_command('uvicorn', 'tests.apps.metrics:app', port)
    server = ServerProcess(command + ['--forwarded-allow-ips', trusted], port)
    server.wait_ready()
    try:
        assert get(server, '127.0.0.1') == 200
        assert get(server, f'127.0.0.1, {FOREIGN}') == 403
        assert get(server, FOREIGN) == 403
        # as a dual-stack socket reports an IPv4 client
        assert get(server, '::ffff:127.0.0.1') == 200
        assert get(server, f'::ffff:{FOREIGN}') == 403
    finally:
        server.stop()
        os.unlink(server.logfile.name)
