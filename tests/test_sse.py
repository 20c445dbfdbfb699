"""Server-sent events through real servers, read with httpx streaming.

The app is ``tests.apps.sse``; its consumers say in the server log what
they did (joined, ended), which the tests wait for instead of sleeping.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import re
import signal
import time
from typing import Any

import httpx
import pytest

from pyramid_asgi_ws.testing import Event, EventParser
from tests.fixtures.deploy import pserve
from tests.redis_support import RedisServer, redis_available
from tests.support import SERVERS, ServerProcess, free_port, serve

TARGET = 'tests.apps.sse:app'


class Reader:
    """The events (and comments) of one streamed response."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.parser = EventParser()
        self.pending: list[Event] = []
        self.ended = False
        self._chunks = response.iter_raw()

    def _more(self) -> None:
        try:
            chunk = next(self._chunks)
        except StopIteration:
            self.ended = True
            return
        self.pending.extend(self.parser.feed(chunk))

    def events(self, count: int) -> list[Event]:
        """The next ``count`` events; fails if the stream ends first."""
        while len(self.pending) < count:
            assert not self.ended, f'stream ended after {self.pending!r}'
            self._more()
        taken, self.pending = self.pending[:count], self.pending[count:]
        return taken

    def comments(self, count: int) -> None:
        """Read on until ``count`` comments came."""
        while self.parser.comments < count:
            assert not self.ended
            self._more()

    def until_end(self) -> list[Event]:
        """Read until the server ends the stream; return the events."""
        while not self.ended:
            self._more()
        taken, self.pending = self.pending, []
        return taken


@contextlib.contextmanager
def stream(
    url: str, headers: dict[str, Any] | None = None, method: str = 'GET'
) -> Iterator[tuple[httpx.Response, Reader]]:
    with (
        httpx.Client(timeout=10) as client,
        client.stream(method, url, headers=headers) as response,
    ):
        yield response, Reader(response)


def publish(
    server: ServerProcess, group: str, start: int, count: int, pad: int = 0
) -> None:
    response = httpx.post(
        f'{server.url}/publish/{group}',
        params={'start': start, 'count': count, 'pad': pad},
        timeout=30,
    )
    assert response.status_code == 200, response.text


@pytest.fixture(params=SERVERS)
def server(request: Any) -> Iterator[ServerProcess]:
    with serve(request.param, TARGET) as proc:
        yield proc


def test_events_and_headers(server):
    with stream(f'{server.url}/events/echo') as (response, reader):
        assert response.status_code == 200
        assert response.headers['content-type'] == (
            'text/event-stream; charset=utf-8'
        )
        assert response.headers['cache-control'] == 'no-cache'
        assert response.headers['x-accel-buffering'] == 'no'
        lines, data = reader.events(2)
    assert reader.parser.retry == 2500
    assert lines == Event('one\ntwo\nthree\nfour', 'lines', 'e1', 2500)
    assert data.event == 'message'
    assert data.data == '{"json":[1,"two"],"text":"é"}'
    server.wait_for_log('echo ended')


def test_last_event_id_from_header_or_query(server):
    url = f'{server.url}/events/echo'
    with stream(url, {'Last-Event-ID': 'h7'}) as (_, reader):
        reader.events(2)
    with stream(url + '?last_event_id=q9') as (_, reader):
        reader.events(2)
    # browsers send it in UTF-8; a query string has its own %-escapes
    utf8 = {'Last-Event-ID': 'é-1'.encode()}
    with stream(url, utf8) as (_, reader):
        reader.events(2)
    with stream(url + '?last_event_id=%C3%A8-2') as (_, reader):
        reader.events(2)
    with stream(url, {'Last-Event-ID': b'\xff-3'}) as (_, reader):
        reader.events(2)  # no UTF-8: read as it came
    log = server.wait_for_log('echo ended', count=5)
    assert 'echo last_event_id=h7' in log
    assert 'echo last_event_id=q9' in log
    assert 'echo last_event_id=é-1' in log
    assert 'echo last_event_id=è-2' in log
    assert 'echo last_event_id=ÿ-3' in log


