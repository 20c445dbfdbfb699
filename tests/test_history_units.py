"""Group history in one process: the policy, the memory ring, the
replay's hand-over to the live stream, hooks and the settings."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from pyramid.exceptions import ConfigurationError
import pytest

from pyramid_asgi_ws import WebSocketConsumer, backends
from pyramid_asgi_ws import broadcast as bc
from pyramid_asgi_ws.broadcast import history, memory, streams
from pyramid_asgi_ws.broadcast.codec import Payload, encode
from pyramid_asgi_ws.broadcast.member import takes_position
from pyramid_asgi_ws.interfaces import IBroadcaster
from pyramid_asgi_ws.settings import as_history, parse_settings
from tests.test_broadcast import TIMEOUT, make_socket


class Member:
    """A group member that records ``(position, value)``."""

    def __init__(self) -> None:
        self.identifier: str | None = None
        self.groups: set[str] = set()
        self.presence: Any = None
        self.dropped = 0
        self.got: list[tuple[str | None, Any]] = []

    def deliver(self, group: str, payload: Payload) -> bool:
        self.got.append((payload.position, payload.value()))
        return True


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), TIMEOUT))


async def started(size: int = 100, ttl: float | None = None) -> Any:
    broadcaster = bc.Broadcaster()
    broadcaster.history = history.HistoryPolicy(size, ttl)
    await broadcaster.start()
    return broadcaster


async def positions(broadcaster: Any, group: str, count: int) -> list[str]:
    """Publish ``count`` numbers to ``group``; return their positions."""
    seen = Member()
    await broadcaster.join(seen, group)
    for number in range(count):
        await broadcaster.publish(group, number)
    await broadcaster.leave(seen, group)
    return [position for position, _ in seen.got]


# -- the policy and the settings ----------------------------------------------


def test_policy_matches_patterns_in_order():
    rules = (
        ('room:*', 500, 60.0),
        ('room:quiet', 5, None),
        ('p:*', None, None),
    )
    policy = history.HistoryPolicy(10, None, rules)
    assert policy.enabled
    assert policy.keep('room:a') == (500, 60.0)
    assert policy.keep('room:quiet') == (500, 60.0)  # the first match wins
    assert policy.keep('p:x') is None
    assert policy.keep('other') == (10, None)
    assert not history.HistoryPolicy().enabled
    assert history.HistoryPolicy(None, None, (('a', 1, None),)).enabled
    assert history.HistoryPolicy().keep('any') is None


def test_a_ttl_without_a_size_is_refused():
    with pytest.raises(ConfigurationError, match='needs asgi_ws.history_size'):
        history.HistoryPolicy(None, 30.0)


def test_history_settings_parse_and_fail_closed():
    parsed = parse_settings(
        {
            'asgi_ws.history_size': 200,
            'asgi_ws.history_ttl': '90',
            'asgi_ws.history': ['room:* 500', 'x:* off'],
        }
    )
    assert parsed['history_size'] == 200
    assert parsed['history_ttl'] == 90.0
    assert parsed['history'] == (('room:*', 500, None), ('x:*', None, None))
    defaults = parse_settings({})
    assert (defaults['history_size'], defaults['history_ttl']) == (None, None)
    assert defaults['history'] == ()
    for value, match in [
        ('room:*', 'is not "pattern size'),
        ('room:* 1 2 3', 'is not "pattern size'),
        ('room:* many', "asgi_ws.history \\('room:\\* many'\\)"),
        ('room:* 0', 'must be positive'),
        ('room:* 5 never', 'a number of seconds'),
        ('room:* 5 0', 'more than 0'),
        ('x:* off 3', 'nor "pattern off"'),
        ([('room:*', 5)], 'list of strings'),
    ]:
        with pytest.raises(ConfigurationError, match=match):
            as_history(value, 'asgi_ws.history')
    for name, value in [('history_size', 'lots'), ('history_ttl', '-1')]:
        with pytest.raises(ConfigurationError, match=name):
            parse_settings({'asgi_ws.' + name: value})


def test_includeme_reads_the_policy(config):
    config.registry.settings['asgi_ws.history_size'] = '7'
    config.commit()
    broadcaster = config.registry.getUtility(IBroadcaster)
    assert broadcaster.history.keep('g') == (7, None)


def test_history_on_a_backend_that_keeps_none_is_refused(config, monkeypatch):
    class Plain(memory.MemoryBackend):
        supports_history = False

    monkeypatch.setitem(backends.BACKENDS, 'plain', Plain)
    config.registry.settings['asgi_ws.broadcast_url'] = 'plain://'
    config.registry.settings['asgi_ws.history'] = 'room:* 5'
    with pytest.raises(ConfigurationError, match="'plain://' keeps none"):
        config.commit()


# -- the memory ring ----------------------------------------------------------


def test_ring_reads_after_a_position_within_its_bounds():
    ring = memory.Ring(3, None)
    first = [ring.append(b't%d' % n) for n in range(5)]
    assert first[-1].startswith(ring.epoch + '-')
    assert ring.read(first[0], 10) is None  # trimmed
    # the one before the first kept: nothing is missing after it
    assert ring.read(first[1], 10) == [
        (first[2], b't2'),
        (first[3], b't3'),
        (first[4], b't4'),
    ]
    assert ring.read(first[2], 10) == [(first[3], b't3'), (first[4], b't4')]
    assert ring.read(first[3], 1) == [(first[4], b't4')]
    assert ring.read(first[4], 10) == []
    assert ring.read(ring.epoch + '-9', 10) is None  # not given yet
    assert ring.read('other-3', 10) is None
    assert ring.read(ring.epoch + '-x', 10) is None
    assert not ring.expired


def test_ring_forgets_what_is_past_its_ttl(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(memory.time, 'monotonic', lambda: now[0])
    ring = memory.Ring(10, 5.0)
    old = ring.append(b'a')
    now[0] += 3
    kept = ring.append(b'b')
    now[0] += 3  # a is 6 s old, b 3 s
    assert ring.read(old, 10) == [(kept, b'b')]  # a is gone, b after a
    assert ring.read(kept, 10) == []
    now[0] += 3
    assert ring.expired
    # everything expired, but nothing came after the last one seen
    assert ring.read(kept, 10) == []
    assert ring.read(old, 10) is None


def test_memory_backend_forgets_expired_rings(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(memory.time, 'monotonic', lambda: now[0])

    async def scenario() -> None:
        backend = memory.MemoryBackend()
        await backend.connect(lambda *args: None)
        await backend.append('a', b't1', 5, 1.0)
        await backend.append('b', b't1', 5, None)
        now[0] += 2
        await backend.append('c', b't1', 5, 1.0)
        assert list(backend.history) == ['b', 'c']
        assert await backend.read('a', 'x-1', 5) is None
        # a new size or ttl starts a new ring, whose epoch is new
        epoch = backend.history['c'].epoch
        await backend.append('c', b't2', 6, 1.0)
        assert backend.history['c'].epoch != epoch
        assert backend.order(f'{epoch}-12') == 12
        await backend.disconnect()
        assert backend.history == {}

    asyncio.run(scenario())


def test_expired_rings_behind_rings_without_their_ttl_are_forgotten(
    monkeypatch,
):
    """Groups of a short ttl (one per user, say) are forgotten even when
    rings of another ttl, or of none, were appended to before them."""
    now = [1000.0]
    monkeypatch.setattr(memory.time, 'monotonic', lambda: now[0])

    async def scenario() -> None:
        backend = memory.MemoryBackend()
        await backend.connect(lambda *args: None)
        for number in range(memory.FORGET_BATCH):
            await backend.append(f'room:{number}', b't', 5, None)
            await backend.append(f'long:{number}', b't', 5, 3600.0)
        for number in range(100):
            await backend.append(f'user:{number}', b't', 5, 1.0)
            now[0] += 2  # each user's ring expires before the next one's
        assert sorted(name for name in backend.history if 'user' in name) == [
            'user:99'
        ]
        assert len(backend.history) == 2 * memory.FORGET_BATCH + 1
        # and so does a publish to a group of another ttl
        await backend.append('room:0', b't', 5, None)
        assert 'user:99' not in backend.history
        # many expiring at once: a few forgotten on each append
        for number in range(memory.FORGET_BATCH + 1):
            await backend.append(f'burst:{number}', b't', 5, 1.0)
        now[0] += 2
        await backend.append('next:0', b't', 5, 1.0)
        assert list(backend.aging[1.0]) == ['burst:8', 'next:0']
        await backend.append('next:1', b't', 5, 1.0)
        assert list(backend.aging[1.0]) == ['next:0', 'next:1']
        # a ring replaced (a new size or ttl) is not forgotten for the old
        await backend.append('c', b't', 5, 1.0)
        await backend.append('c', b't', 5, 50.0)
        now[0] += 2
        await backend.append('d', b't', 5, 1.0)
        assert backend.history['c'].ttl == 50.0
        await backend.disconnect()
        assert backend.aging == {}

    asyncio.run(scenario())


def test_a_ring_made_anew_numbers_after_the_old_one(monkeypatch):
    """A stand-in still dropping late copies of what it replayed must not
    take the messages of a group's new ring (its old one expired) for
    those: they would be lost."""
    now = [1000.0]
    monkeypatch.setattr(memory.time, 'monotonic', lambda: now[0])

    async def scenario() -> None:
        broadcaster = await started(ttl=5.0)
        seen = await positions(broadcaster, 'g', 5)
        back = Member()
        assert await broadcaster.join(back, 'g', since=seen[0]) is True
        assert [n for _, n in back.got] == [1, 2, 3, 4]
        now[0] += 10  # the room falls silent: its ring expires
        await broadcaster.publish('other', 'x')  # which forgets it
        assert 'g' not in broadcaster.backend.history
        for number in (5, 6):
            await broadcaster.publish('g', number)
        assert [n for _, n in back.got] == [1, 2, 3, 4, 5, 6]
        new = back.got[-2][0]
        assert new.split('-')[0] != seen[0].split('-')[0]  # a new epoch
        assert await broadcaster.join(Member(), 'g', since=seen[-1]) is False
        await broadcaster.close()

    asyncio.run(scenario())  # no wait_for: the loop's clock is the fake


def test_a_malformed_memory_position_is_unknown_not_an_error():
    ring = memory.Ring(3, None)
    ring.append(b't')
    for number in ('\u00b2', '\u0661', '9' * 5000, '-1', ' 1', '1_0'):
        assert ring.read(f'{ring.epoch}-{number}', 10) is None


def test_backend_history_interface_is_abstract():
    backend = backends.Backend('x://')
    assert backends.Backend.supports_history is False

    async def calls() -> None:
        for coroutine in (
            backend.append('g', b't', 1, None),
            backend.read('g', '1-1', 1),
        ):
            with pytest.raises(NotImplementedError):
                await coroutine

    asyncio.run(calls())
    with pytest.raises(NotImplementedError):
        backend.order('1-1')


# -- joining with since, in one process ---------------------------------------


def test_join_since_replays_then_goes_live():
    async def scenario() -> None:
        broadcaster = await started()
        seen = await positions(broadcaster, 'g', 5)
        back = Member()
        assert await broadcaster.join(back, 'g', since=seen[1]) is True
        assert back.got == [
            (p, n) for p, n in zip(seen[2:], [2, 3, 4], strict=True)
        ]
        await broadcaster.publish('g', 5)
        assert back.got[-1][1] == 5
        assert broadcaster.replayed == 3
        # already in the group: nothing replayed again
        assert await broadcaster.join(back, 'g', since=seen[0]) is True
        assert len(back.got) == 4
        for since in ('nonsense', 5, None):
            other = Member()
            expected = since is None
            assert await broadcaster.join(other, 'g', since=since) is expected
            assert other.got == []
        await broadcaster.close()

    run(scenario)


def test_join_since_on_a_group_without_history_is_false():
    async def scenario() -> None:
        broadcaster = bc.Broadcaster()
        member = Member()
        assert await broadcaster.join(member, 'g', since='x-1') is False
        assert member.groups == {'g'}
        await broadcaster.publish('g', 'live')
        assert member.got == [(None, 'live')]
        await broadcaster.close()

    run(scenario)


class Scripted(memory.MemoryBackend):
    """A memory backend whose reads let a test act in between."""

    def __init__(self, url: str = 'memory://') -> None:
        super().__init__(url)
        self.on_read: Callable[[int], Awaitable[None]] | None = None
        self.reads = 0

    async def read(self, channel: str, since: str, count: int) -> Any:
        entries = await super().read(channel, since, min(count, 2))
        self.reads += 1
        if self.on_read is not None:
            await self.on_read(self.reads)
        return entries


async def scripted(size: int = 100) -> Any:
    broadcaster = bc.Broadcaster(factory=Scripted)
    broadcaster.history = history.HistoryPolicy(size)
    await broadcaster.start()
    return broadcaster


def test_live_messages_during_a_replay_come_once_in_order():
    """Published while the history is read: those the next read meets are
    held back and replayed once, in their place; the one published
    during the last (empty) read is released after the replay."""

    async def scenario() -> None:
        broadcaster = await scripted()
        backend = broadcaster.backend
        seen = await positions(broadcaster, 'g', 3)
        numbers = iter(range(3, 100))
        plan = {1: 2, 3: 1}  # read number: how many to publish after it

        async def publish_more(reads: int) -> None:
            for _ in range(plan.get(reads, 0)):
                await broadcaster.publish('g', next(numbers))

        backend.on_read = publish_more
        back = Member()
        assert await broadcaster.join(back, 'g', since=seen[0]) is True
        assert backend.reads == 3
        await broadcaster.publish('g', next(numbers))
        assert [n for _, n in back.got] == [1, 2, 3, 4, 5, 6]
        assert broadcaster.replayed == 4
        await broadcaster.close()

    run(scenario)


def test_a_live_copy_arriving_after_its_replay_is_dropped():
    async def scenario() -> None:
        broadcaster = await scripted()
        backend = broadcaster.backend
        seen = await positions(broadcaster, 'g', 4)
        late: list[tuple[str, bytes]] = []

        async def replay_late_copies(reads: int) -> None:
            if reads == 2:  # copies of what the first read returned
                for position, data in late:
                    broadcaster._receive('g', data, position)

        ring = backend.history['g']
        late.extend((f'{ring.epoch}-{n}', encode(n - 1)) for n in (2, 3))
        backend.on_read = replay_late_copies
        back = Member()
        assert await broadcaster.join(back, 'g', since=seen[0]) is True
        assert [n for _, n in back.got] == [1, 2, 3]
        await broadcaster.close()

    run(scenario)


def test_live_copies_up_to_since_from_a_lagging_subscription_are_dropped():
    """The client had ``since`` from a worker whose subscription is ahead
    of this one's: the live copies of ``since`` and of what came before
    it still arriving here, during the replay or after it, are not
    handed over again."""

    async def scenario() -> None:
        broadcaster = await scripted()
        backend = broadcaster.backend
        seen = await positions(broadcaster, 'g', 4)

        def lagging(number: int) -> None:
            broadcaster._receive('g', encode(number), seen[number])

        async def copies_during_the_read(reads: int) -> None:
            if reads == 1:
                lagging(2)
                lagging(3)

        backend.on_read = copies_during_the_read
        back = Member()
        assert await broadcaster.join(back, 'g', since=seen[3]) is True
        assert back.got == []
        lagging(3)  # after the join returned
        assert back.got == []
        await broadcaster.publish('g', 4)
        assert [n for _, n in back.got] == [4]
        (member,) = broadcaster._groups['g']
        assert member is back
        # and in the middle of a replay
        again = Member()
        backend.on_read = copies_during_the_read
        backend.reads = 0
        assert await broadcaster.join(again, 'g', since=seen[1]) is True
        assert [n for _, n in again.got] == [2, 3, 4]
        await broadcaster.close()

    run(scenario)


def test_a_live_copy_arriving_after_the_join_returned_is_dropped():
    """A subscription that lags behind the reads delivers the live copy
    of a replayed message after the join returned: the stand-in stays
    until the live stream has passed the last message replayed."""

    async def scenario() -> None:
        broadcaster = await started()
        seen = await positions(broadcaster, 'g', 3)
        back = Member()
        assert await broadcaster.join(back, 'g', since=seen[0]) is True
        assert [n for _, n in back.got] == [1, 2]
        (stand_in,) = broadcaster._groups['g']
        assert isinstance(stand_in, history.Replay)
        broadcaster._receive('g', encode(2), seen[2])  # the late copy
        assert [n for _, n in back.got] == [1, 2]
        await broadcaster.publish('g', 3)
        assert [n for _, n in back.got] == [1, 2, 3]
        (member,) = broadcaster._groups['g']
        assert member is back  # its place given back
        await broadcaster.publish('g', 4)
        assert [n for _, n in back.got] == [1, 2, 3, 4]
        await broadcaster.close()

    run(scenario)


def test_a_replay_of_nothing_gives_its_place_back_with_the_next():
    async def scenario() -> None:
        broadcaster = await started()
        seen = await positions(broadcaster, 'g', 2)
        back = Member()
        assert await broadcaster.join(back, 'g', since=seen[-1]) is True
        assert back.got == []
        await broadcaster.publish('g', 2)
        (member,) = broadcaster._groups['g']
        assert member is back and [n for _, n in back.got] == [2]
        await broadcaster.close()

    run(scenario)


def test_a_replay_outrun_by_the_live_stream_is_false():
    async def scenario() -> None:
        broadcaster = await scripted(size=3)
        backend = broadcaster.backend
        seen = await positions(broadcaster, 'g', 3)

        async def flood(reads: int) -> None:
            if reads == 1:
                for number in range(3, 10):
                    await broadcaster.publish('g', number)

        backend.on_read = flood
        back = Member()
        assert await broadcaster.join(back, 'g', since=seen[0]) is False
        await broadcaster.publish('g', 10)
        assert [n for _, n in back.got] == [10]  # live only
        await broadcaster.close()

    run(scenario)


def test_leaving_during_a_replay_ends_it():
    async def scenario() -> None:
        broadcaster = await scripted()
        backend = broadcaster.backend
        seen = await positions(broadcaster, 'g', 6)
        back = Member()

        async def leave(reads: int) -> None:
            if reads == 1:
                await broadcaster.leave(back, 'g')

        backend.on_read = leave
        assert await broadcaster.join(back, 'g', since=seen[0]) is True
        assert back.groups == set() and broadcaster.groups == {}
        assert back.got == []
        await broadcaster.close()

    run(scenario)


def test_a_message_without_position_passes_a_replay():
    async def scenario() -> None:
        broadcaster = await scripted()
        backend = broadcaster.backend
        seen = await positions(broadcaster, 'g', 2)
        back = Member()

        async def legacy(reads: int) -> None:
            if reads == 1:
                broadcaster._receive('g', encode('old'))

        backend.on_read = legacy
        assert await broadcaster.join(back, 'g', since=seen[0]) is True
        assert back.got[0] == (None, 'old')
        await broadcaster.close()

    run(scenario)


def test_replay_stands_in_for_its_member():
    member = Member()
    member.identifier, member.presence, member.dropped = 'm.1', 'info', 2
    replay = history.Replay(memory.MemoryBackend(), member, 'g', 5, 'x-1')
    assert replay.identifier == 'm.1' and replay.presence == 'info'
    assert replay.dropped == 2 and replay.groups is member.groups
    assert replay == member and replay == replay and replay != Member()
    assert hash(replay) == hash(member)


def test_a_long_replay_waits_for_room_in_the_send_queue():
    """A socket's queue of 4 gets 40 missed messages without a drop."""

    async def scenario() -> None:
        broadcaster = await started()
        seen = await positions(broadcaster, 'g', 41)
        ws, sent = make_socket(size=4)
        assert await broadcaster.join(ws, 'g', since=seen[0]) is True
        await ws.membership.outbox.flush(TIMEOUT)
        assert [m['text'] for m in sent] == [str(n) for n in range(1, 41)]
        assert ws.dropped == 0
        await broadcaster.close()

    run(scenario)


