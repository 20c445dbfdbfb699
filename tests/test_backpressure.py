"""A client that reads slowly cannot grow the server's memory without bound."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.support import serve
from tests.wsclient import stalled_socket

# 50 MB goes out; the documented bound is send_queue_size (64 here)
# messages of 10 kB, plus the server's and the kernel's socket buffers.
BOUND_KIB = 16 * 1024


def wait_report(server) -> dict:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        found = re.search(r'REPORT (\{.*\})', server.log())
        if found:
            return json.loads(found.group(1))
        time.sleep(0.1)
    raise AssertionError(f'no report in:\n{server.log()}')


@pytest.mark.parametrize('kind', ['uvicorn', 'hypercorn'])
def test_pushed_messages_drop_oldest_past_the_queue(kind):
    with serve(kind, 'tests.apps.flood:drop_oldest') as server:
        with stalled_socket(server.port, '/pushed'):
            report = wait_report(server)
    assert report['grown_kib'] < BOUND_KIB
    assert report['dropped'] > 4000


def test_pushed_messages_close_1013_when_the_queue_overflows():
    with serve('uvicorn', 'tests.apps.flood:close') as server:
        with stalled_socket(server.port, '/pushed'):
            report = wait_report(server)
    assert report['grown_kib'] < BOUND_KIB
    assert 'closing WebSocket /pushed with 1013' in server.log()
    assert 'send queue of 64 messages is full' in server.log()


@pytest.mark.parametrize('kind', ['uvicorn', 'hypercorn'])
def test_direct_sends_wait_for_a_slow_client(kind):
    with serve(kind, 'tests.apps.flood:drop_oldest') as server:
        with stalled_socket(server.port, '/sent'):
            report = wait_report(server)
    assert report['grown_kib'] < BOUND_KIB
    assert report['sent'] < 4000  # the consumer was held back
