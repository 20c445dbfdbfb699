"""The Redis backend against a real ``redis-server`` this suite starts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
import contextlib
import json
import signal
import time
from typing import Any

from pyramid.config import Configurator
import pytest
import webtest

from pyramid_asgi_ws import backends
from pyramid_asgi_ws import broadcast as bc
from tests.redis_support import RedisServer
from tests.support import ServerProcess, serve
from tests.test_broadcast import (
    TIMEOUT,
    apost,
    collect,
    command,
    connect,
    http,
    listening,
    recv,
)

APP = 'tests.apps.groups:app'


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@contextlib.contextmanager
def two_servers(url: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two uvicorn processes sharing the Redis at ``url``."""
    env = {'BROADCAST_URL': url}
    with serve('uvicorn', APP, env) as one, serve('uvicorn', APP, env) as two:
        yield one, two


async def until(check: Any, timeout: float = 10.0, every: float = 0.1) -> Any:
    """Await ``check()`` until it returns something true, or fail."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, 'gave up waiting'
        await asyncio.sleep(every)


# -- the backend alone ------------------------------------------------------


def test_backend_publish_subscribe_presence(redis):
    async def scenario() -> None:
        got: list[tuple[str, bytes]] = []
        backend = backends.RedisBackend(
            redis.url + '?prefix=t1:&presence_ttl=5'
        )
        assert backend.prefix == 't1:' and backend.presence_ttl == 5
        await backend.connect(lambda c, p, _: got.append((c, p)))
        await backend.subscribe('room')
        await asyncio.wait_for(backend.connected.wait(), TIMEOUT)
        await backend.subscribe('other')
        await backend.add_member('room', 'm.1', b'{"name":"ann"}')
        await backend.publish('room', b'thello')
        await backend.publish('other', b'bbytes')
        await until(lambda: asyncio.sleep(0, len(got) == 2))
        assert got == [('room', b'thello'), ('other', b'bbytes')]
        assert await backend.members('room') == {'m.1': b'{"name":"ann"}'}
        await backend.unsubscribe('other')
        await backend.remove_member('room', 'm.1')
        await backend.remove_member('room', 'm.1')  # twice: nothing
        assert await backend.members('room') == {}
        await backend.add_member('room', 'm.2', b'null')
        await backend.disconnect()  # takes its members out
        other = backends.RedisBackend(redis.url + '?prefix=t1:')
        assert await other.members('room') == {}
        await other.disconnect()

    asyncio.run(scenario())


def test_backend_survives_redis_going_away(redis, caplog):
    """Publishing fails fast and clearly; the subscription comes back by
    itself, with the channels joined meanwhile, and presence rewritten."""

    async def scenario() -> None:
        got: list[bytes] = []
        backend = backends.RedisBackend(redis.url)
        backend.reconnect_max = 0.5
        await backend.connect(lambda c, payload, _: got.append(payload))
        await backend.subscribe('a')
        await backend.add_member('a', 'm.1', b'1')
        await asyncio.wait_for(backend.connected.wait(), TIMEOUT)
        await asyncio.to_thread(redis.stop)
        await until(lambda: asyncio.sleep(0, not backend.connected.is_set()))
        started = time.monotonic()
        with pytest.raises(bc.BroadcastError, match='unreachable'):
            await backend.publish('a', b'tx')
        with pytest.raises(bc.BroadcastError, match='cannot list'):
            await backend.members('a')
        assert time.monotonic() - started < 2
        await backend.subscribe('b')  # while down: on reconnection
        await backend.add_member('b', 'm.2', b'2')  # logged, kept
        await backend.remove_member('a', 'm.1')  # logged
        await backend.add_member('a', 'm.1', b'1')
        await asyncio.to_thread(redis.start)
        await asyncio.wait_for(backend.connected.wait(), TIMEOUT)
        await backend.publish('b', b'tback')
        await until(lambda: asyncio.sleep(0, got == [b'tback']))
        assert await backend.members('a') == {'m.1': b'1'}
        assert await backend.members('b') == {'m.2': b'2'}
        assert backend.reconnects >= 1
        await backend.disconnect()

    asyncio.run(scenario())
    assert 'Redis subscription at 127.0.0.1' in caplog.text
    assert 'restored' in caplog.text


def test_backend_dispatch_ignores_strangers_and_survives_errors(caplog):
    backend = backends.RedisBackend('redis://127.0.0.1:1/0?prefix=p:')
    backend._dispatch(b'p:g', b'tx')  # not connected yet: nothing
    got: list[tuple[str, bytes]] = []
    backend.on_message = lambda channel, payload, position: got.append(
        (channel, payload)
    )
    backend._dispatch(b'other:g', b'tx')
    backend._dispatch(b'p:g', b'ty')
    assert got == [('g', b'ty')]

    def fail(channel: str, payload: bytes, position: None) -> None:
        raise ValueError('bad payload')

    backend.on_message = fail
    backend._dispatch(b'p:g', b'tz')
    assert 'delivering a message from p:g failed' in caplog.text


def test_backend_disconnects_while_redis_is_down(redis):
    async def scenario() -> None:
        backend = backends.RedisBackend(redis.url)
        await backend.connect(lambda channel, payload, position: None)
        await backend.add_member('g', 'm.1', b'null')
        await asyncio.to_thread(redis.stop)
        started = time.monotonic()
        await backend.disconnect()  # the members expire by themselves
        assert time.monotonic() - started < backend.timeout + 1

    asyncio.run(scenario())


def test_backend_with_a_hung_redis(redis):
    """A Redis that stops answering (SIGSTOP) makes publishing fail within
    the command timeout, and the silent subscription is dropped and
    remade once it answers again."""

    async def scenario() -> None:
        backend = backends.RedisBackend(redis.url)
        backend.ping_after, backend.dead_after = 0.2, 0.8
        backend.reconnect_max = 0.3
        got: list[bytes] = []
        await backend.connect(lambda c, payload, _: got.append(payload))
        await backend.subscribe('h')
        await asyncio.wait_for(backend.connected.wait(), TIMEOUT)
        assert redis.proc is not None
        redis.proc.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(bc.BroadcastError, match='TimeoutError'):
                await backend.publish('h', b'tx')
            assert time.monotonic() - started < backend.timeout + 1
            await until(lambda: asyncio.sleep(0, backend.reconnects > 0))
        finally:
            redis.proc.send_signal(signal.SIGCONT)
        await asyncio.wait_for(backend.connected.wait(), 3 * TIMEOUT)
        await backend.publish('h', b'tok')
        await until(lambda: asyncio.sleep(0, b'tok' in got))
        await backend.disconnect()

    asyncio.run(scenario())


def test_request_broadcast_with_no_loop_reaches_a_server(redis):
    """A WSGI app served without any event loop (WebTest) publishes
    through a short-lived connection; a socket on a real server gets it."""

    def view(request: Any) -> Any:
        request.broadcast('noloop', b'from webtest')
        return request.response

    settings = {'asgi_ws.broadcast_url': redis.url}
    with Configurator(settings=settings) as config:
        config.include('pyramid_asgi_ws')
        config.add_route('pub', '/pub')
        config.add_view(view, route_name='pub')
        wsgi = config.make_wsgi_app()
    with serve('uvicorn', APP, {'BROADCAST_URL': redis.url}) as server:

        async def scenario() -> None:
            async with connect(server.ws_url + '/groups') as ws:
                await command(ws, op='join', group='noloop')
                await asyncio.to_thread(webtest.TestApp(wsgi).get, '/pub')
                assert await recv(ws) == b'from webtest'

        asyncio.run(scenario())


# -- two server processes on one Redis --------------------------------------


def test_cross_process_groups_and_presence(redis):
    with two_servers(redis.url) as (one, two):

        async def scenario() -> None:
            async with (
                connect(one.ws_url + '/groups?name=ann') as ann,
                connect(two.ws_url + '/groups?name=bob') as bob,
                listening(one.ws_url + '/listen/room') as local,
            ):
                for ws in (ann, bob):
                    await command(ws, op='join', group='room')
                # From a sync view on one: both processes deliver.
                assert await apost(one.url + '/publish/room', b'hi') == (
                    200,
                    b'published',
                )
                assert await recv(bob) == 'hi'
                assert await recv(local) == 'hi'
                # From async code on two: bytes and JSON keep their kind.
                await command(
                    bob, op='publish', group='room', message='b', kind='bytes'
                )
                assert await recv(local) == b'b'
                await command(bob, op='publish', group='room', message=[1])
                assert await recv(local) == '[1]'
                # Ordering per publisher and group, across processes.
                await command(ann, op='flood', group='room', count=50, size=8)
                got = await collect(bob, 0.5)
                floods = [m for m in got if m[:1] == '0']
                assert [int(m[:6]) for m in floods] == list(range(50))
                # Presence, seen from either process.
                ids = {}
                for ws in (ann, bob):
                    ids[ws] = (await command(ws, op='stats'))['id']
                members = (await command(bob, op='members', group='room'))[
                    'members'
                ]
                assert members[ids[ann]] == {'name': 'ann'}
                assert members[ids[bob]] == {'name': 'bob'}
                assert len(members) == 3
                await command(ann, op='leave', group='room')
                members = (await command(bob, op='members', group='room'))[
                    'members'
                ]
                assert ids[ann] not in members
            # Sockets that closed left; stats show the counters.
            first, second = (
                json.loads(http(server.url + '/stats')[1])
                for server in (one, two)
            )
            assert first['backend'] == 'redis'
            assert first['published'] == 51  # hi, then the flood
            assert second['delivered'] == 53  # to bob, including his own
            assert first['groups'] == second['groups'] == {}

        asyncio.run(scenario())


#: Sockets per process in the burst of joins below.
BURST = 50


def test_a_burst_of_joins_across_two_processes_all_hear(redis):
    """Fifty sockets per process join one new group at once: they share
    one subscription (one confirmation used to wake one of them, the
    others' joins raised and their confirmations were unsubscribed as
    late), each says it joined, and a publish reaches every one."""
    with two_servers(redis.url) as (one, two):

        async def joined(url: str) -> Any:
            ws = await connect(url)
            assert await recv(ws, 10) == 'joined'
            return ws

        async def scenario() -> None:
            urls = [one.ws_url + '/listen/burst'] * BURST
            urls += [two.ws_url + '/listen/burst'] * BURST
            sockets = await asyncio.gather(
                *(joined(url) for url in urls), return_exceptions=True
            )
            opened = [ws for ws in sockets if not isinstance(ws, Exception)]
            try:
                assert len(opened) == len(urls), [
                    ws for ws in sockets if isinstance(ws, Exception)
                ][:3]
                assert await apost(one.url + '/publish/burst', b'hi') == (
                    200,
                    b'published',
                )
                heard = await asyncio.gather(*(recv(ws) for ws in opened))
                assert heard == ['hi'] * len(urls)
                for server in (one, two):
                    stats = json.loads(http(server.url + '/stats')[1])
                    assert stats['groups'] == {'burst': BURST}
            finally:
                await asyncio.gather(*(ws.close() for ws in opened))

        asyncio.run(scenario())


def test_redis_restart_mid_test(redis):
    """Redis goes away: local sockets keep working, publishing answers an
    error at once, and both processes resubscribe when it returns."""
    with two_servers(redis.url) as (one, two):

        async def scenario() -> None:
            async with (
                connect(one.ws_url + '/groups?name=ann') as ann,
                connect(two.ws_url + '/groups?name=bob') as bob,
            ):
                for ws in (ann, bob):
                    await command(ws, op='join', group='r')
                await asyncio.to_thread(redis.stop)
                started = time.monotonic()
                status, body = await apost(one.url + '/publish/r', b'x')
                assert status == 503 and b'unreachable' in body, body
                reply = await command(ann, op='publish', group='r', message=1)
                assert 'unreachable' in reply['error']
                reply = await command(bob, op='members', group='r')
                assert 'cannot list' in reply['error']
                assert time.monotonic() - started < 3
                # The sockets themselves still work.
                assert (await command(bob, op='stats'))['groups'] == ['r']
                await asyncio.to_thread(redis.start)

                async def delivered() -> bool:
                    status, _ = await apost(one.url + '/publish/r', b'back')
                    if status != 200:
                        return False
                    return 'back' in await collect(bob, 0.3)

                await until(delivered, timeout=15)

                async def published() -> bool:
                    reply = await command(
                        bob, op='publish', group='r', message='2'
                    )
                    return 'ok' in reply

                await until(published)
                assert '2' in await collect(ann, 0.5)
                members = await command(ann, op='members', group='r')
                assert len(members['members']) == 2

        asyncio.run(scenario())
        assert 'restored' in one.log() and 'restored' in two.log()
        assert 'Traceback' not in one.log() + two.log()


def test_members_of_a_crashed_process_vanish(redis):
    url = redis.url + '?presence_ttl=1'
    with two_servers(url) as (one, two):

        async def scenario() -> None:
            async with connect(one.ws_url + '/groups') as ann:
                bob = await connect(two.ws_url + '/groups')
                await command(ann, op='join', group='p')
                await command(bob, op='join', group='p')
                found = await command(ann, op='members', group='p')
                assert len(found['members']) == 2
                two.signal(signal.SIGKILL)
                await asyncio.to_thread(two.wait, TIMEOUT)

                async def one_left() -> bool:
                    found = await command(ann, op='members', group='p')
                    return len(found['members']) == 1

                await until(one_left, timeout=5)

        asyncio.run(scenario())


def test_a_join_redis_does_not_confirm_raises_and_leaves_nothing(redis):
    """Redis hung (SIGSTOP) when the first member joins: the join raises
    within the command timeout and no group is left registered; once
    Redis answers again, the next join subscribes afresh and hears."""
    from tests.test_broadcast import make_socket

    async def scenario() -> None:
        broadcaster = bc.Broadcaster(redis.url)
        await broadcaster.start()
        backend = broadcaster.backend
        assert isinstance(backend, backends.RedisBackend)
        backend.timeout = 0.5
        await asyncio.wait_for(backend.connected.wait(), TIMEOUT)
        first, _ = make_socket()
        second, sent = make_socket()
        assert redis.proc is not None
        redis.proc.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(bc.BroadcastError, match='cannot subscribe'):
                await broadcaster.join(first, 'frozen')
            assert time.monotonic() - started < 2
            assert broadcaster.groups == {} and first.groups == set()
            assert backend.channels == set()
        finally:
            redis.proc.send_signal(signal.SIGCONT)
        await broadcaster.join(second, 'frozen')
        await broadcaster.publish('frozen', 'thawed')
        await until(lambda: asyncio.sleep(0, bool(sent)))
        assert sent == [{'type': 'websocket.send', 'text': 'thawed'}]
        assert broadcaster.groups == {'frozen': 1}
        await broadcaster.close()

    asyncio.run(scenario())


def test_a_late_confirmation_is_unsubscribed(redis):
    """A subscription confirmed after its join gave up is for a group
    nobody here is in: the backend unsubscribes from it again."""

    async def scenario() -> None:
        got: list[bytes] = []
        backend = backends.RedisBackend(redis.url + '?prefix=late:')
        await backend.connect(lambda c, payload, _: got.append(payload))
        await asyncio.wait_for(backend.connected.wait(), TIMEOUT)
        pubsub = backend._pubsub
        await pubsub.subscribe('late:stray')  # as if a join had given up
        await until(
            lambda: asyncio.sleep(0, b'late:stray' not in pubsub.channels)
        )
        await backend.publish('stray', b'tnobody')
        await backend.subscribe('kept')
        await backend.publish('kept', b'tsomebody')
        await until(lambda: asyncio.sleep(0, bool(got)))
        assert got == [b'tsomebody']
        await backend.disconnect()

    asyncio.run(scenario())


def test_joins_at_once_share_one_subscription(redis):
    """Subscribes to one channel at once send one ``SUBSCRIBE`` and all
    return once Redis confirms it; a cancelled one does not cancel it for
    the others, and no confirmation is taken for a late one."""

    async def scenario() -> None:
        got: list[bytes] = []
        backend = backends.RedisBackend(redis.url + '?prefix=burst:')
        await backend.connect(lambda c, payload, _: got.append(payload))
        await asyncio.wait_for(backend.connected.wait(), TIMEOUT)
        sent: list[tuple[Any, ...]] = []
        subscribe = backend._pubsub.subscribe

        async def counted(*channels: Any) -> None:
            sent.append(channels)
            await subscribe(*channels)

        backend._pubsub.subscribe = counted
        joins = [
            asyncio.ensure_future(backend.subscribe('g')) for _ in range(5)
        ]
        await asyncio.sleep(0)
        joins[0].cancel()
        results = await asyncio.gather(*joins, return_exceptions=True)
        assert isinstance(results[0], asyncio.CancelledError)
        assert results[1:] == [None] * 4
        assert sent == [('burst:g',)]
        assert backend.channels == {'g'} and backend._subscribing == {}
        await backend.publish('g', b'theard')
        await until(lambda: asyncio.sleep(0, bool(got)))
        assert got == [b'theard']
        assert b'burst:g' in backend._pubsub.channels
        await backend.disconnect()

    asyncio.run(scenario())


def test_a_burst_over_the_pool_size_waits_for_connections(redis, caplog):
    """More presence writes and removals at once than the pool holds wait
    for a connection instead of failing with "Too many connections"."""
    caplog.set_level('WARNING', 'pyramid_asgi_ws')

    async def scenario() -> None:
        backend = backends.RedisBackend(redis.url + '?prefix=pool:')
        count = 3 * backends.RedisBackend.pool_size // 2
        ids = [f'm{number}' for number in range(count)]
        await asyncio.gather(*(backend.add_member('g', m, b'{}') for m in ids))
        assert sorted(await backend.members('g')) == sorted(ids)
        await asyncio.gather(*(backend.remove_member('g', m) for m in ids))
        assert await backend.members('g') == {}
        await backend.client.aclose()

    asyncio.run(scenario())
    assert 'Redis presence' not in caplog.text


def test_a_silent_subscription_is_pinged_then_given_up():
    pings: list[float] = []

    class Silent:
        async def get_message(self, timeout: float) -> None:
            await asyncio.sleep(0.01)

        async def ping(self) -> None:
            pings.append(time.monotonic())

    async def scenario() -> None:
        backend = backends.RedisBackend('redis://127.0.0.1:1/0')
        backend.ping_after, backend.dead_after = 0.05, 0.15
        with pytest.raises(ConnectionError, match='stopped answering'):
            await backend._listen(Silent())
        await backend.client.aclose()

    asyncio.run(scenario())
    assert pings


def test_heartbeat_and_unsubscribe_while_redis_is_away(caplog):
    import redis as redis_py

    caplog.set_level('INFO', 'pyramid_asgi_ws')

    async def scenario() -> None:
        backend = backends.RedisBackend('redis://127.0.0.1:1/0?presence_ttl=1')
        refreshed: list[bool] = []

        async def refresh(only: str | None = None) -> None:
            refreshed.append(True)
            raise redis_py.ConnectionError('gone')

        class Watched(asyncio.Event):
            """Counts the heartbeat's questions: a beat has come."""

            asked = 0

            def is_set(self) -> bool:
                self.asked += 1
                return super().is_set()

        backend._refresh = refresh  # type: ignore[method-assign]
        backend.connected = watched = Watched()
        beat = asyncio.ensure_future(backend._heartbeat())
        # one beat while not connected: skipped
        await until(lambda: asyncio.sleep(0, watched.asked), timeout=3)
        assert refreshed == []
        backend.connected.set()
        await until(lambda: asyncio.sleep(0, bool(refreshed)), timeout=3)
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat

        class Broken:
            async def unsubscribe(self, channel: str) -> None:
                raise redis_py.ConnectionError('gone')

        backend.channels.add('g')
        await backend.unsubscribe('g')  # no subscription: kept for nobody
        assert backend.channels == set()
        backend._pubsub = Broken()
        await backend.unsubscribe('g')  # logged
        await backend.client.aclose()

    asyncio.run(scenario())
    assert 'Redis presence refresh failed' in caplog.text
    assert "Redis unsubscribe from 'g' failed" in caplog.text


def test_confirmations_wake_joins_once_and_spare_kept_channels():
    unsubscribed: list[str] = []

    class Recording:
        async def unsubscribe(self, channel: str) -> None:
            unsubscribed.append(channel)

    async def scenario() -> None:
        backend = backends.RedisBackend('redis://127.0.0.1:1/0?prefix=p:')
        waiter = backend._confirming['g'] = asyncio.Future()
        for _ in range(2):  # Redis confirms a repeated SUBSCRIBE twice
            await backend._confirmed(Recording(), b'p:g')
        assert waiter.done()
        del backend._confirming['g']
        backend.channels.add('kept')
        await backend._confirmed(Recording(), b'p:kept')
        await backend._confirmed(Recording(), backend.control.encode())
        await backend._confirmed(Recording(), b'p:stray')
        await backend.client.aclose()

    asyncio.run(scenario())
    assert unsubscribed == ['p:stray']
