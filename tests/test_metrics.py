"""The metrics endpoint, scraped through real servers while sockets are open.

tests/apps/metrics.py serves its metrics at /metrics; each test reads
what it did as the difference between two scrapes, so the tests share
one server.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import os
from pathlib import Path
import threading
import time

import pytest
import requests

from tests.metrics_support import (
    P,
    Samples,
    flooded,
    grew,
    scrape,
    scraped_until,
    value,
)
from tests.redis_support import RedisServer, redis_available
from tests.support import (
    ServerProcess,
    denied,
    free_port,
    serve,
    server_command,
    wait_until,
)
from tests.wsclient import (
    TIMEOUT,
    close_code,
    open_ws,
    refused_status,
    stalled_socket,
)


@pytest.fixture(scope='module')
def server() -> Iterator[ServerProcess]:
    with serve('uvicorn', 'tests.apps.metrics:app') as running:
        yield running


def test_open_connections_messages_and_bytes(server):
    before = scrape(server)
    with (
        open_ws(server.ws_url + '/echo') as one,
        open_ws(server.ws_url + '/echo') as two,
    ):
        one.send('héllo')  # 6 bytes in UTF-8
        assert one.recv(timeout=TIMEOUT) == 'héllo'
        two.send('hi')
        assert two.recv(timeout=TIMEOUT) == 'hi'
        during = scrape(server)
    after = scraped_until(
        server,
        lambda s: (
            value(s, 'websocket_connections', consumer='echo')
            == value(before, 'websocket_connections', consumer='echo')
        ),
        'the two connections to end',
    )
    echo = {'consumer': 'echo'}
    assert grew(before, during, 'websocket_connections', **echo) == 2
    assert grew(before, after, 'websocket_accepted_total', **echo) == 2
    for name, count in (
        ('websocket_messages_received_total', 2),
        ('websocket_messages_sent_total', 2),
        ('websocket_received_bytes_total', 8),
        ('websocket_sent_bytes_total', 8),
    ):
        assert grew(before, after, name, **echo) == count, name


def test_close_codes_by_the_side_that_closed(server):
    def closes(samples: Samples, code: int, initiator: str) -> float:
        return value(
            samples,
            'websocket_closes_total',
            consumer='echo',
            code=code,
            initiator=initiator,
        )

    before = scrape(server)
    with open_ws(server.ws_url + '/echo') as ws:
        ws.send('close:4001')
        assert close_code(ws) == (4001, '')
    with open_ws(server.ws_url + '/echo') as ws:
        ws.send('ping')
        ws.recv(timeout=TIMEOUT)
    # the client's close (1000) reaches the app after the client returns
    after = scraped_until(
        server,
        lambda s: closes(s, 1000, 'client') > closes(before, 1000, 'client'),
        "the client's close to be counted",
    )
    assert closes(after, 4001, 'application') == 1 + closes(
        before, 4001, 'application'
    )
    assert closes(after, 1000, 'client') == 1 + closes(before, 1000, 'client')


def test_refusals_by_status_and_reason(server):
    origin = dict(
        protocol='websocket', consumer='echo', status=403, reason='origin'
    )
    unknown = dict(
        protocol='websocket', consumer='', status=404, reason='not_found'
    )
    method = dict(
        protocol='http',
        consumer='asgi_ws.metrics',
        status=405,
        reason='method',
    )
    before = scrape(server)
    assert (
        refused_status(server.ws_url + '/echo', origin='http://evil.example')
        == 403
    )
    assert refused_status(server.ws_url + '/nowhere') == 404
    posted = requests.post(server.url + '/metrics', timeout=TIMEOUT)
    assert posted.status_code == 405
    assert posted.headers['allow'] == 'GET, HEAD'
    after = scrape(server)
    for labels in (origin, unknown, method):
        assert grew(before, after, 'refusals_total', **labels) == 1, labels


def test_group_publishes_deliveries_and_a_drop(server):
    before = scrape(server)
    with open_ws(server.ws_url + '/room') as room:
        assert room.recv(timeout=TIMEOUT) == 'joined'
        room.send('hi*3')
        assert [room.recv(timeout=TIMEOUT) for _ in range(3)] == ['hi*3'] * 3
        after = scrape(server)
        for name in ('published', 'received', 'delivered'):
            assert grew(before, after, f'group_{name}_total') == 3, name
        assert value(after, 'groups') == 1
        # /tiny queues one message; a client that never reads fills the
        # server's and the kernel's buffers, then its queue drops.
        with stalled_socket(server.port, '/tiny'):
            scraped_until(  # it sends 'joined' once in
                server,
                lambda s: grew(
                    before, s, 'websocket_messages_sent_total', consumer='tiny'
                ),
                '/tiny to join the room',
            )
            stalled = flooded(server, room, before)
            assert value(stalled, 'send_queue_deepest') == 1
            assert value(stalled, 'send_queue_messages') == 1


def test_bridge_requests_durations_and_busy_threads(server):
    before = scrape(server)
    for _ in range(3):
        assert requests.get(server.url + '/hello', timeout=TIMEOUT).ok
    assert requests.get(server.url + '/missing', timeout=TIMEOUT).status_code
    slow = threading.Thread(
        target=requests.get, args=(server.url + '/slow',), daemon=True
    )
    slow.start()
    held = time.monotonic()  # from when /slow holds its thread, below
    try:
        wait_until(
            lambda: requests.get(server.url + '/busy').text == 'True',
            '/slow to hold its thread',
        )
        held = time.monotonic()
        during = scrape(server)
    finally:
        requests.get(server.url + '/release', timeout=TIMEOUT)
        held = time.monotonic() - held  # /slow ran longer than this
        slow.join(TIMEOUT)
    after = scraped_until(  # /hello 3 times, /busy, /release, /slow
        server,
        lambda s: grew(before, s, 'bridge_responses_total', status=200) >= 6,
        'the responses to be counted',
    )
    assert value(during, 'bridge_threads_busy') >= 1
    assert value(during, 'bridge_suspended') == 0
    assert value(during, 'bridge_threads') >= 2
    assert grew(before, after, 'bridge_responses_total', status=404) == 1
    count = P + 'bridge_request_duration_seconds_count'
    assert after[count, frozenset()] - before[count, frozenset()] >= 7
    seconds = P + 'bridge_request_duration_seconds_sum'
    assert after[seconds, frozenset()] - before[seconds, frozenset()] > held


def test_async_views_awaiting_hold_no_thread(server):
    waiting = threading.Thread(
        target=requests.get, args=(server.url + '/await',), daemon=True
    )
    waiting.start()
    try:
        scraped_until(  # fails if the view held its thread meanwhile
            server,
            lambda s: (
                value(s, 'bridge_suspended') == 1
                and value(s, 'bridge_threads_busy') == 0
            ),
            'the async view to await with no thread held',
        )
    finally:
        requests.get(server.url + '/release', timeout=TIMEOUT)
        waiting.join(TIMEOUT)
    scraped_until(
        server,
        lambda s: value(s, 'bridge_suspended') == 0,
        'the async view to end',
    )


def test_head_and_openmetrics(server):
    head = requests.head(server.url + '/metrics', timeout=TIMEOUT)
    assert head.status_code == 200
    assert head.content == b''
    assert int(head.headers['content-length']) > 1000
    openmetrics = requests.get(
        server.url + '/metrics',
        headers={'Accept': 'application/openmetrics-text; version=1.0.0'},
        timeout=TIMEOUT,
    )
    assert openmetrics.headers['content-type'].startswith(
        'application/openmetrics-text'
    )
    assert openmetrics.text.endswith('# EOF\n')


def test_clients_outside_metrics_allow_get_403():
    env = {'METRICS_ALLOW': '10.0.0.0/8 ::1'}
    with serve('uvicorn', 'tests.apps.metrics:app', env) as server:
        response = requests.get(server.url + '/metrics', timeout=TIMEOUT)
        assert response.status_code == 403
        assert response.text == '403 Forbidden'
        assert 'not in asgi_ws.metrics_allow' in server.log()
        with open_ws(server.ws_url + '/echo') as ws:  # the app still serves
            ws.send('hi')
            assert ws.recv(timeout=TIMEOUT) == 'hi'


@pytest.mark.parametrize('kind', ['hypercorn', 'daphne'])
def test_the_counts_on_other_servers(kind):
    with serve(kind, 'tests.apps.metrics:app') as server:
        assert requests.get(server.url + '/hello', timeout=TIMEOUT).ok
        with open_ws(server.ws_url + '/echo') as ws:
            ws.send('hé')
            assert ws.recv(timeout=TIMEOUT) == 'hé'
            ws.send('close:4001')
            assert close_code(ws) == (4001, '')
        # daphne answers a refusal (the app's close before accept) with 403
        status = denied(server, 404)
        assert refused_status(server.ws_url + '/nowhere') == status
        after = scraped_until(
            server,
            lambda s: (
                value(s, 'websocket_accepted_total', consumer='echo')
                and not value(s, 'websocket_connections', consumer='echo')
            ),
            'the connection to end',
        )
    echo = {'consumer': 'echo'}
    for name, count in (
        ('websocket_messages_received_total', 2),
        ('websocket_received_bytes_total', 3 + 10),
        ('websocket_messages_sent_total', 1),
        ('websocket_sent_bytes_total', 3),
    ):
        assert value(after, name, **echo) == count, name
    closes = dict(code=4001, initiator='application', **echo)
    assert value(after, 'websocket_closes_total', **closes) == 1
    unknown = dict(protocol='websocket', consumer='', reason='not_found')
    assert value(after, 'refusals_total', status=status, **unknown) == 1
    assert value(after, 'bridge_responses_total', status=200) == 1


@pytest.mark.skipif(not redis_available(), reason='needs redis-server')
def test_backend_reconnects_and_errors_with_redis():
    redis = RedisServer().start()
    try:
        env = {'BROADCAST_URL': redis.url}
        with serve('uvicorn', 'tests.apps.metrics:app', env) as server:
            labels = {'backend': 'redis'}
            with open_ws(server.ws_url + '/room') as room:
                assert room.recv(timeout=TIMEOUT) == 'joined'
                redis.stop()  # the subscription is lost, then a publish
                scraped_until(
                    server,
                    lambda s: value(s, 'backend_reconnects_total', **labels),
                    'the lost subscription to count',
                )
                room.send('hi')  # the publish fails: the consumer raises
                assert close_code(room)[0] == 1011
            errors = scrape(server)
            assert value(errors, 'backend_errors_total', **labels) == 1
    finally:
        redis.stop()


def test_two_workers_in_multiprocess_mode(tmp_path: Path):
    port = free_port()
    command = server_command('uvicorn', 'tests.apps.metrics:app', port)
    env = {'PROMETHEUS_MULTIPROC_DIR': str(tmp_path)}
    server = ServerProcess(command + ['--workers', '2'], port, env)
    server.wait_ready()
    try:
        stack = contextlib.ExitStack()
        sockets = [
            stack.enter_context(open_ws(server.ws_url + '/echo'))
            for _ in range(8)
        ]
        for ws in sockets:
            ws.send('hi')
            ws.recv(timeout=TIMEOUT)
        seen = scraped_until(
            server,
            lambda s: value(s, 'websocket_connections', consumer='echo') == 8,
            'both workers to count the eight connections',
        )
        received = 'websocket_messages_received_total'
        assert value(seen, received, consumer='echo') == 8
        stack.close()
        scraped_until(
            server,
            lambda s: value(s, 'websocket_connections', consumer='echo') == 0,
            'the connections to end',
        )
        # every worker's threads count, sampled by itself every 5 s
        pids = set()
        wait_until(
            lambda: (
                pids.add(requests.get(server.url + '/pid').text)
                or len(pids) == 2
            ),
            'both workers to serve a view',
        )
        scraped_until(
            server,
            lambda s: value(s, 'bridge_threads') >= 2,
            'the threads of both workers to count',
        )
    finally:
        server.stop()
        os.unlink(server.logfile.name)
    # each worker dropped its live gauges as it stopped
    assert not list(tmp_path.glob('gauge_live*.db'))
