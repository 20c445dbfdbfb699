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
    """Wait for the line the consumer reports its measures in."""
    found = server.wait_for_log('REPORT ', timeout=15)
    report = re.search(r'REPORT (\{.*\})', found)
    assert report is not None, found
    return json.loads(report.group(1))


def flood(kind: str, app: str, path: str) -> tuple[dict, str]:
    """Serve ``app`` on ``kind``, stall a socket to ``path`` and return
    what the consumer reports and the server's log."""
    with serve(kind, f'tests.apps.flood:{app}') as server:
        with stalled_socket(server.port, path):
            report = wait_report(server)
        return report, server.log()


@pytest.mark.parametrize('kind', ['uvicorn', 'hypercorn'])
def test_pushed_messages_drop_oldest_past_the_queue(kind):
    report, _ = flood(kind, 'drop_oldest', '/pushed')
    assert report['grown_kib'] < BOUND_KIB
    assert report['dropped'] > 4000


def test_pushed_messages_close_1013_when_the_queue_overflows():
    report, log = flood('uvicorn', 'close', '/pushed')
    assert report['grown_kib'] < BOUND_KIB
    assert 'closing WebSocket /pushed with 1013' in log
    assert 'send queue of 64 messages is full' in log


@pytest.mark.parametrize('kind', ['uvicorn', 'hypercorn'])
def test_direct_sends_wait_for_a_slow_client(kind):
    report, _ = flood(kind, 'drop_oldest', '/sent')
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
