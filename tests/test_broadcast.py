"""Groups and broadcast: units, then the memory backend on real servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
import json
import socket
import threading
import time
from typing import Any
import urllib.error
import urllib.request

from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.response import Response
import pytest
import websockets
import webtest

from pyramid_asgi_ws import WebSocket, WebSocketState, backends
from pyramid_asgi_ws import broadcast as bc
from pyramid_asgi_ws.interfaces import IBroadcaster
from pyramid_asgi_ws.websocket import PRESENCE_KEY
from tests.support import SERVERS, serve

TIMEOUT = 5.0

# -- helpers shared with test_redis -------------------------------------------


def connect(url: str, **options: Any) -> Any:
    """A ``websockets`` client that buffers every message it is sent (so
    an unread backlog never stalls its closing handshake)."""
    options.setdefault('max_queue', None)
    options.setdefault('close_timeout', 2)
    return websockets.connect(url, **options)


@contextlib.asynccontextmanager
async def listening(url: str, **options: Any) -> AsyncIterator[Any]:
    """Connect to a consumer that joins a group, and wait (bounded) until
    it says it joined."""
    async with connect(url, **options) as ws:
        assert await recv(ws) == 'joined'
        yield ws


async def recv(ws: Any, timeout: float = TIMEOUT) -> Any:
    """The next message from a ``websockets`` client, within ``timeout``."""
    return await asyncio.wait_for(ws.recv(), timeout)


async def command(ws: Any, **cmd: Any) -> dict[str, Any]:
    """Send a command to ``/groups`` and return its answer, skipping group
    messages that arrive before it."""
    await ws.send(json.dumps(cmd))
    deadline = time.monotonic() + TIMEOUT
    while True:
        data = await recv(ws, deadline - time.monotonic())
        try:
            reply = json.loads(data)
        except ValueError:
            continue  # a text or bytes group message
        if isinstance(reply, dict) and ('ok' in reply or 'error' in reply):
            return reply


async def collect(ws: Any, quiet: float = 0.3) -> list[Any]:
    """Every message that arrives until none comes for ``quiet`` s."""
    messages = []
    while True:
        try:
            messages.append(await asyncio.wait_for(ws.recv(), quiet))
        except asyncio.TimeoutError:
            return messages


def http(
    url: str, data: bytes | None = None, timeout: float = TIMEOUT
) -> tuple[int, bytes]:
    """``(status, body)`` of a GET, or of a POST when ``data`` is given."""
    request = urllib.request.Request(url, data=data)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def apost(url: str, data: bytes) -> tuple[int, bytes]:
    """:func:`http` POST from async code, in a thread."""
    return await asyncio.to_thread(http, url, data)


# -- payloads and configuration -------------------------------------------


@pytest.mark.parametrize(
    'message',
    ['héllo', '', b'\x00\xff', {'a': [1, 'é']}, [1, 2], 3, None, True],
)
def test_encode_decode_keeps_the_kind(message):
    decoded, event = backends.decode(backends.encode(message))
    assert decoded == message
    assert type(decoded) is type(message)
    if isinstance(message, bytes):
        assert event == {'type': 'websocket.send', 'bytes': message}
    elif isinstance(message, str):
        assert event == {'type': 'websocket.send', 'text': message}
    else:
        assert json.loads(event['text']) == message


def test_encode_bytearray_and_refuses_other_objects():
    assert backends.decode(backends.encode(bytearray(b'ab')))[0] == b'ab'
    with pytest.raises(TypeError, match='text, bytes or JSON'):
        backends.encode(object())


def test_split_options():
    url, options = backends.split_options(
        'redis://h:1/0?prefix=p:&socket_timeout=3&presence_ttl=2',
        ('prefix', 'presence_ttl'),
    )
    assert url == 'redis://h:1/0?socket_timeout=3'
    assert options == {'prefix': 'p:', 'presence_ttl': '2'}


def test_backend_factory():
    assert backends.backend_factory('memory://') is backends.MemoryBackend
    assert (
        backends.backend_factory('redis://localhost') is backends.RedisBackend
    )
    with pytest.raises(ConfigurationError, match='known schemes'):
        backends.backend_factory('nats://localhost')


def test_backend_factory_reports_a_missing_library(monkeypatch):
    monkeypatch.setitem(
        backends.BACKENDS, 'nope', 'tests.no_such_module.Backend'
    )
    with pytest.raises(ConfigurationError, match='cannot be imported'):
        backends.backend_factory('nope://x')


def test_backend_interface_is_abstract():
    backend = backends.Backend('x://')

    async def calls() -> None:
        for coroutine in (
            backend.connect(lambda c, p, position: None),
            backend.disconnect(),
            backend.subscribe('g'),
            backend.unsubscribe('g'),
            backend.publish('g', b't'),
            backend.add_member('g', 'm', b'null'),
            backend.remove_member('g', 'm'),
            backend.members('g'),
        ):
            with pytest.raises(NotImplementedError):
                await coroutine

    asyncio.run(calls())


def test_includeme_registers_the_broadcaster(config):
    config.registry.settings['asgi_ws.broadcast_url'] = 'memory://'
    config.commit()
    broadcaster = config.registry.getUtility(IBroadcaster)
    assert isinstance(broadcaster, bc.Broadcaster)
    assert bc.get_broadcaster(config.registry) is broadcaster
    assert broadcaster.url == 'memory://'


def test_includeme_refuses_an_unknown_scheme(config):
    config.registry.settings['asgi_ws.broadcast_url'] = 'kafka://x'
    with pytest.raises(ConfigurationError, match='kafka'):
        config.commit()


def test_get_broadcaster_without_include():
    with pytest.raises(RuntimeError, match='no broadcaster'):
        bc.get_broadcaster(Configurator().registry)


# -- the broadcaster in one process, with real WebSocket objects -------------


def make_socket(
    size: int = 256, gate: asyncio.Event | None = None
) -> tuple[WebSocket, list[dict[str, Any]]]:
    """A connected :class:`WebSocket` whose ASGI sends land in a list;
    with a ``gate``, each send then waits for it, like a slow client."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {'type': 'websocket.connect'}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if gate is not None:
            await gate.wait()

    ws = WebSocket(
        {'type': 'websocket', 'path': '/t'},
        receive,
        send,
        send_queue_size=size,
        send_overflow='drop_oldest',
    )
    ws.client_state = ws.application_state = WebSocketState.CONNECTED
    return ws, sent