def test_a_replay_ends_when_the_socket_is_gone():
    """A client gone during a long replay: the rest of the history is not
    read for nobody (the consumer, blocked in the join, would not notice
    before the end of a history of thousands)."""

    async def scenario() -> None:
        broadcaster = await scripted()
        backend = broadcaster.backend
        seen = await positions(broadcaster, 'g', 50)
        gate = asyncio.Event()
        ws, sent = make_socket(size=2, gate=gate)

        async def client_goes(reads: int) -> None:
            if reads == 3:
                ws._closed_by_outbox(None)

        backend.on_read = client_goes
        backend.reads = 0
        gate.set()
        assert await broadcaster.join(ws, 'g', since=seen[0]) is False
        assert backend.reads == 3  # of 25
        assert len(sent) <= 6
        await ws.membership.finish(0.1)
        await broadcaster.close()

    run(scenario)


def test_wait_room_returns_when_the_socket_is_gone():
    async def scenario() -> None:
        gate = asyncio.Event()
        ws, _ = make_socket(size=1, gate=gate)
        outbox = ws.membership.outbox
        outbox.push({'type': 'websocket.send', 'text': 'a'})
        await asyncio.sleep(0)  # the sender waits on the gate with 'a'
        outbox.push({'type': 'websocket.send', 'text': 'b'})
        waiting = asyncio.ensure_future(ws.membership.wait_room())
        await asyncio.sleep(0.05)
        assert not waiting.done()
        ws._closed_by_outbox(None)  # the client went away
        outbox._drained = None  # a flush meanwhile replaced the event
        assert await asyncio.wait_for(waiting, 2.0) is False
        assert await ws.membership.wait_room() is False
        await outbox.finish(0.1)

    run(scenario)