def test_refusals_come_before_the_stream(server):
    url = f'{server.url}/events'
    with stream(f'{url}/secret') as (response, _):
        assert response.status_code == 401
    with stream(f'{url}/secret', {'X-User': 'bob'}) as (response, _):
        assert response.status_code == 403
        assert 'text/event-stream' not in response.headers['content-type']
    with stream(f'{url}/secret', {'X-User': 'alice'}) as (response, reader):
        assert response.status_code == 200
        assert reader.events(1)[0].data == 'hello alice'
    evil = {'Origin': 'https://evil.example'}
    with stream(f'{url}/echo', evil) as (response, _):
        assert response.status_code == 403
    page = {'Origin': 'https://page.example'}  # allowed: CORS lets it read
    with stream(f'{url}/echo', page) as (response, reader):
        assert response.headers['access-control-allow-origin'] == (
            'https://page.example'
        )
        assert response.headers['access-control-allow-credentials'] == 'true'
        assert response.headers['vary'] == 'origin'
        reader.events(2)
    with stream(f'{url}/echo', method='POST') as (response, _):
        assert response.status_code == 405
        assert response.headers['allow'] == 'GET'
    log = server.log()
    assert "anonymous user lacks permission 'secret'" in log
    assert log.count('echo last_event_id') == 1  # only the allowed page's


def cors(response: httpx.Response) -> tuple[str | None, str | None]:
    """The response's Access-Control-Allow-Origin and -Credentials."""
    headers = response.headers
    return (
        headers.get('access-control-allow-origin'),
        headers.get('access-control-allow-credentials'),
    )


@pytest.mark.parametrize('check', ['true', 'false'])
def test_only_listed_origins_read_a_stream_with_credentials(check):
    """A page the check let through is not let read a user's stream
    unless it was listed: with the check off or '*' allowed, an Origin
    reflected with credentials would let any site read it."""
    evil = {'Origin': 'https://evil.example'}
    with serve('uvicorn', TARGET, {'CHECK_ORIGIN': check}) as server:
        url = f'{server.url}/events'
        with stream(f'{url}/open', evil) as (response, reader):
            assert response.status_code == 200
            assert cors(response) == ('*', None)
            reader.events(2)
        with stream(f'{url}/ticker', evil) as (response, reader):
            if check == 'true':
                assert response.status_code == 403
            else:  # let through, not let read
                assert cors(response) == (None, None)
                reader.events(1)
        own = {'Origin': server.url}
        with stream(f'{url}/echo', own) as (response, reader):
            assert cors(response) == (None, None)
            reader.events(2)
        page = {'Origin': 'https://page.example'}  # listed for /echo
        with stream(f'{url}/echo', page) as (response, reader):
            assert cors(response) == ('https://page.example', 'true')
            assert response.headers['vary'] == 'origin'
            reader.events(2)


def test_heartbeats_keep_an_idle_stream_talking(server):
    with stream(f'{server.url}/events/quiet') as (_, reader):
        started = time.monotonic()
        reader.comments(3)
        elapsed = time.monotonic() - started
    assert reader.pending == []
    assert elapsed < 5  # 0.2 s apart; a bound, not a timing


def test_a_client_going_away_ends_the_consumer(server):
    with stream(f'{server.url}/events/ticker') as (_, reader):
        ticks = reader.events(3)
    assert [tick.data for tick in ticks] == ['tick 0', 'tick 1', 'tick 2']
    server.wait_for_log('ticker ended with')


def test_a_consumer_that_raises_ends_its_stream(server):
    with stream(f'{server.url}/events/boom') as (_, reader):
        events = reader.until_end()
    assert [event.data for event in events] == ['before']
    log = server.wait_for_log('boom in an event stream')
    assert "consumer 'tests.apps.sse.boom' failed on event stream" in log