def test_groups_members_and_counters():
    async def scenario() -> None:
        broadcaster = bc.Broadcaster()
        a, sent_a = make_socket()
        b, sent_b = make_socket()
        hooked, _ = make_socket()
        calls: list[tuple[str, Any]] = []
        hooked.on_group_message = lambda group, m: calls.append((group, m))
        await broadcaster.join(a, 'room', info={'name': 'a'})
        b.scope[PRESENCE_KEY] = 'b'
        await broadcaster.join(b, 'room')
        await broadcaster.join(b, 'other')
        await broadcaster.join(hooked, 'room')
        assert a.groups == {'room'} and b.groups == {'room', 'other'}
        assert await broadcaster.members('room') == {
            broadcaster.connection_id(a): {'name': 'a'},
            broadcaster.connection_id(b): 'b',
            broadcaster.connection_id(hooked): None,
        }
        await broadcaster.publish('room', {'n': 1})
        await broadcaster.publish('nobody', 'lost')
        for sent_to in (a, b):
            await sent_to.membership.outbox.flush(TIMEOUT)
        assert (
            sent_a == sent_b == [{'type': 'websocket.send', 'text': '{"n":1}'}]
        )
        assert calls == [('room', {'n': 1})]
        await broadcaster.leave(a, 'room')
        await broadcaster.leave(a, 'room')  # twice does nothing
        await broadcaster.discard(b)
        assert b.groups == set()
        assert broadcaster.groups == {'room': 1}
        assert broadcaster.stats() == {
            'backend': 'memory',
            'published': 2,
            'received': 1,
            'delivered': 3,
            'dropped': 0,
            'replayed': 0,
            'groups': {'room': 1},
        }
        await broadcaster.close()
        assert broadcaster.groups == {}
        await broadcaster.leave(hooked, 'room')  # after close: nothing

    asyncio.run(scenario())


def test_a_message_for_a_group_left_meanwhile_is_counted_only():
    broadcaster = bc.Broadcaster()
    broadcaster._receive('gone', b'tlate')
    assert broadcaster.stats()['received'] == 1
    assert broadcaster.delivered == 0