# -- positions reaching the consumer ------------------------------------------


def test_takes_position():
    assert takes_position(lambda group, message, position: None)
    assert takes_position(lambda group, message, position=None: None)
    assert takes_position(lambda *args: None)
    assert not takes_position(lambda group, message: None)

    class Unknown:
        """A callable whose signature cannot be told."""

        @property
        def __signature__(self) -> Any:
            raise ValueError('no signature')

        def __call__(self, *args: Any) -> None:
            pass

    assert not takes_position(Unknown())


def test_hooks_get_the_position_when_they_take_it():
    async def scenario() -> None:
        broadcaster = await started()
        three, _ = make_socket()
        two, _ = make_socket()
        got: list[Any] = []
        three.on_group_message = lambda g, m, p: got.append(('3', m, p))
        two.on_group_message = lambda g, m: got.append(('2', m))
        await broadcaster.join(three, 'g')
        await broadcaster.join(two, 'g')
        await broadcaster.publish('g', 'hi')
        position = got[0][2] if got[0][0] == '3' else got[1][2]
        assert sorted(got, key=str) == sorted(
            [('3', 'hi', position), ('2', 'hi')], key=str
        )
        assert position.startswith(broadcaster.backend.history['g'].epoch)
        three.on_group_message = None
        assert three.on_group_message is None
        await broadcaster.close()

    run(scenario)