def test_a_consumer_returning_ends_its_response(server):
    """The stream's response ends as a response does (httpx reads its
    end), twice from one client."""
    url = f'{server.url}/events/done'
    with httpx.Client(timeout=10) as client:
        for _ in range(2):  # the second on the same connection
            with client.stream('GET', url) as response:
                events = Reader(response).until_end()
            assert [event.data for event in events] == ['last']
    assert 'Traceback' not in server.log()


def _resume(server: ServerProcess, group: str, restart: Any = None) -> None:
    """Read 5, go away, miss 100, come back with Last-Event-ID: exactly
    the 100 in order, then live ones."""
    url = f'{server.url}/events/group/{group}'
    with stream(url) as (_, reader):
        server.wait_for_log(f'joined {group} resumed=True')
        publish(server, group, 0, 5)
        seen = reader.events(5)
    assert [event.data for event in seen] == ['0', '1', '2', '3', '4']
    last = seen[-1].id
    assert last and len({event.id for event in seen}) == 5
    server.wait_for_log(f'left {group}')
    publish(server, group, 5, 100)
    if restart is not None:
        server = restart()
    start = len(server.log())
    with stream(url, {'Last-Event-ID': last}) as (_, reader):
        server.wait_for_log(f'joined {group} resumed=True', start)
        missed = reader.events(100)
        publish(server, group, 105, 3)
        live = reader.events(3)
    assert [event.data for event in missed] == [str(n) for n in range(5, 105)]
    assert [event.data for event in live] == ['105', '106', '107']
    ids = [event.id for event in missed + live]
    assert len(set(ids)) == 103 and last not in ids


def _resume_several(
    server: ServerProcess, restart: Any = None, query: str = ''
) -> None:
    """One stream in two groups: read 3 of each, go away, miss 100 of
    each, come back with Last-Event-ID: exactly the 100 of each in order
    (the groups replayed in the order the consumer joins them, or
    interleaved when it joins them at once)."""
    url = f'{server.url}/events/several?groups=ga,gb{query}'
    with stream(url) as (_, reader):
        server.wait_for_log('joined ga,gb resumed=[True, True]')
        publish(server, 'ga', 0, 3)
        publish(server, 'gb', 0, 3)
        seen = reader.events(6)
    server.wait_for_log('left ga,gb')
    publish(server, 'ga', 3, 100)
    publish(server, 'gb', 3, 100)
    if restart is not None:
        server = restart()
    start = len(server.log())
    with stream(url, {'Last-Event-ID': seen[-1].id}) as (_, reader):
        server.wait_for_log('resumed=[True, True]', start)
        missed = reader.events(200)
        publish(server, 'gb', 103, 1)
        live = reader.events(1)
    for group in ('ga', 'gb'):
        got = [event.data for event in missed if event.event == group]
        assert got == [str(n) for n in range(3, 103)]
    if not query:  # one group after the other
        assert {event.event for event in missed[:100]} == {'ga'}
    assert (live[0].event, live[0].data) == ('gb', '103')


def test_a_plain_id_resumes_only_the_first_group_with_history(server):
    """Back with the plain id of a stream in one group with history, a
    stream resumes that group, and joins its other groups live (True, not
    reload): one without history, one with (new to this stream)."""
    url = f'{server.url}/events/several?groups='
    with stream(url + 'ha,live:x') as (_, reader):
        server.wait_for_log('joined ha,live:x resumed=[True, True]')
        publish(server, 'ha', 0, 1)
        last = reader.events(1)[0].id
    server.wait_for_log('left ha,live:x')
    publish(server, 'ha', 1, 1)
    back = url + 'ha,live:x,hb'
    with stream(back, {'Last-Event-ID': last}) as (_, reader):
        assert reader.events(1)[0].data == '1'
        server.wait_for_log('resumed=[True, True, True]')


def test_resume_with_memory_history(server):
    _resume(server, 'room-memory')
    _resume_several(server)