def test_full_queue_counts_drops():
    async def scenario() -> None:
        broadcaster = bc.Broadcaster()
        gate = asyncio.Event()
        ws, sent = make_socket(size=2, gate=gate)
        await broadcaster.join(ws, 'g')
        for number in range(5):
            await broadcaster.publish('g', str(number))
        # '0' is being sent, '1' and '2' made way for '3' and '4'.
        assert ws.dropped == broadcaster.dropped == 2
        assert broadcaster.delivered == 5
        gate.set()
        await ws.membership.outbox.flush(TIMEOUT)
        assert [m['text'] for m in sent] == ['0', '3', '4']
        await broadcaster.close()

    asyncio.run(scenario())


def test_group_names_are_checked():
    async def scenario() -> None:
        broadcaster = bc.Broadcaster()
        ws, _ = make_socket()
        for call in (
            broadcaster.join(ws, ''),
            broadcaster.publish(3, 'x'),  # type: ignore[arg-type]
            broadcaster.members(''),
        ):
            with pytest.raises(ValueError, match='group name'):
                await call
        await broadcaster.close()

    asyncio.run(scenario())


def test_bad_presence_info_changes_nothing():
    async def scenario() -> None:
        broadcaster = bc.Broadcaster()
        ws, _ = make_socket()
        with pytest.raises(TypeError, match='presence info'):
            await broadcaster.join(ws, 'g', info=object())
        assert ws.groups == set() and broadcaster.groups == {}

    asyncio.run(scenario())


def test_each_hook_gets_its_own_value(caplog):
    async def scenario() -> None:
        broadcaster = bc.Broadcaster()
        seen: list[Any] = []

        def hook(group: str, message: Any) -> None:
            seen.append(dict(message))
            message['changed'] = True

        def broken(group: str, message: Any) -> None:
            raise RuntimeError('broken hook')

        for each in (hook, broken, hook):
            ws, _ = make_socket()
            ws.on_group_message = each
            await broadcaster.join(ws, 'g')
        await broadcaster.publish('g', {'n': 1})
        assert seen == [{'n': 1}, {'n': 1}]
        assert broadcaster.delivered == 2

    asyncio.run(scenario())
    assert 'on_group_message hook failed' in caplog.text


def test_a_leave_that_fails_does_not_stop_discard(caplog):
    class Failing(backends.MemoryBackend):
        async def remove_member(self, channel: str, member: str) -> None:
            raise bc.BroadcastError('gone')

    async def scenario() -> None:
        broadcaster = bc.Broadcaster(factory=Failing)
        ws, _ = make_socket()
        await broadcaster.join(ws, 'a')
        await broadcaster.join(ws, 'b')
        await broadcaster.discard(ws)
        assert ws.groups == set() and broadcaster.groups == {}

    asyncio.run(scenario())
    assert caplog.text.count('leaving group') == 2


def test_start_binds_one_loop_at_a_time():
    broadcaster = bc.Broadcaster()
    started = threading.Event()
    done = threading.Event()

    async def hold() -> None:
        await broadcaster.start()
        await broadcaster.start()  # again in the same loop: nothing
        started.set()
        while not done.is_set():
            await asyncio.sleep(0.01)

    thread = threading.Thread(target=asyncio.run, args=(hold(),))
    thread.start()
    try:
        assert started.wait(TIMEOUT)
        assert broadcaster.running
        with pytest.raises(RuntimeError, match='another event loop'):
            asyncio.run(broadcaster.start())
    finally:
        done.set()
        thread.join(TIMEOUT)
    # The first loop has ended: a new one may take the broadcaster over.
    asyncio.run(broadcaster.start())
    assert broadcaster.backend is not None


def test_publish_threadsafe_from_another_thread():
    broadcaster = bc.Broadcaster()
    ws, sent = make_socket()
    errors: list[BaseException] = []

    async def scenario() -> None:
        await broadcaster.join(ws, 'g')

        def from_thread() -> None:
            try:
                broadcaster.publish_threadsafe('g', b'bytes')
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        await asyncio.to_thread(from_thread)
        await ws.membership.outbox.flush(TIMEOUT)
        with pytest.raises(RuntimeError, match='from the event loop'):
            broadcaster.publish_threadsafe('g', 'x')
        await broadcaster.close()

    asyncio.run(scenario())
    assert errors == []
    assert sent == [{'type': 'websocket.send', 'bytes': b'bytes'}]


