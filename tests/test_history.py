"""Group history and recovery through real uvicorn processes (and a real
``redis-server``): a client that comes back with ``since`` gets what it
missed, in order, then the live stream, with no gap and no duplicate."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
import contextlib
import json
import time
from typing import Any
from urllib.parse import quote

import pytest

from pyramid_asgi_ws.testing import TestClient
from tests.apps.history import main as history_app
from tests.redis_support import RedisServer
from tests.support import ROOT, ServerProcess, serve
from tests.test_broadcast import TIMEOUT, connect
from tests.test_docs_examples import load

APP = 'tests.apps.history:app'

#: Seconds a long replay (thousands of messages) may take on a busy box.
LONG = 60.0


@pytest.fixture(params=['memory', 'redis'])
def backend(request: Any) -> Iterator[dict[str, str]]:
    """The environment of a history app on each backend."""
    if request.param == 'memory':
        yield {}
        return
    with RedisServer() as redis:
        yield {'BROADCAST_URL': redis.url}


def url(server: ServerProcess, group: str, since: str | None = None) -> str:
    query = '' if since is None else '?since=' + quote(since)
    return f'{server.ws_url}/follow/{group}{query}'


async def joined(ws: Any) -> tuple[list[tuple[str, int]], bool]:
    """The messages replayed before ``{"joined": ...}``, and its value."""
    replayed = []
    while True:
        data = json.loads(await asyncio.wait_for(ws.recv(), LONG))
        if 'joined' in data:
            return replayed, data['joined']
        if 'p' in data:
            replayed.append((data['p'], data['m']['n']))


async def take(
    ws: Any, count: int, timeout: float = LONG
) -> list[tuple[str, int]]:
    """The next ``count`` group messages, as ``(position, n)``; other
    replies are skipped."""
    got: list[tuple[str, int]] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        left = deadline - time.monotonic()
        data = json.loads(await asyncio.wait_for(ws.recv(), left))
        if 'p' in data:
            got.append((data['p'], data['m']['n']))
    return got


async def quiet(ws: Any, seconds: float = 0.3) -> list[Any]:
    """Whatever arrives until nothing has for ``seconds``."""
    found = []
    with contextlib.suppress(asyncio.TimeoutError):
        while True:
            found.append(await asyncio.wait_for(ws.recv(), seconds))
    return found


async def seen_up_to(server: ServerProcess, group: str, count: int) -> str:
    """Have a client see ``count`` messages, leave, and return the position
    of the last one."""
    async with connect(url(server, group)) as ws:
        assert await joined(ws) == ([], True)
        await ws.send(f'publish {count} 0')
        got = await take(ws, count)
    assert [n for _, n in got] == list(range(count))
    return got[-1][0]


def test_reconnect_with_since_gets_exactly_what_it_missed(backend):
    async def scenario(server: ServerProcess) -> None:
        since = await seen_up_to(server, 'room', 10)
        async with connect(url(server, 'room')) as publisher:
            await joined(publisher)
            await publisher.send('publish 100 10')
            published = await take(publisher, 100)
            async with connect(url(server, 'room', since)) as back:
                replayed, whole = await joined(back)
                assert whole is True
                assert replayed == published  # the same positions too
                assert [n for _, n in replayed] == list(range(10, 110))
                await publisher.send('publish 1 110')
                live = await take(back, 1, TIMEOUT)
                assert [n for _, n in live] == [110]
                assert live == await take(publisher, 1, TIMEOUT)
                assert [m for m in await quiet(back) if '"p"' in m] == []

    with serve('uvicorn', APP, backend) as server:
        asyncio.run(scenario(server))


def test_a_since_older_than_the_history_replays_nothing(backend):
    async def scenario(server: ServerProcess) -> None:
        since = await seen_up_to(server, 'room', 1)
        async with connect(url(server, 'room')) as publisher:
            await joined(publisher)
            # MAXLEN ~ trims whole stream nodes (100 entries): far past 20
            await publisher.send('publish 400 1')
            await take(publisher, 400)
            async with connect(url(server, 'room', since)) as back:
                assert await joined(back) == ([], False)
                await publisher.send('publish 1 401')
                assert [n for _, n in await take(back, 1, TIMEOUT)] == [401]

    env = dict(backend, HISTORY_SIZE='20')
    with serve('uvicorn', APP, env) as server:
        asyncio.run(scenario(server))


@pytest.mark.parametrize(
    'since', ['garbage', '', '99999999999999999999999-0', 'x-1', '1-1']
)
def test_a_malformed_or_unknown_since_is_false_not_a_crash(since):
    async def scenario(server: ServerProcess) -> None:
        await seen_up_to(server, 'room', 3)
        async with connect(url(server, 'room', since)) as back:
            assert await joined(back) == ([], False)
        async with connect(url(server, 'room')) as again:  # still serving
            assert await joined(again) == ([], True)

    with serve('uvicorn', APP) as server:
        asyncio.run(scenario(server))


def test_a_group_without_history_answers_false_with_since():
    async def scenario(server: ServerProcess) -> None:
        async with connect(url(server, 'nohistory:a', 'x-1')) as ws:
            assert await joined(ws) == ([], False)
            await ws.send('publish 2 0')
            got = await take(ws, 2, TIMEOUT)
            assert got == [(None, 0), (None, 1)]

    with serve('uvicorn', APP) as server:
        asyncio.run(scenario(server))


def test_publishing_during_the_replay_leaves_no_gap_nor_duplicate(backend):
    """The replay reads the history while the live stream keeps coming:
    the client must see every number once, in order."""
    total = 3000

    async def scenario(server: ServerProcess) -> None:
        since = await seen_up_to(server, 'race', 10)
        async with connect(url(server, 'race')) as publisher:
            await joined(publisher)
            await publisher.send(f'publish {total} 10')
            # Come back once the publisher is well under way.
            await take(publisher, 500)
            async with connect(url(server, 'race', since)) as back:
                replayed, whole = await joined(back)
                assert whole is True
                rest = total - len(replayed)
                live = await take(back, rest) if rest else []
        numbers = [n for _, n in replayed + live]
        assert numbers == list(range(10, 10 + total))
        assert len(replayed) >= 500  # the replay did overlap the stream

    env = dict(backend, HISTORY_SIZE=str(total + 100))
    with serve('uvicorn', APP, env) as server:
        asyncio.run(scenario(server))


def test_a_replay_beside_a_publisher_in_another_worker():
    """The publisher's worker and the returning client's share Redis: the
    client's live stream comes over the subscription, which may lag
    behind its reads of the stream; still once each, in order."""
    total = 3000

    async def scenario(one: ServerProcess, two: ServerProcess) -> None:
        since = await seen_up_to(two, 'across', 10)
        async with connect(url(one, 'across')) as publisher:
            await joined(publisher)
            await publisher.send(f'publish {total} 10')
            await take(publisher, 300)
            async with connect(url(two, 'across', since)) as back:
                replayed, whole = await joined(back)
                assert whole is True
                rest = total - len(replayed)
                live = await take(back, rest) if rest else []
                assert [m for m in await quiet(back) if '"p"' in m] == []
        numbers = [n for _, n in replayed + live]
        assert numbers == list(range(10, 10 + total))

    with RedisServer() as redis:
        env = {'BROADCAST_URL': redis.url, 'HISTORY_SIZE': str(total + 100)}
        with (
            serve('uvicorn', APP, env) as one,
            serve('uvicorn', APP, env) as two,
        ):
            asyncio.run(scenario(one, two))


def test_a_memory_position_is_unknown_after_a_restart():
    async def first(server: ServerProcess) -> str:
        return await seen_up_to(server, 'room', 5)

    async def second(server: ServerProcess, since: str) -> None:
        async with connect(url(server, 'room')) as publisher:
            await joined(publisher)
            await publisher.send('publish 5 5')
            await take(publisher, 5)
        async with connect(url(server, 'room', since)) as back:
            assert await joined(back) == ([], False)

    with serve('uvicorn', APP) as server:
        since = asyncio.run(first(server))
    with serve('uvicorn', APP) as server:
        asyncio.run(second(server, since))


def test_redis_history_survives_a_restart_of_the_worker():
    """The client's worker stops; 100 messages are published through
    another; a new worker process gives the client exactly those."""

    async def before(server: ServerProcess) -> str:
        return await seen_up_to(server, 'room', 10)

    async def meanwhile(other: ServerProcess) -> list[tuple[str, int]]:
        async with connect(url(other, 'room')) as publisher:
            await joined(publisher)
            await publisher.send('publish 100 10')
            return await take(publisher, 100)

    async def after(
        server: ServerProcess,
        other: ServerProcess,
        since: str,
        published: list[tuple[str, int]],
    ) -> None:
        async with connect(url(server, 'room', since)) as back:
            assert await joined(back) == (published, True)
            async with connect(url(other, 'room')) as publisher:
                await joined(publisher)
                await publisher.send('publish 1 110')
                assert [n for _, n in await take(back, 1, TIMEOUT)] == [110]

    with RedisServer() as redis:
        env = {'BROADCAST_URL': redis.url}
        with serve('uvicorn', APP, env) as other:
            with serve('uvicorn', APP, env) as server:
                since = asyncio.run(before(server))
            published = asyncio.run(meanwhile(other))
            assert [n for _, n in published] == list(range(10, 110))
            with serve('uvicorn', APP, env) as server:
                asyncio.run(after(server, other, since, published))


def test_redis_takes_any_ttl_and_refuses_foreign_digits():
    """A since after the last position is False, the last one True. A ttl
    of 30,000 years (the Lua script once wrote its numbers as
    ``1e+14``, which Redis refused after the ``XADD``: a kept message not
    published), and a since in digits that are not ASCII (``\\d`` took
    them, Redis refused them: a BroadcastError, not ``False``)."""
    import redis

    async def scenario(server: ServerProcess) -> None:
        since = await seen_up_to(server, 'room', 3)
        ms, _, seq = since.partition('-')
        later = (f'{ms}-{int(seq) + 1}', f'{int(ms) + 1}-0')  # not given yet
        foreign = chr(0x660 + int(since[0])) + since[1:]  # its first digit
        for other in ('\u0661-\u0661', foreign, *later):
            async with connect(url(server, 'room', other)) as back:
                assert await joined(back) == ([], False)
        async with connect(url(server, 'room', since)) as back:
            assert await joined(back) == ([], True)

    with RedisServer() as server_of_redis:
        env = {'BROADCAST_URL': server_of_redis.url, 'HISTORY_TTL': '1e12'}
        with serve('uvicorn', APP, env) as server:
            asyncio.run(scenario(server))
        client = redis.Redis.from_url(server_of_redis.url)
        try:
            assert client.xlen('asgi_ws:history:room') == 3
            assert client.pttl('asgi_ws:history:room') > 10**14
        finally:
            client.close()


def test_redis_gone_mid_publish_is_a_broadcast_error_and_back_keeps():
    """A publish to a group with history while Redis is down raises
    BroadcastError, never a silent loss; once a restarted Redis (its
    script cache empty) is back, the next publish loads the script again,
    is heard with its position and kept."""
    from pyramid_asgi_ws import backends
    from pyramid_asgi_ws.broadcast import BroadcastError

    async def scenario(redis: RedisServer) -> None:
        heard: list[tuple[bytes, str | None]] = []
        backend = backends.RedisBackend(redis.url)
        backend.reconnect_max = 0.2
        await backend.connect(lambda _, data, p: heard.append((data, p)))
        await asyncio.wait_for(backend.connected.wait(), TIMEOUT)
        await backend.subscribe('g')
        await backend.append('g', b'one', 10, 60.0)
        await asyncio.to_thread(redis.stop)
        with pytest.raises(BroadcastError, match='cannot publish'):
            await backend.append('g', b'lost', 10, 60.0)
        await asyncio.to_thread(redis.restart)
        deadline = time.monotonic() + TIMEOUT

        async def subscribers() -> int:
            with contextlib.suppress(BroadcastError, *backend.errors):
                found = await backend.client.pubsub_numsub('asgi_ws:g')
                return int(found[0][1])
            return 0

        while await subscribers() < 1:  # subscribed to again
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await backend.append('g', b'two', 10, 60.0)
        while len(heard) < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        assert [data for data, _ in heard] == [b'one', b'two']
        position = heard[1][1]
        assert position is not None
        # the restarted Redis (no persistence) keeps what came after it
        kept = await backend.client.xrange('asgi_ws:history:g')
        assert [(i.decode(), f[b'm']) for i, f in kept] == [(position, b'two')]
        assert await backend.read('g', position, 10) == []
        await backend.disconnect()

    with RedisServer() as redis:
        asyncio.run(scenario(redis))


def test_test_client_replays_too():
    app = history_app({'HISTORY_SIZE': '50'})
    with TestClient(app) as client:
        with client.websocket_connect('/follow/room') as ws:
            assert ws.receive_json() == {'joined': True}
            ws.send_text('publish 5 0')
            seen = [ws.receive_json() for _ in range(6)]
        assert seen[-1] == {'published': 5}
        since = seen[1]['p']
        with client.websocket_connect('/follow/room') as ws:
            assert ws.receive_json() == {'joined': True}
            ws.send_text('publish 3 5')
            assert ws.receive_json()['m'] == {'n': 5}
        with client.websocket_connect(f'/follow/room?since={since}') as ws:
            replayed = [ws.receive_json()['m']['n'] for _ in range(6)]
            assert replayed == [2, 3, 4, 5, 6, 7]
            assert ws.receive_json() == {'joined': True}
        # a SyncWebSocketConsumer joins with since from its pool thread
        with client.websocket_connect(f'/sync/room?since={since}') as ws:
            # no hook: the replay's messages as published; the reply is
            # sent by itself, beside the queue
            got = [ws.receive_json() for _ in range(7)]
            assert {'joined': True} in got
            assert [m['n'] for m in got if 'n' in m] == [2, 3, 4, 5, 6, 7]
        with client.websocket_connect('/sync/room?since=nonsense') as ws:
            assert ws.receive_json() == {'joined': False}


def test_the_documented_room_forwards_positions_and_says_reload():
    app = load('history', ROOT / 'docs' / 'examples').main()
    with TestClient(app) as client:
        with client.websocket_connect('/rooms/a') as ws:
            for text in ('one', 'two', 'three'):
                ws.send_text(text)
            got = [ws.receive_json() for _ in range(3)]
        assert [m['message'] for m in got] == ['one', 'two', 'three']
        since = got[0]['position']
        with client.websocket_connect(f'/rooms/a?since={since}') as ws:
            assert [ws.receive_json()['message'] for _ in range(2)] == [
                'two',
                'three',
            ]
        with client.websocket_connect('/rooms/a?since=0-0') as ws:
            assert ws.receive_json() == {'reload': True}