def test_history_that_does_not_reach_back_says_reload():
    env = {'HISTORY_SIZE': '10'}
    with serve('uvicorn', TARGET, env) as server:
        url = f'{server.url}/events/group/short'
        with stream(url) as (_, reader):
            server.wait_for_log('joined short resumed=True')
            publish(server, 'short', 0, 1)
            last = reader.events(1)[0].id
        publish(server, 'short', 1, 50)
        nested = '{"short":' + '[' * 2000 + ']' * 2000 + '}'
        for since in (last, 'not-a-position', nested):
            with stream(url, {'Last-Event-ID': since}) as (_, reader):
                reload = reader.events(1)[0]
                publish(server, 'short', 100, 1)
                live = reader.events(1)[0]
            assert (reload.event, reload.data) == ('reload', 'history gone')
            assert live.data == '100'
    assert server.log().count('joined short resumed=False') == 3
    assert 'Traceback' not in server.log()


@pytest.mark.skipif(not redis_available(), reason='needs redis-server')
def test_resume_with_redis_history_across_a_restart():
    with RedisServer() as redis:
        env = {'BROADCAST_URL': redis.url}
        port = free_port()
        servers: list[ServerProcess] = []

        def start() -> ServerProcess:
            if servers:
                servers[-1].stop()
            command = [
                'python', '-m', 'uvicorn', TARGET, '--host', '127.0.0.1',
                '--port', str(port), '--no-access-log',
            ]  # fmt: skip
            servers.append(ServerProcess(command, port, env).wait_ready())
            return servers[-1]

        try:
            _resume(start(), 'room-redis', restart=start)
            _resume_several(servers[-1], restart=start)
            _resume_several(servers[-1], start, '&together=1')
        finally:
            for proc in servers:
                proc.stop()


def pserved(
    tmp_path: Any, kind: str, options: str = ''
) -> tuple[ServerProcess, int]:
    """The app served by ``pserve`` with the add-on's ``kind`` runner."""
    port = free_port()
    ini = tmp_path / 'sse.ini'
    ini.write_text(
        '[app:main]\n'
        'use = call:tests.apps.sse:make_app\n'
        '[server:main]\n'
        f'use = egg:pyramid_asgi_ws#{kind}\n'
        f'listen = 127.0.0.1:{port}\n' + options
    )
    return pserve(ini, port=port).wait_ready(), port


@pytest.mark.parametrize('reads_on', [True, False])
def test_a_slow_client_overflowing_its_queue_resumes_without_a_loss(reads_on):
    """A client that stops reading fills the kernel's buffers, then its
    send queue (4 here): the stream ends (send_overflow = close), and the
    client, reading on, finds the events that got through, then the end,
    or, reading nothing more for a while, is cut off after those;
    reconnecting with the last id gets all the others, in order."""
    env = {'SEND_QUEUE_SIZE': '4'}
    with serve('uvicorn', TARGET, env) as server:
        url = f'{server.url}/events/group/flood'
        with stream(url) as (_, reader):
            server.wait_for_log('joined flood resumed=True')
            sent = 0
            while 'left flood' not in server.log():  # 50 MB at most
                assert sent < 500, 'the queue never overflowed'
                publish(server, 'flood', sent, 20, pad=100_000)
                sent += 20
            if reads_on:
                got = reader.until_end()
            else:
                server.wait_for_log('without completing response')
                with pytest.raises(httpx.RemoteProtocolError):
                    reader.until_end()  # the end never came
                got = reader.pending
        assert [int(event.data) for event in got] == list(range(len(got)))
        assert len(got) < sent
        with stream(url, {'Last-Event-ID': got[-1].id}) as (_, reader):
            rest = reader.events(sent - len(got))
        numbers = [int(event.data) for event in rest]
        assert numbers == list(range(len(got), sent))
        log = server.log()
        assert 'Traceback' not in log
        # an event stream ends without a close code to tell
        assert (
            'closing event stream /events/group/flood: its send queue of 4 '
            'messages is full'
        ) in log