def test_publish_threadsafe_times_out():
    class Stuck(backends.MemoryBackend):
        async def publish(self, channel: str, payload: bytes) -> None:
            await asyncio.sleep(60)

    broadcaster = bc.Broadcaster(factory=Stuck)
    broadcaster.publish_timeout = 0.2

    async def scenario() -> float:
        await broadcaster.start()
        started = time.monotonic()
        with pytest.raises(bc.BroadcastError, match='took more than 0.2'):
            await asyncio.to_thread(broadcaster.publish_threadsafe, 'g', 'x')
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 2


def test_publish_with_no_loop_uses_a_short_lived_backend():
    published: list[tuple[str, bytes]] = []

    class Recording(backends.MemoryBackend):
        async def publish(self, channel: str, payload: bytes) -> None:
            published.append((channel, payload))

    broadcaster = bc.Broadcaster('record://', factory=Recording)
    broadcaster.publish_threadsafe('g', 'hi')
    assert published == [('g', b'thi')]
    assert broadcaster.published == 1


def test_request_broadcast_in_a_plain_wsgi_app():
    """No server loop at all (WebTest): the memory backend returns."""

    def view(request: Any) -> Any:
        request.broadcast('g', {'from': 'view'})
        return request.response

    with Configurator() as config:
        config.include('pyramid_asgi_ws')
        config.add_route('pub', '/pub')
        config.add_view(view, route_name='pub')
        wsgi = config.make_wsgi_app()
    started = time.monotonic()
    webtest.TestApp(wsgi).get('/pub', status=200)
    assert time.monotonic() - started < 1
    assert bc.get_broadcaster(wsgi.registry).published == 1


# -- the memory backend on real servers ---------------------------------------


@pytest.fixture(scope='module')
def app():
    """tests/apps/groups.py on uvicorn, memory backend, ticker on."""
    with serve(
        'uvicorn', 'tests.apps.groups:app', {'GROUPS_TICKER': '1'}
    ) as server:
        yield server


def test_join_leave_and_auto_leave(app):
    async def scenario() -> None:
        async with connect(app.ws_url + '/groups?name=ann') as a:
            async with listening(app.ws_url + '/listen/jl') as b:
                await command(a, op='join', group='jl')
                me = (await command(a, op='stats'))['id']
                members = await command(a, op='members', group='jl')
                assert members['members'][me] == {'name': 'ann'}
                assert len(members['members']) == 2
                await command(a, op='leave', group='jl')
                await command(a, op='publish', group='jl', message='after')
                assert await recv(b) == 'after'
                assert await collect(a) == []
                assert (await command(a, op='stats'))['groups'] == []
            # b has closed: it left the group by itself.
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline:
                found = await command(a, op='members', group='jl')
                if not found['members']:
                    break
                await asyncio.sleep(0.02)
            assert found['members'] == {}
            stats = (await command(a, op='stats'))['stats']
            assert 'jl' not in stats['groups']

    asyncio.run(scenario())


def test_publish_from_a_sync_view(app):
    async def scenario() -> None:
        async with listening(app.ws_url + '/listen/view') as ws:
            url = app.url + '/publish/view'
            assert await apost(url + '?kind=text', 'héllo'.encode()) == (
                200,
                b'published',
            )
            assert await recv(ws) == 'héllo'
            await apost(url + '?kind=bytes', b'\x00\x01')
            assert await recv(ws) == b'\x00\x01'
            await apost(url + '?kind=json', b'{"a": [1, 2]}')
            assert json.loads(await recv(ws)) == {'a': [1, 2]}

    asyncio.run(scenario())


def test_publish_from_async_code(app):
    async def scenario() -> None:
        async with connect(app.ws_url + '/groups') as a:
            async with listening(app.ws_url + '/listen/async') as b:
                for kind, value, expected in (
                    ('text', 'hi', 'hi'),
                    ('bytes', 'hi', b'hi'),
                    ('json', {'k': 'v'}, '{"k":"v"}'),
                ):
                    await command(
                        a,
                        op='publish',
                        group='async',
                        message=value,
                        kind=kind,
                    )
                    assert await recv(b) == expected

    asyncio.run(scenario())


def test_on_group_message_hook(app):
    async def scenario() -> None:
        async with listening(app.ws_url + '/hooked/hk') as ws:
            await apost(app.url + '/publish/hk?kind=bytes', b'raw')
            assert json.loads(await recv(ws)) == {
                'hooked': 'hk',
                'message': {'bytes': 'raw'},
            }

    asyncio.run(scenario())


