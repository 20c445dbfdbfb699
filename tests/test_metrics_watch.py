"""The watchers, the sample and the endpoint's checks, each on its own.

The ASGI messages are driven by hand here, for the cases a real server
seldom shows (a send that fails, a close before accept); the counts of
real connections are in tests/test_metrics.py.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from pyramid_asgi_ws.interfaces import IBroadcaster
from pyramid_asgi_ws.metrics import _sample_every, _stopped
from pyramid_asgi_ws.metrics.collectors import Metrics, multiprocess
from pyramid_asgi_ws.metrics.endpoint import MetricsEndpoint
from pyramid_asgi_ws.metrics.watch import WATCH_KEY, size
from pyramid_asgi_ws.refusal import REFUSAL_KEY
from tests.support import until

CONSUMER = (SimpleNamespace(name='c', protocol='websocket'), {})


def get(metrics: Metrics, name: str, **labels: Any) -> float | None:
    return metrics.collector_registry.get_sample_value(
        'pyramid_asgi_ws_' + name, {k: str(v) for k, v in labels.items()}
    )


class Peer:
    """The server side of one scope: messages to receive, sends kept."""

    def __init__(self, *incoming: dict[str, Any], fail: bool = False):
        self.incoming = list(incoming)
        self.sent: list[dict[str, Any]] = []
        self.fail = fail

    async def receive(self) -> dict[str, Any]:
        return self.incoming.pop(0)

    async def send(self, message: dict[str, Any]) -> None:
        if self.fail:
            raise OSError('the client is gone')
        self.sent.append(message)


def run(metrics, scope, found, peer, *steps):
    """Watch ``scope``; run ``steps``: 'receive' or a message to send."""
    receive, send = metrics.watch(scope, found, peer.receive, peer.send)

    async def main() -> None:
        for step in steps:
            if step == 'receive':
                await receive()
            else:
                await send(step)

    asyncio.run(main())


ACCEPT = {'type': 'websocket.accept'}
CONNECT = {'type': 'websocket.connect'}


def test_size_counts_text_as_utf8():
    assert size({'text': 'abc'}) == 3
    assert size({'text': 'é€'}) == 5
    assert size({'bytes': b'\x00\x01'}) == 2
    assert size({'bytes': None}) == 0


def test_a_websocket_from_accept_to_its_first_close():
    metrics = Metrics()
    scope = {'type': 'websocket'}
    peer = Peer(
        CONNECT,
        {'type': 'websocket.receive', 'text': 'hé'},
        {'type': 'websocket.receive', 'bytes': b'1234'},
        {'type': 'websocket.disconnect', 'code': 1000, 'reason': ''},
    )
    run(
        metrics,
        scope,
        CONSUMER,
        peer,
        'receive',
        ACCEPT,
        'receive',
        'receive',
        {'type': 'websocket.send', 'bytes': b'12'},
        {'type': 'websocket.close', 'code': 4000},
        'receive',  # the client's echo of the close is not counted
    )
    assert get(metrics, 'websocket_connections', consumer='c') == 1
    assert get(metrics, 'websocket_messages_received_total', consumer='c') == 2
    assert get(metrics, 'websocket_received_bytes_total', consumer='c') == 7
    assert get(metrics, 'websocket_sent_bytes_total', consumer='c') == 2
    closes = dict(consumer='c', code=4000, initiator='application')
    assert get(metrics, 'websocket_closes_total', **closes) == 1
    assert get(
        metrics, 'websocket_closes_total', consumer='c', code=1000,
        initiator='client',
    ) is None  # fmt: skip
    metrics.ended(scope)
    metrics.ended(scope)  # once only
    assert get(metrics, 'websocket_connections', consumer='c') == 0


def test_a_send_that_fails_is_a_client_gone_1006():
    metrics = Metrics()
    peer = Peer(CONNECT)
    run(metrics, {'type': 'websocket'}, CONSUMER, peer, 'receive', ACCEPT)
    peer.fail = True
    with pytest.raises(OSError):
        run(
            metrics,
            {'type': 'websocket'},
            CONSUMER,
            peer,
            {'type': 'websocket.send', 'text': 'x'},
        )  # a second watcher: not accepted, nothing to close
    scope = {'type': 'websocket'}
    receive, send = metrics.watch(scope, CONSUMER, peer.receive, peer.send)
    scope[WATCH_KEY].accepted = True
    with pytest.raises(OSError):
        asyncio.run(send({'type': 'websocket.send', 'text': 'x'}))
    gone = dict(consumer='c', code=1006, initiator='client')
    assert get(metrics, 'websocket_closes_total', **gone) == 1


def test_refused_handshakes_by_status_and_reason():
    metrics = Metrics()
    # a close before accept is a 403 where servers lack the denial
    # extension; the reason comes from the refusal, else the consumer's
    run(
        metrics,
        {'type': 'websocket', REFUSAL_KEY: 'origin'},
        CONSUMER,
        Peer(),
        {'type': 'websocket.close', 'code': 1008},
    )
    scope = {'type': 'websocket'}
    run(
        metrics,
        scope,
        None,
        Peer({'type': 'websocket.disconnect', 'code': 1006}),
        'receive',  # a client gone before the accept has no close code
        {'type': 'websocket.http.response.start', 'status': 401},
    )
    metrics.ended(scope)  # never accepted: nothing was open
    assert get(metrics, 'websocket_connections', consumer='') is None
    origin = dict(protocol='websocket', consumer='c', status=403)
    assert get(metrics, 'refusals_total', reason='origin', **origin) == 1
    own = dict(protocol='websocket', consumer='', status=401)
    assert get(metrics, 'refusals_total', reason='application', **own) == 1
    assert get(metrics, 'websocket_closes_total', consumer='', code=1006,
               initiator='client') is None  # fmt: skip


def test_http_requests_to_pyramid_and_to_consumers():
    metrics = Metrics()
    start = {'type': 'http.response.start', 'status': 201}
    more = {'type': 'http.response.body', 'body': b'a', 'more_body': True}
    last = {'type': 'http.response.body', 'body': b'b'}
    run(metrics, {'type': 'http'}, None, Peer(), start, more, last)
    assert get(metrics, 'bridge_responses_total', status=201) == 1
    assert get(metrics, 'bridge_request_duration_seconds_count') == 1
    run(metrics, {'type': 'http'}, CONSUMER, Peer(), start, last)
    refused = {'type': 'http', REFUSAL_KEY: 'permission'}
    run(metrics, refused, CONSUMER, Peer(), dict(start, status=403), last)
    assert get(metrics, 'bridge_responses_total', status=403) is None
    labels = dict(protocol='http', consumer='c', reason='permission')
    assert get(metrics, 'refusals_total', status=403, **labels) == 1
    assert get(metrics, 'refusals_total', status=201, **labels) is None


def test_an_event_stream_from_its_start_to_its_consumers_end():
    metrics = Metrics()
    stream = (SimpleNamespace(name='s', protocol='sse'), {})
    start = {'type': 'http.response.start', 'status': 200}
    more = {'type': 'http.response.body', 'body': b'data: x', 'more_body': 1}
    scope = {'type': 'http'}
    run(metrics, scope, stream, Peer(), start, more)
    assert get(metrics, 'sse_streams', consumer='s') == 1
    assert get(metrics, 'sse_accepted_total', consumer='s') == 1
    metrics.ended(scope)
    metrics.ended(scope)  # once only
    assert get(metrics, 'sse_streams', consumer='s') == 0
    refused = {'type': 'http', REFUSAL_KEY: 'origin'}
    run(metrics, refused, stream, Peer(), dict(start, status=403))
    metrics.ended(refused)  # a refused stream was never open
    assert get(metrics, 'sse_streams', consumer='s') == 0
    assert get(metrics, 'sse_accepted_total', consumer='s') == 1
    labels = dict(protocol='sse', consumer='s', reason='origin')
    assert get(metrics, 'refusals_total', status=403, **labels) == 1


def test_ended_without_a_watcher_does_nothing():
    Metrics().ended({'type': 'websocket'})


class Counting:
    """A broadcaster or a backend: the counts the sample reads."""

    def __init__(self, **counts: Any) -> None:
        self.__dict__.update(counts)


def make_app(broadcaster=None):
    registry = SimpleNamespace(
        queryUtility=lambda iface: (
            broadcaster if iface is IBroadcaster else None
        )
    )
    # jobs awaiting, resumed on their thread, or over (still referenced)
    jobs = [SimpleNamespace(task=task) for task in ('task', None, None)]
    pool = SimpleNamespace(
        threads=[1, 2, 3], busy=2, waiting=4, suspended=jobs
    )
    connections = [SimpleNamespace(pending=n) for n in (0, 5, 2)]
    streams = [SimpleNamespace(pending=n) for n in (1, 6)]
    return SimpleNamespace(
        wsgi=SimpleNamespace(pool=pool),
        connections=connections,
        streams=streams,
        registry=registry,
    )


def test_sample_reads_the_pool_and_the_send_queues():
    metrics = Metrics()
    metrics.sample(make_app())
    for name, expected in (
        ('bridge_threads', 3),
        ('bridge_threads_busy', 2),
        ('bridge_waiting', 4),
        ('bridge_suspended', 1),
        ('send_queue_messages', 14),  # of sockets and event streams
        ('send_queue_deepest', 6),
    ):
        assert get(metrics, name) == expected, name
    assert get(metrics, 'groups') == 0  # no broadcaster to read


def test_sample_adds_what_the_broadcaster_counted_since():
    metrics = Metrics()
    broadcaster = Counting(
        url='redis://localhost',
        groups={'a': 1, 'b': 2},
        published=3,
        received=4,
        delivered=5,
        dropped=1,
        backend=None,
        recovery=Counting(recovered=7, lost=1),
    )
    app = make_app(broadcaster)
    metrics.sample(app)
    assert get(metrics, 'groups') == 2
    assert get(metrics, 'group_published_total') == 3
    assert get(metrics, 'group_recovered_total') == 7
    assert get(metrics, 'group_lost_total') == 1
    broadcaster.published = 5
    broadcaster.backend = Counting(reconnects=2, failures=1)
    metrics.sample(app)
    metrics.sample(app)  # nothing new
    assert get(metrics, 'group_published_total') == 5
    assert get(metrics, 'group_dropped_total') == 1
    assert get(metrics, 'backend_reconnects_total', backend='redis') == 2
    assert get(metrics, 'backend_errors_total', backend='redis') == 1
    broadcaster.backend = Counting(reconnects=1)  # restarted: from 0
    metrics.sample(app)
    assert get(metrics, 'backend_reconnects_total', backend='redis') == 3
    assert get(metrics, 'backend_errors_total', backend='redis') == 1


def test_multiprocess_mode_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv('PROMETHEUS_MULTIPROC_DIR', raising=False)
    assert not multiprocess()
    monkeypatch.setenv('PROMETHEUS_MULTIPROC_DIR', str(tmp_path))
    assert multiprocess()


def test_a_worker_samples_itself_every_interval():
    samples = []
    metrics = SimpleNamespace(sample=samples.append)

    async def main() -> None:
        sampler = asyncio.ensure_future(_sample_every(metrics, 'app', 0.01))
        await until(lambda: len(samples) >= 2, 'two samples')
        sampler.cancel()

    asyncio.run(main())
    assert set(samples) == {'app'}


def test_stopping_a_worker_that_never_sampled(monkeypatch, tmp_path):
    monkeypatch.setenv('PROMETHEUS_MULTIPROC_DIR', str(tmp_path))
    metrics = Metrics()
    dead = tmp_path / 'gauge_livesum_1.db'
    dead.write_bytes(b'')
    monkeypatch.setattr('os.getpid', lambda: 1)
    registry = SimpleNamespace(queryUtility=lambda iface: metrics)
    asyncio.run(_stopped(SimpleNamespace(registry=registry)))
    assert not dead.exists()
    dead.write_bytes(b'')
    monkeypatch.delenv('PROMETHEUS_MULTIPROC_DIR')  # no files to drop
    asyncio.run(_stopped(SimpleNamespace(registry=registry)))
    assert dead.exists()


@pytest.mark.parametrize(
    'client, method, status',
    [
        (('127.0.0.1', 5000), 'GET', None),
        (('127.0.0.1', 5000), 'HEAD', None),
        (('127.0.0.1', 5000), 'PUT', 405),
        (('10.1.2.3', 5000), 'GET', 403),
        (None, 'GET', 403),  # a unix socket's peer, not allowed here
        (('::ffff:127.0.0.1', 5000), 'GET', None),  # IPv4 on a v6 socket
        (('::ffff:10.1.2.3', 5000), 'GET', 403),
    ],
)
def test_the_endpoint_checks_the_client_then_the_method(
    client, method, status
):
    endpoint = MetricsEndpoint(Metrics(), ('127.0.0.0/8',))
    refusal = endpoint.check({'client': client, 'method': method})
    assert (refusal and refusal.status) == status
    if client is None:
        assert refusal.reason.startswith('a unix socket peer')
    allowed = MetricsEndpoint(Metrics(), ('unix',))
    assert allowed.check({'client': None, 'method': 'GET'}) is None


@pytest.mark.parametrize(
    'headers, allow, refused',
    [
        # a proxy on the machine passes on a foreign client's request
        ([(b'x-forwarded-for', b'203.0.113.9')], None, "'203.0.113.9'"),
        ([(b'X-Real-IP', b'203.0.113.9')], None, 'x-real-ip'),
        ([(b'forwarded', b'for="[2001:db8::1]:4711"')], None, '2001:db8::1'),
        # a spoofed entry cannot hide the address the proxy appended
        ([(b'x-forwarded-for', b'127.0.0.1, 203.0.113.9')], None, '203.0'),
        (
            [
                (b'x-forwarded-for', b'127.0.0.1'),
                (b'x-forwarded-for', b'198.51.100.7:80'),
            ],
            None,
            "'198.51.100.7'",
        ),
        ([(b'forwarded', b'for=unknown;proto=https')], None, "'unknown'"),
        ([(b'x-forwarded-for', b'unix')], ('127.0.0.0/8', 'unix'), 'unix'),
        ([(b'x-forwarded-for', b'127.0.0.1, ')], None, "''"),
        # every address allowed, or every client
        ([(b'x-forwarded-for', b'127.0.0.2:5, ::1')], None, None),
        ([(b'forwarded', b'For=127.0.0.5, for="[::1]"')], None, None),
        ([(b'forwarded', b'proto=https')], None, None),
        ([(b'x-forwarded-for', b'')], None, None),
        ([(b'x-forwarded-for', b'203.0.113.9')], ('*',), None),
    ],
)
def test_every_address_the_forwarding_headers_name_must_be_allowed(
    headers, allow, refused
):
    endpoint = MetricsEndpoint(Metrics(), allow or ('127.0.0.0/8', '::1'))
    scope = {'client': ('127.0.0.1', 5000), 'method': 'GET'}
    refusal = endpoint.check({**scope, 'headers': headers})
    if refused is None:
        assert refusal is None
    else:
        assert (refusal.status, refusal.kind) == (403, 'client')
        assert refused in refusal.reason
        assert 'not in asgi_ws.metrics_allow' in refusal.reason


@pytest.mark.parametrize(
    'code, label',
    [(1001, '1001'), (1006, '1006'), (3000, '3xxx'), (4999, '4xxx')]
    + [(2500, 'other'), (999, 'other'), (5000, 'other')],
)
def test_a_clients_close_code_is_one_of_a_few_labels(code, label):
    metrics = Metrics()
    peer = Peer(CONNECT, {'type': 'websocket.disconnect', 'code': code})
    scope = {'type': 'websocket'}
    run(metrics, scope, CONSUMER, peer, 'receive', ACCEPT, 'receive')
    closes = dict(consumer='c', initiator='client')
    assert get(metrics, 'websocket_closes_total', code=label, **closes) == 1
    run(  # the application's own codes are its own labels
        metrics,
        {'type': 'websocket'},
        CONSUMER,
        Peer(),
        ACCEPT,
        {'type': 'websocket.close', 'code': 4321},
    )
    mine = dict(consumer='c', initiator='application', code=4321)
    assert get(metrics, 'websocket_closes_total', **mine) == 1
