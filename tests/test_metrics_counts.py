"""More counts through a real server: event streams, the close codes of
clients (chosen, or 1006 when they vanish), calls waiting for a thread of
the bridge, and an application exporting its metrics itself.

tests/apps/metrics.py serves them; tests/metrics_support.py reads them.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import socket
import threading

import pytest
import requests

from tests.metrics_support import (
    Samples,
    flooded,
    grew,
    parse,
    scrape,
    scraped_until,
    value,
)
from tests.support import ServerProcess, serve, wait_until
from tests.wsclient import TIMEOUT, open_ws, raw_handshake


@pytest.fixture(scope='module')
def server() -> Iterator[ServerProcess]:
    with serve('uvicorn', 'tests.apps.metrics:app') as running:
        yield running


@contextlib.contextmanager
def event_stream(server: ServerProcess) -> Iterator[requests.Response]:
    """An open event stream of ``/events``, once its ``hello`` is read."""
    with requests.get(
        server.url + '/events', stream=True, timeout=TIMEOUT
    ) as response:
        assert response.status_code == 200
        lines = response.iter_lines(decode_unicode=True)
        data = next(line for line in lines if line.startswith('data:'))
        assert data == 'data: hello'  # after any comment (':')
        yield response


def test_event_streams_open_per_consumer(server):
    events = {'consumer': 'events'}
    before = scrape(server)
    with event_stream(server), event_stream(server):
        during = scrape(server)
    after = scraped_until(
        server,
        lambda s: not value(s, 'sse_streams', **events),
        'the two streams to end',
    )
    assert grew(before, during, 'sse_streams', **events) == 2
    assert grew(before, after, 'sse_accepted_total', **events) == 2
    posted = requests.post(server.url + '/events', timeout=TIMEOUT)
    assert posted.status_code == 405
    refused = scrape(server)
    method = dict(consumer='events', status=405, reason='method')
    assert grew(after, refused, 'refusals_total', protocol='sse', **method)
    assert value(refused, 'sse_streams', **events) == 0


def test_an_event_streams_send_queue(server):
    # a client that never reads: the stream's queue of one fills, drops
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(TIMEOUT)
    before = scrape(server)
    with (
        contextlib.closing(sock),
        open_ws(server.ws_url + '/room') as room,
    ):
        assert room.recv(timeout=TIMEOUT) == 'joined'
        sock.connect(('127.0.0.1', server.port))
        sock.sendall(b'GET /events/tiny HTTP/1.1\r\nHost: x\r\n\r\n')
        wait_until(
            lambda: 'events_tiny joined' in server.log(), 'the stream to join'
        )
        stalled = flooded(server, room, before)
        # the room's socket reads all: the stream's is the full queue
        assert value(stalled, 'send_queue_deepest') == 1
        assert value(stalled, 'send_queue_messages') == 1


def closes(samples: Samples, code: str) -> float:
    """The closes of ``/echo`` by its clients with the label ``code``."""
    labels = dict(consumer='echo', code=code, initiator='client')
    return value(samples, 'websocket_closes_total', **labels)


def test_a_client_that_vanishes_is_a_1006(server):
    before = scrape(server)
    raw_handshake(server.port, '/echo').close()  # no close frame
    after = scraped_until(
        server,
        lambda s: closes(s, '1006') > closes(before, '1006'),
        'the lost connection to be counted',
    )
    assert closes(after, '1006') - closes(before, '1006') == 1
    assert closes(after, '1005') == closes(before, '1005')


def test_the_close_codes_clients_choose_are_a_few_labels(server):
    before = scrape(server)
    for code in (4123, 4124, 3999):
        with open_ws(server.ws_url + '/echo') as ws:
            ws.send('hi')
            ws.recv(timeout=TIMEOUT)
            ws.close(code)
    after = scraped_until(
        server,
        lambda s: closes(s, '3xxx') > closes(before, '3xxx'),
        'the closes to be counted',
    )
    assert closes(after, '4xxx') - closes(before, '4xxx') == 2
    assert not closes(after, '4123')


def test_calls_waiting_for_a_thread():
    with serve('uvicorn', 'tests.apps.metrics:app', {'THREADS': '1'}) as srv:
        calls = [
            threading.Thread(
                target=requests.get, args=(srv.url + path,), daemon=True
            )
            for path in ('/slow', '/hello')
        ]
        calls[0].start()
        try:
            scraped_until(  # the endpoint needs no thread of the pool
                srv,
                lambda s: value(s, 'bridge_threads_busy') == 1,
                '/slow to hold the only thread',
            )
            calls[1].start()
            waiting = scraped_until(
                srv,
                lambda s: value(s, 'bridge_waiting'),
                '/hello to wait for the thread',
            )
            assert value(waiting, 'bridge_waiting') == 1
            assert value(waiting, 'bridge_threads') == 1
        finally:
            requests.get(srv.url + '/unblock', timeout=TIMEOUT)
            for call in calls:
                call.join(TIMEOUT)
        scraped_until(
            srv,
            lambda s: not value(s, 'bridge_waiting'),
            'the calls to end',
        )


def test_an_app_exporting_its_metrics_itself_gets_them_sampled():
    # asgi_ws.metrics = true, no endpoint: nothing scrapes /metrics, so
    # the worker samples itself; the app's own view reads the registry
    env = {'METRICS_PATH': '', 'METRICS_INTERVAL': '0.1'}
    with serve('uvicorn', 'tests.apps.metrics:app', env) as srv:
        assert requests.get(srv.url + '/metrics').status_code == 404

        def export() -> Samples:
            response = requests.get(srv.url + '/export', timeout=TIMEOUT)
            return parse(response.text)

        with open_ws(srv.ws_url + '/room') as room:
            assert room.recv(timeout=TIMEOUT) == 'joined'
            room.send('hi')
            assert room.recv(timeout=TIMEOUT) == 'hi'
            wait_until(
                lambda: (
                    value(s := export(), 'groups') == 1
                    and value(s, 'group_delivered_total') == 1
                    and value(s, 'bridge_threads') >= 1
                ),
                'the sampled metrics in the view',
            )


@pytest.mark.parametrize(
    'accept',
    [
        'application/openmetrics-text; version=abc',
        'text/plain; version=x.y',
    ],
)
def test_an_accept_header_not_understood_gets_the_text_format(server, accept):
    response = requests.get(
        server.url + '/metrics', headers={'Accept': accept}, timeout=TIMEOUT
    )
    assert response.status_code == 200
    assert response.headers['content-type'].startswith(
        'text/plain; version=0.0.4'
    )
    assert '\npyramid_asgi_ws_groups ' in response.text