def test_background_task_publishes(app):
    async def scenario() -> None:
        async with listening(app.ws_url + '/listen/ticker') as ws:
            first = json.loads(await recv(ws))
            second = json.loads(await recv(ws))
            assert second['tick'] > first['tick']

    asyncio.run(scenario())


def flood_numbers(messages: list[Any]) -> list[int]:
    return [int(message[:6]) for message in messages]


async def stalled_client(url: str) -> Any:
    """A client that stops reading almost at once: a tiny receive buffer
    (set before connecting, so the kernel does not grow it) and a
    one-message queue."""
    host, port = url.split('//', 1)[1].split('/', 1)[0].split(':')
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    # No compression: the numbered, padded messages would shrink to nothing.
    ws = await websockets.connect(
        url, sock=sock, max_queue=1, max_size=None, compression=None
    )
    assert await recv(ws) == 'joined'
    return ws


def test_slow_socket_does_not_delay_the_others(app):
    """A client that stops reading loses the oldest messages (its queue
    holds 4); a reading client gets all of them, promptly."""
    count, size = 300, 32 * 1024

    async def scenario() -> None:
        slow = await stalled_client(app.ws_url + '/slow/flood')
        try:
            async with (
                listening(app.ws_url + '/listen/flood', max_size=None) as fast,
                connect(app.ws_url + '/groups') as pub,
            ):
                started = time.monotonic()
                await command(
                    pub, op='flood', group='flood', count=count, size=size
                )
                got = [await recv(fast) for _ in range(count)]
                elapsed = time.monotonic() - started
                assert flood_numbers(got) == list(range(count))
                assert elapsed < 3, elapsed
                stats = (await command(pub, op='stats'))['stats']
                assert stats['dropped'] > 0
            numbers = flood_numbers(await collect(slow, 0.5))
            assert numbers[-1] == count - 1
            assert len(numbers) < count
        finally:
            await slow.close()

    asyncio.run(scenario())


def test_full_queue_with_close_policy_closes_with_1013(app):
    async def scenario() -> None:
        slow = await stalled_client(app.ws_url + '/closing/cl')
        async with connect(app.ws_url + '/groups') as pub:
            await command(pub, op='flood', group='cl', count=300, size=32768)
        with pytest.raises(websockets.ConnectionClosed) as info:
            for _ in range(400):
                await recv(slow)
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == 1013

    asyncio.run(scenario())


@pytest.mark.parametrize('kind', SERVERS)
def test_memory_backend_on_each_server(kind):
    """No lifespan on daphne: the broadcaster starts on first use."""
    with serve(kind, 'tests.apps.groups:app') as server:

        async def scenario() -> None:
            # Before any socket joined: the view publishes to nobody.
            assert await apost(server.url + '/publish/s', b'early') == (
                200,
                b'published',
            )
            async with (
                listening(server.ws_url + '/listen/s') as listener,
                connect(server.ws_url + '/groups') as a,
            ):
                await command(a, op='join', group='s')
                await apost(server.url + '/publish/s', b'from view')
                assert await recv(listener) == 'from view'
                await command(a, op='publish', group='s', message='async')
                assert await recv(listener) == 'async'

        asyncio.run(scenario())


def test_closed_broadcaster_refuses_until_started_again():
    broadcaster = bc.Broadcaster('memory://')

    async def go():
        await broadcaster.publish('g', 'before')  # first use starts it
        await broadcaster.close()
        with pytest.raises(bc.BroadcastError, match='closed'):
            await broadcaster.publish('g', 'late')
        assert broadcaster.backend is None  # nothing was reconnected
        await broadcaster.start()
        await broadcaster.publish('g', 'again')
        await broadcaster.close()

    asyncio.run(go())


def test_a_failed_subscribe_raises_from_join_and_leaves_nothing():
    attempts: list[str] = []

    class Refusing(backends.MemoryBackend):
        refuse = True

        async def subscribe(self, channel: str) -> None:
            attempts.append(channel)
            if self.refuse:
                raise bc.BroadcastError('cannot subscribe')
            await super().subscribe(channel)

    async def scenario() -> list[dict[str, Any]]:
        broadcaster = bc.Broadcaster(factory=Refusing)
        first, _ = make_socket()
        second, sent = make_socket()
        with pytest.raises(bc.BroadcastError, match='cannot subscribe'):
            await broadcaster.join(first, 'g')
        assert broadcaster.groups == {} and first.groups == set()
        assert await broadcaster.members('g') == {}
        Refusing.refuse = False
        await broadcaster.join(second, 'g')  # subscribes afresh
        await broadcaster.publish('g', 'heard')
        await second.membership.outbox.flush(TIMEOUT)
        await broadcaster.close()
        return sent

    assert asyncio.run(scenario()) == [
        {'type': 'websocket.send', 'text': 'heard'}
    ]
    assert attempts == ['g', 'g']


