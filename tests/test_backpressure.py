"""A client that reads slowly cannot grow the server's memory without bound."""

from __future__ import annotations

import json
import re
import struct
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


def read_close_frame(sock, timeout: float = 15.0) -> tuple[int, bytes]:
    """Read server frames from ``sock`` until a close frame; return its
    code and reason."""
    deadline = time.monotonic() + timeout
    buffer = b''

    def take(count: int) -> bytes:
        nonlocal buffer
        while len(buffer) < count:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            chunk = sock.recv(65536)
            if not chunk:
                raise AssertionError('the connection ended without a close')
            buffer += chunk
        data, buffer = buffer[:count], buffer[count:]
        return data

    while True:
        head = take(2)
        opcode, length = head[0] & 0x0F, head[1] & 0x7F
        if length == 126:
            length = struct.unpack('!H', take(2))[0]
        elif length == 127:
            length = struct.unpack('!Q', take(8))[0]
        payload = take(length)
        if opcode == 0x8:
            return struct.unpack('!H', payload[:2])[0], payload[2:]


@pytest.mark.parametrize('kind', ['uvicorn', 'hypercorn'])
def test_the_1013_close_reaches_a_client_that_reads_again(kind):
    """The close is not lost behind the send stuck on the stalled client,
    nor dropped when the consumer ends: once the client reads again, after
    the consumer has returned, it gets 1013."""
    with serve(kind, 'tests.apps.flood:close') as server:
        with stalled_socket(server.port, '/stuck') as sock:
            report = wait_report(server)  # the consumer is ending now
            assert report == {'closing': True, 'dropped': 1}
            code, reason = read_close_frame(sock)
    assert (code, reason) == (1013, b'send queue full')
