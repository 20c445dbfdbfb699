"""Catching groups up after a worker lost its Redis subscription, through
two real uvicorn workers and a real ``redis-server``.

The subscription is cut by Redis itself: ``CLIENT KILL TYPE pubsub``
closes every pub/sub connection (the streams keep their data), and an
ACL rule refusing ``SUBSCRIBE`` keeps the workers from subscribing again
(publishing and reading history still work) until the test allows it,
so that what is published meanwhile surely misses them live.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
import contextlib
import json
import time
from typing import Any

from pyramid.config import Configurator
import pytest
import redis as redis_py
import websockets

from pyramid_asgi_ws import StreamClosed, backends
from pyramid_asgi_ws import broadcast as bc
from pyramid_asgi_ws.broadcast import history, streams
from pyramid_asgi_ws.broadcast.codec import Payload, encode
from pyramid_asgi_ws.testing import TestClient
from tests.redis_support import RedisServer, redis_available
from tests.support import ServerProcess, serve
from tests.test_broadcast import TIMEOUT, connect, make_socket
from tests.test_history import APP, joined, quiet, take, url

pytestmark = pytest.mark.skipif(
    not redis_available(), reason='needs redis-server'
)

#: Seconds a worker may take to subscribe again and catch up (its
#: reconnection delay doubles up to 5 s while Redis refuses it).
BACK = 30.0


@contextlib.contextmanager
def two_workers(
    size: int = 1000,
) -> Iterator[tuple[redis_py.Redis, ServerProcess, ServerProcess]]:
    """A Redis, a test client of it, and two workers sharing it."""
    with RedisServer() as server:
        env = {'BROADCAST_URL': server.url, 'HISTORY_SIZE': str(size)}
        client = redis_py.Redis.from_url(server.url)
        with serve('uvicorn', APP, env) as a, serve('uvicorn', APP, env) as b:
            yield client, a, b
        client.close()


async def cut(client: redis_py.Redis, group: str) -> None:
    """Close every pub/sub connection and keep them from subscribing
    again; return once nobody is subscribed to ``group``."""
    client.acl_setuser(
        'default', enabled=True, nopass=True, commands=['-subscribe']
    )
    assert client.client_kill_filter(_type='pubsub') >= 1
    deadline = time.monotonic() + TIMEOUT
    while client.pubsub_numsub(f'asgi_ws:{group}')[0][1]:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


async def mend(client: redis_py.Redis, group: str, count: int = 2) -> None:
    """Let the workers subscribe again; return once ``count`` are."""
    client.acl_setuser(
        'default', enabled=True, nopass=True, commands=['+subscribe']
    )
    deadline = time.monotonic() + BACK
    while client.pubsub_numsub(f'asgi_ws:{group}')[0][1] < count:
        assert time.monotonic() < deadline, client.client_list()
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def joined_on(
    a: ServerProcess, b: ServerProcess, group: str
) -> AsyncIterator[tuple[Any, Any]]:
    """A client on ``a`` and one on ``b``, both in ``group``."""
    async with connect(url(a, group)) as one, connect(url(b, group)) as two:
        for ws in (one, two):
            assert await joined(ws) == ([], True)
        yield one, two


async def publish(ws: Any, count: int, start: int) -> None:
    """Have the worker of ``ws`` publish ``{"n": start}``...; return once
    it has."""
    await ws.send(f'publish {count} {start}')
    deadline = time.monotonic() + TIMEOUT
    while True:
        left = deadline - time.monotonic()
        data = json.loads(await asyncio.wait_for(ws.recv(), left))
        if data.get('published') == count:
            return


@pytest.mark.parametrize('before', [0, 5], ids=['quiet', 'talking'])
def test_a_worker_cut_off_catches_its_members_up(before):
    """A client on A is in a group with history; A's subscription is cut
    while B publishes 50 messages: the client gets all 50 once each, in
    order, then the live ones. A quiet group (nothing heard on A yet) is
    caught up from where its history ended when A subscribed to it."""

    async def scenario(client: Any, a: ServerProcess, b: ServerProcess):
        async with joined_on(a, b, 'room') as (member, publisher):
            if before:
                await publisher.send(f'publish {before} 0')
                assert [n for _, n in await take(member, before)] == list(
                    range(before)
                )
            await cut(client, 'room')
            await publish(publisher, 50, before)
            assert [m for m in await quiet(member) if '"p"' in m] == []
            await mend(client, 'room')
            got = await take(member, 50, BACK)
            assert [n for _, n in got] == list(range(before, before + 50))
            await publisher.send(f'publish 3 {before + 50}')
            live = await take(member, 3, TIMEOUT)
            assert [n for _, n in live] == list(
                range(before + 50, before + 53)
            )
            assert [m for m in await quiet(member) if '"p"' in m] == []
            # the positions are those of the stream, in order
            kept = client.xrange('asgi_ws:history:room')
            ids = [entry.decode() for entry, _ in kept]
            assert [p for p, _ in got + live] == ids[before:]

    with two_workers() as (client, a, b):
        asyncio.run(scenario(client, a, b))
        assert 'Traceback' not in a.log() + b.log()


def test_a_join_with_since_while_cut_off_is_caught_up_too():
    """A client joins A with ``since`` while A cannot subscribe: its
    replay is whole, and what B publishes until A subscribes again
    reaches it after, once each, in order, as it reaches the member that
    was there before. (The group has a member on A already: a first join
    of a group while the subscription looks alive but is refused would
    raise, as documented.)"""

    async def scenario(client: Any, a: ServerProcess, b: ServerProcess):
        async with joined_on(a, b, 'late') as (watcher, publisher):
            await publish(publisher, 3, 0)
            had = await take(watcher, 3)
            await cut(client, 'late')
            async with connect(url(a, 'late', had[1][0])) as member:
                replayed, whole = await joined(member)
                assert (replayed, whole) == (had[2:], True)
                await publish(publisher, 50, 3)
                await mend(client, 'late')
                for ws in (member, watcher):
                    got = await take(ws, 50, BACK)
                    assert [n for _, n in got] == list(range(3, 53))
                await publisher.send('publish 1 53')
                for ws in (member, watcher):
                    assert [n for _, n in await take(ws, 1)] == [53]
                    assert [m for m in await quiet(ws) if '"p"' in m] == []

    with two_workers() as (client, a, b):
        asyncio.run(scenario(client, a, b))


def test_a_history_trimmed_meanwhile_closes_with_1012():
    """More than the history holds is published while A is cut off: the
    client on A is closed with 1012, and, reconnecting with the position
    it had, learns that messages are missing (``joined`` is false)."""

    async def scenario(client: Any, a: ServerProcess, b: ServerProcess):
        async with joined_on(a, b, 'small') as (member, publisher):
            await publisher.send('publish 5 0')
            had = await take(member, 5)
            await cut(client, 'small')
            await publish(publisher, 400, 5)
            await mend(client, 'small', 0)  # both are closed
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await take(member, 1, BACK)
            assert closed.value.rcvd.code == 1012
        async with connect(url(a, 'small', had[-1][0])) as back:
            assert await joined(back) == ([], False)

    with two_workers(size=10) as (client, a, b):
        asyncio.run(scenario(client, a, b))
        assert 'were lost while the subscription was down' in a.log()


@pytest.mark.parametrize('persist', [True, False], ids=['kept', 'lost'])
def test_a_restart_of_redis(persist):
    """Redis restarts under a worker whose clients are in two groups,
    one that has had messages and one that has had none. Kept on disk,
    what is published before the worker subscribes again reaches both
    once, in order. Without its data, the talking group's history no
    longer reaches back: its client is closed with 1012; the quiet one
    had nothing to lose and stays, live."""

    async def scenario(server: RedisServer, a: ServerProcess) -> None:
        publisher = backends.RedisBackend(server.url)
        async with (
            connect(url(a, 'talking')) as talking,
            connect(url(a, 'quiet')) as quiet_one,
        ):
            for ws in (talking, quiet_one):
                assert await joined(ws) == ([], True)
            await publisher.append('talking', encode({'n': 0}), 1000, None)
            assert [n for _, n in await take(talking, 1)] == [0]
            await asyncio.to_thread(server.restart)
            for number in range(1, 21):
                for group in ('talking', 'quiet'):
                    message = encode({'n': number})
                    await publisher.append(group, message, 1000, None)
            if persist:
                for ws in (talking, quiet_one):
                    got = await take(ws, 20, BACK)
                    assert [n for _, n in got] == list(range(1, 21))
            else:
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await take(talking, 100, BACK)
                assert closed.value.rcvd.code == 1012
                got = await take(quiet_one, 20, BACK)
                assert [n for _, n in got] == list(range(1, 21))
            await publisher.append('quiet', encode({'n': 21}), 1000, None)
            assert [n for _, n in await take(quiet_one, 1)] == [21]
            assert [m for m in await quiet(quiet_one) if '"p"' in m] == []
        await publisher.disconnect()

    with RedisServer(persist=persist) as server:
        with serve('uvicorn', APP, {'BROADCAST_URL': server.url}) as a:
            asyncio.run(scenario(server, a))
            assert 'Traceback' not in a.log()


# -- in one process, the memory backend standing in --------------------------


class Member:
    """A group member that records the numbers it gets, and whether it
    was told it lost some."""

    def __init__(self, lost: bool = True) -> None:
        self.identifier: str | None = None
        self.groups: set[str] = set()
        self.presence: Any = None
        self.dropped = 0
        self.got: list[Any] = []
        self.told: list[str] = []
        if lost:
            self.lost = self.told.append

    def deliver(self, group: str, payload: Payload) -> bool:
        self.got.append(payload.value())
        return True


async def started(size: int = 100) -> Any:
    broadcaster = bc.Broadcaster()
    broadcaster.history = history.HistoryPolicy(
        size, rules=(('plain', None, None),)
    )
    await broadcaster.start()
    return broadcaster


async def missed(broadcaster: Any, group: str, numbers: range) -> None:
    """Publish ``numbers`` to ``group`` as if the subscription were down:
    kept in the history, heard by nobody here."""
    backend = broadcaster.backend
    on_message, backend.on_message = backend.on_message, None
    for number in numbers:
        await broadcaster.publish(group, number)
    backend.on_message = on_message


async def settled(broadcaster: Any) -> None:
    await asyncio.gather(*broadcaster.recovery.tasks)


def run(scenario: Any) -> None:
    asyncio.run(asyncio.wait_for(scenario(), TIMEOUT))


def test_a_catch_up_merges_with_the_live_stream():
    """Live messages that arrive while the history is read are held, then
    handed over behind it; their copies the catch-up read are dropped."""

    async def scenario() -> None:
        broadcaster = await started()
        member = Member()
        await broadcaster.join(member, 'g')
        await broadcaster.publish('g', 0)
        await missed(broadcaster, 'g', range(1, 4))
        broadcaster.recovery.resubscribed('g')
        broadcaster.recovery.resubscribed('g')  # one catch-up at a time
        await broadcaster.publish('g', 4)  # live, held behind the history
        await settled(broadcaster)
        await broadcaster.publish('g', 5)
        assert member.got == [0, 1, 2, 3, 4, 5]
        assert broadcaster.recovery.catching == {}
        assert broadcaster.recovery.recovered == 4  # 4 came in its place
        await broadcaster.close()

    run(scenario)


def test_nothing_to_catch_up_from():
    """No history, no position yet, or a closed broadcaster: nothing is
    read."""

    async def scenario() -> None:
        broadcaster = await started()
        recovery = broadcaster.recovery
        member = Member()
        await broadcaster.join(member, 'plain')
        await broadcaster.join(member, 'g')
        recovery.resubscribed('plain')
        recovery.resubscribed('g')  # memory:// has no tail: no position
        assert recovery.tasks == set()
        await broadcaster.close()
        recovery.last['g'] = 'x'
        recovery.backend = None
        recovery.resubscribed('g')
        assert recovery.tasks == set()

    run(scenario)


def test_a_trimmed_history_tells_every_member(caplog):
    """The history no longer reaches back: each local member is told
    (through a replay standing in for one joining meanwhile too); one
    that cannot be told is logged."""

    async def scenario() -> None:
        broadcaster = await started(size=3)
        told, mute, joining = Member(), Member(lost=False), Member()
        for member in (told, mute):
            await broadcaster.join(member, 'g')
        await broadcaster.publish('g', 0)
        stand_in = history.Replay(broadcaster.backend, joining, 'g', 3, 'x')
        broadcaster._groups['g'].add(stand_in)
        await missed(broadcaster, 'g', range(1, 10))
        broadcaster.recovery.resubscribed('g')
        await settled(broadcaster)
        assert told.told == joining.told == ['g']
        assert broadcaster.recovery.lost == 1
        await broadcaster.publish('g', 10)
        assert told.got == [0, 10]
        await broadcaster.close()

    run(scenario)
    assert 'cannot be told' in caplog.text


def test_a_failing_read_is_tried_again(caplog):
    async def scenario() -> None:
        broadcaster = await started()
        broadcaster.recovery.retry_min = 0.01
        member = Member()
        await broadcaster.join(member, 'g')
        await broadcaster.publish('g', 0)
        await missed(broadcaster, 'g', range(1, 3))
        backend = broadcaster.backend
        read, failures = backend.read, [bc.BroadcastError('away')] * 2

        async def flaky(*args: Any) -> Any:
            if failures:
                raise failures.pop()
            return await read(*args)

        backend.read = flaky
        broadcaster.recovery.resubscribed('g')
        await settled(broadcaster)
        assert member.got == [0, 1, 2]
        await broadcaster.close()

    run(scenario)
    assert 'retrying in 0.0 s' in caplog.text


def test_leaving_or_closing_ends_a_catch_up():
    """The last member leaving ends the catch-up that Redis keeps
    failing; closing the broadcaster cancels one."""

    async def scenario() -> None:
        broadcaster = await started()
        recovery = broadcaster.recovery
        recovery.retry_min = 0.01
        member = Member()
        for group in ('g', 'h'):
            await broadcaster.join(member, group)
            await broadcaster.publish(group, 0)

        async def away(*args: Any) -> Any:
            raise bc.BroadcastError('away')

        broadcaster.backend.read = away
        recovery.resubscribed('g')
        recovery.resubscribed('h')
        await asyncio.sleep(0.05)
        await broadcaster.leave(member, 'g')
        assert 'g' not in recovery.last and 'g' not in recovery.catching
        await asyncio.sleep(0.05)
        assert len(recovery.tasks) == 1  # h's
        await broadcaster.close()
        assert recovery.tasks == set() and recovery.catching == {}
        assert recovery.lost == 0

    run(scenario)


def test_where_a_group_ends_is_noted_when_it_is_subscribed(caplog):
    """A backend that can say where a history ends (Redis's ``tail``) is
    asked on a group's first join; one that fails then is logged, and a
    subscription that fails leaves no position behind."""

    async def scenario() -> None:
        broadcaster = await started()
        backend, recovery = broadcaster.backend, broadcaster.recovery
        tails = ['0-0', bc.BroadcastError('away'), '7-1']

        async def tail(group: str) -> str:
            found = tails.pop(0)
            if isinstance(found, Exception):
                raise found
            return found

        backend.tail = tail
        await broadcaster.join(Member(), 'g')
        await broadcaster.join(Member(), 'h')
        assert recovery.last == {'g': '0-0'}
        subscribe = backend.subscribe

        async def refused(group: str) -> None:
            raise bc.BroadcastError('refused')

        backend.subscribe = refused
        with pytest.raises(bc.BroadcastError):
            await broadcaster.join(Member(), 'i')
        assert 'i' not in recovery.last
        backend.subscribe = subscribe
        await broadcaster.close()

    run(scenario)
    assert 'cannot be caught up from before its first message' in caplog.text


def test_a_connection_told_it_lost_messages_closes_with_1012():
    async def scenario() -> None:
        ws, sent = make_socket()
        ws.membership.lost('g')
        ws.membership.lost('h')  # once
        await ws.membership.outbox.flush()
        assert [m['code'] for m in sent] == [1012]

    run(scenario)


def test_redis_tail_and_a_read_from_the_start(redis_server):
    """``tail`` is where a stream ends (START when there is none); a read
    from START is the whole stream, unless it was ever trimmed."""

    async def scenario() -> None:
        backend = backends.RedisBackend(redis_server.url)
        assert await backend.tail('g') == streams.START
        assert await backend.read('g', streams.START, 10) == []
        await backend.append('g', b'a', 100, None)
        await backend.append('g', b'b', 100, None)
        first = await backend.read('g', streams.START, 10)
        assert [data for _, data in first] == [b'a', b'b']
        assert await backend.tail('g') == first[-1][0]
        await backend.client.xtrim(
            'asgi_ws:history:g', maxlen=1, approximate=False
        )
        assert await backend.read('g', streams.START, 10) is None
        await asyncio.to_thread(redis_server.stop)
        with pytest.raises(bc.BroadcastError, match='cannot read'):
            await backend.tail('g')
        await backend.client.aclose()

    run(scenario)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


async def followed(stream: Any) -> None:
    await stream.join(stream.matchdict['group'])
    stream.push('in', event='joined')
    await stream.wait_closed()


def test_an_event_stream_that_lost_messages_ends():
    """A server-sent events stream told it lost messages ends, so that
    the browser reconnects with its Last-Event-ID (and learns it)."""
    settings = {'asgi_ws.history_size': '3'}
    with Configurator(settings=settings) as config:
        config.include('pyramid_asgi_ws')
        config.add_asgi_consumer('/follow/{group}', followed, protocol='sse')
        app = config.make_asgi_app()
    with TestClient(app) as client, client.sse('/follow/g') as stream:
        assert stream.receive().event == 'joined'
        broadcaster = bc.get_broadcaster(client.app.registry)

        async def lose() -> None:
            await broadcaster.publish('g', 0)
            await missed(broadcaster, 'g', range(1, 10))
            broadcaster.recovery.resubscribed('g')
            await settled(broadcaster)

        client.call(lose)
        assert stream.receive().data == '0'
        with pytest.raises(StreamClosed):
            stream.receive()