@pytest.mark.parametrize(
    'kind', ['uvicorn', 'hypercorn', 'granian', 'gunicorn']
)
def test_shutdown_ends_streams(tmp_path, kind):
    server, port = pserved(tmp_path, kind, 'shutdown_timeout = 4\n')
    try:
        with stream(f'http://127.0.0.1:{port}/events/quiet') as (_, reader):
            server.wait_for_log('quiet started')
            started = time.monotonic()
            server.signal(signal.SIGTERM)
            reader.until_end()
            elapsed = time.monotonic() - started
        status = server.wait(15)
    finally:
        server.stop()
    assert elapsed < 3, server.log()
    assert status == 0, server.log()
    assert 'Traceback' not in server.log()


def test_events_pass_the_documented_nginx(tmp_path, monkeypatch):
    from tests import test_nginx

    # the documented site and its TCP upstream, the first two blocks
    blocks = test_nginx.nginx_blocks()[:2]
    monkeypatch.setattr(test_nginx, 'nginx_blocks', lambda: blocks)
    nginx_config, start_nginx = test_nginx.nginx_config, test_nginx.start_nginx
    with serve('uvicorn', TARGET) as server:
        port = free_port()
        upstream = f'127.0.0.1:{server.port}'
        proxy = start_nginx(
            tmp_path, nginx_config(tmp_path, port, upstream), port
        )
        try:
            # each event and heartbeat gets through while the stream
            # stays open (and nginx keeps x-accel-buffering to itself)
            url = f'http://127.0.0.1:{port}/events'
            with stream(f'{url}/echo') as (response, reader):
                assert 'x-accel-buffering' not in response.headers
                assert reader.events(2)[0].event == 'lines'
            with stream(f'{url}/quiet') as (_, reader):
                reader.comments(3)
        finally:
            proxy.stop()


def workers(log: str) -> set[str]:
    """The processes the group consumer joined in, from its reports."""
    return set(re.findall(r'resumed=True in (\d+)', log))


@pytest.mark.skipif(not redis_available(), reason='needs redis-server')
def test_streams_on_two_workers_get_the_same_ids():
    with RedisServer() as redis:
        port = free_port()
        command = [
            'python', '-m', 'uvicorn', TARGET, '--host', '127.0.0.1',
            '--port', str(port), '--workers', '2', '--no-access-log',
        ]  # fmt: skip
        server = ServerProcess(command, port, {'BROADCAST_URL': redis.url})
        server.wait_ready()
        try:
            url = f'{server.url}/events/group/shared'
            with contextlib.ExitStack() as streams:
                readers: list[Reader] = []
                while len(workers(server.log())) < 2:  # streams on both
                    assert len(readers) < 32, server.log()
                    readers.append(streams.enter_context(stream(url))[1])
                    server.wait_for_log('resumed=True', count=len(readers))
                for number in range(10):  # each POST to either worker
                    publish(server, 'shared', number, 1)
                got = [reader.events(10) for reader in readers]
        finally:
            server.stop()
    assert all(g == got[0] for g in got)
    assert [event.data for event in got[0]] == [str(n) for n in range(10)]
    assert len({event.id for event in got[0]}) == 10


def test_granian_streams_and_sees_a_client_go(tmp_path):
    """Through egg:pyramid_asgi_ws#granian, events flow as they are sent
    and a client going away ends the consumer, one sending (StreamClosed
    or cancelled) as one only waiting (granian's http.disconnect)."""
    server, port = pserved(tmp_path, 'granian')
    try:
        with stream(f'http://127.0.0.1:{port}/events/ticker') as (_, reader):
            ticks = reader.events(3)
        server.wait_for_log('ticker ended with')
        with stream(f'http://127.0.0.1:{port}/events/group/g') as (_, reader):
            server.wait_for_log('joined g resumed=True')
            httpx.post(f'http://127.0.0.1:{port}/publish/g').raise_for_status()
            live = reader.events(1)  # passed on while the stream is open
        server.wait_for_log('left g')
    finally:
        server.stop()
    assert [tick.data for tick in ticks] == ['tick 0', 'tick 1', 'tick 2']
    assert live[0].data == '0' and live[0].id