def test_consumer_hook_with_or_without_position():
    class Two(WebSocketConsumer):
        async def on_group_message(self, group: str, message: Any) -> None:
            pass

    class Three(WebSocketConsumer):
        async def on_group_message(
            self, group: str, message: Any, position: str | None = None
        ) -> None:
            pass

    assert not takes_position(Two().on_group_message)
    assert takes_position(Three().on_group_message)
    asyncio.run(WebSocketConsumer().on_group_message('g', 'm', 'p'))


def test_push_queues_behind_group_messages():
    async def scenario() -> None:
        broadcaster = await started()
        ws, sent = make_socket()

        def forward(group: str, message: Any, position: str | None) -> None:
            ws.push({'position': position, 'message': message})

        ws.on_group_message = forward
        await broadcaster.join(ws, 'g')
        await broadcaster.publish('g', {'n': 1})
        assert ws.push('after') is True
        await ws.membership.outbox.flush(TIMEOUT)
        ring = broadcaster.backend.history['g']
        assert [m['text'] for m in sent] == [
            f'{{"position":"{ring.epoch}-1","message":{{"n":1}}}}',
            'after',
        ]
        await broadcaster.close()

    run(scenario)


# -- the Redis stream helpers, without Redis ---------------------------------


def test_split_position_and_stream_ids():
    assert streams.split_position(b'@1-2 tx') == (b'tx', '1-2')
    assert streams.split_position(b'tx') == (b'tx', None)
    backend = backends.RedisBackend('redis://127.0.0.1:1/0')
    assert backend.order('17-3') == (17, 3)

    async def reads() -> None:
        for since in (
            '',
            '1',
            '1-',
            'a-1',
            '1-1-1',
            f'{2**63}-0',
            '\u0661-\u0661',  # Arabic-Indic digits: \d, not Redis's
        ):
            assert await backend.read('g', since, 5) is None

    asyncio.run(reads())


def test_redis_history_fails_as_broadcast_errors():
    async def scenario() -> None:
        backend = backends.RedisBackend('redis://127.0.0.1:1/0')
        backend.timeout = 0.2
        with pytest.raises(bc.BroadcastError, match='cannot publish'):
            await backend.append('g', b'tx', 5, 1.5)
        with pytest.raises(bc.BroadcastError, match='cannot read the history'):
            await backend.read('g', '1-1', 5)
        await backend.client.aclose()

    asyncio.run(scenario())