def test_a_closed_broadcaster_refuses_publish_threadsafe():
    broadcaster = bc.Broadcaster('memory://')

    async def go() -> None:
        await broadcaster.start()
        await broadcaster.close()
        with pytest.raises(bc.BroadcastError, match='closed'):
            await asyncio.to_thread(broadcaster.publish_threadsafe, 'g', 'x')
        with pytest.raises(bc.BroadcastError, match='closed'):
            await broadcaster.members('g')

    asyncio.run(go())
    # with no loop at all, it does not quietly publish either
    with pytest.raises(bc.BroadcastError, match='closed'):
        broadcaster.publish_threadsafe('g', 'x')
    assert broadcaster.published == 0


def test_request_broadcast_after_the_broadcaster_closed():
    def view(request: Any) -> Any:
        try:
            request.broadcast('g', 'late')
        except bc.BroadcastError as exc:
            return Response(str(exc), status=503)
        return Response('published')  # pragma: no cover - the bug

    with Configurator() as config:
        config.include('pyramid_asgi_ws')
        config.add_route('pub', '/pub')
        config.add_view(view, route_name='pub')
        wsgi = config.make_wsgi_app()
    client = webtest.TestApp(wsgi)
    client.get('/pub', status=200)
    broadcaster = bc.get_broadcaster(wsgi.registry)
    asyncio.run(broadcaster.close())
    response = client.get('/pub', status=503)
    assert 'the broadcaster is closed' in response.text
    assert broadcaster.published == 1


@pytest.mark.parametrize(
    'ttl, message',
    [('0', 'at least 1'), ('0.5', 'at least 1'), ('-3', 'at least 1'),
     ('soon', 'number of seconds'), ('inf', 'presence_ttl')],
)  # fmt: skip
def test_presence_ttl_is_checked_at_configuration(config, ttl, message):
    config.registry.settings['asgi_ws.broadcast_url'] = (
        f'redis://127.0.0.1:1/0?presence_ttl={ttl}'
    )
    with pytest.raises(ConfigurationError, match=message) as info:
        config.commit()
    assert 'presence_ttl' in str(info.value) and ttl in str(info.value)


def test_presence_ttl_of_one_second_is_accepted(config):
    config.registry.settings['asgi_ws.broadcast_url'] = (
        'redis://127.0.0.1:1/0?presence_ttl=1&prefix=x:'
    )
    config.commit()
    assert bc.get_broadcaster(config.registry).url.endswith('prefix=x:')
    assert (
        backends.RedisBackend('redis://h/0?presence_ttl=1').presence_ttl == 1
    )


def test_a_member_that_fails_costs_the_others_nothing(caplog):
    class Broken:
        identifier = None
        presence = None
        dropped = 0

        def __init__(self) -> None:
            self.groups: set[str] = set()

        def deliver(self, group: str, payload: Any) -> bool:
            raise RuntimeError('broken member')

    async def scenario() -> list[dict[str, Any]]:
        broadcaster = bc.Broadcaster()
        await broadcaster.join(Broken(), 'g')
        ws, sent = make_socket()
        await broadcaster.join(ws, 'g')
        await broadcaster.publish('g', 'still')
        await ws.membership.outbox.flush(TIMEOUT)
        assert broadcaster.delivered == 1
        await broadcaster.close()
        return sent

    assert asyncio.run(scenario()) == [
        {'type': 'websocket.send', 'text': 'still'}
    ]
    assert 'delivering to member' in caplog.text


def test_backend_factory_takes_any_callable(monkeypatch):
    def plain(url: str) -> Any:
        return backends.MemoryBackend(url)

    monkeypatch.setitem(backends.BACKENDS, 'plain', plain)
    assert backends.backend_factory('plain://') is plain
    assert backends.backend_factory('memory://') is backends.MemoryBackend
