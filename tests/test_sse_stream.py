"""Event streams in process: the EventStream, its running, the test client.

What needs a real server (its disconnect, its shutdown, Redis) is in
tests/test_sse.py; here the test client drives the application, and a
few tests drive an EventStream with hand-made receive and send.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import Any

from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPNotFound, HTTPServiceUnavailable
import pytest

from pyramid_asgi_ws import EventStream, StreamClosed, sse_consumer
from pyramid_asgi_ws.broadcast import get_broadcaster
from pyramid_asgi_ws.broadcast.codec import Payload, encode
from pyramid_asgi_ws.sse import STREAM_HEADERS
from pyramid_asgi_ws.sse_running import heartbeats
from pyramid_asgi_ws.testing import (
    Event,
    EventParser,
    StreamRefused,
    TestClient,
    WebSocketTimeout,
)
from tests.support import wait_until

ENDED: list[str] = []

#: A Last-Event-ID too deep for the json module (RecursionError).
NESTED = '{"a":' + '[' * 2000 + ']' * 2000 + '}'


def not_found(request: Any) -> Any:
    raise HTTPNotFound()


async def greet(stream: EventStream) -> None:
    who = await stream.run_sync(lambda: stream.request.params.get('who'))
    await stream.send(f'hello {who}', event='greeting', id=7)
    await stream.comment('a comment\nof two lines')
    await stream.send(stream.last_event_id or '-')


async def group(stream: EventStream) -> None:
    name = stream.matchdict['group']
    kind = stream.request.params.get('event')
    resumed = await stream.join(name, event=kind)
    stream.push(str(resumed), event='joined')  # behind what join replayed
    try:
        await stream.wait_closed()
    finally:
        ENDED.append(f'{name} {stream.closed}')


async def several(stream: EventStream) -> None:
    """Joins each group of ``?groups=a,b`` in turn, resuming each from
    the stream's Last-Event-ID, then says which did."""
    names = stream.request.params['groups'].split(',')
    if 'together' in stream.request.params:
        resumed = await asyncio.gather(*map(stream.join, names))
    else:
        resumed = [await stream.join(name) for name in names]
    stream.push(repr(resumed), event='joined')
    if 'then' in stream.request.params:  # leave the first, join another
        await stream.leave(names[0])
        await stream.join(stream.request.params['then'])
        stream.push('left', event='left')
    await stream.wait_closed()


async def sender(stream: EventStream) -> None:
    """Sends until the stream is over, and says what stopped it."""
    try:
        while True:
            await stream.send('x')
            await asyncio.sleep(0.01)
    except StreamClosed:
        ENDED.append('sender StreamClosed')
    except asyncio.CancelledError:
        ENDED.append('sender cancelled')
        raise


async def raises(stream: EventStream) -> None:
    await stream.send('first')
    raise RuntimeError('consumer broke')


async def http_error(stream: EventStream) -> None:
    raise HTTPServiceUnavailable()


async def closes(stream: EventStream) -> None:
    await stream.send('bye')
    await stream.close()
    with pytest.raises(StreamClosed):
        await stream.send('never')
    with pytest.raises(StreamClosed):
        await stream.join('late')
    ENDED.append('closes done')


async def hooked(stream: EventStream) -> None:
    got = asyncio.Event()
    stream.on_group_message = lambda group, message: got.set()
    await stream.join('hooked', since=None)
    await stream.send('joined')
    await got.wait()
    await stream.send('hook ran')


class Counter:
    """A class consumer: one instance per request."""

    instances = 0

    def __init__(self) -> None:
        Counter.instances += 1

    async def __call__(self, stream: EventStream) -> None:
        await stream.send(f'instance {Counter.instances}')


def make_app(**settings: Any) -> Any:
    settings.setdefault('asgi_ws.history_size', '5')
    settings.setdefault('asgi_ws.sse_heartbeat', '0')
    settings.setdefault('asgi_ws.history', 'live:* off')
    with Configurator(settings=settings) as config:
        config.include('pyramid_asgi_ws')
        add = config.add_asgi_consumer
        add('/greet', greet, protocol='sse', retry=1.5)
        add('/group/{group}', group, protocol='sse')
        add('/small/{group}', group, protocol='sse', send_queue_size=2)
        add('/several', several, protocol='sse')
        add('/sender', sender, protocol='sse')
        add('/beat/{group}', group, protocol='sse', name='b', heartbeat=0.05)
        add('/raises', raises, protocol='sse')
        add('/http-error', http_error, protocol='sse')
        add('/closes', closes, protocol='sse')
        add('/hooked', hooked, protocol='sse')
        add('/count', Counter, protocol='sse')
        add('/missing', greet, protocol='sse', name='m', factory=not_found)
        config.scan('tests.test_sse_stream')
    return config.make_asgi_app()


@sse_consumer('/scanned/{name}')
async def scanned(stream: EventStream) -> None:
    await stream.send(stream.matchdict['name'])


@pytest.fixture
def client() -> Any:
    ENDED.clear()
    with TestClient(make_app()) as client:
        yield client


def publish(client: TestClient, group: str, *messages: Any) -> None:
    broadcaster = get_broadcaster(client.app.registry)
    for message in messages:
        client.call(broadcaster.publish, group, message)


def test_events_fields_and_headers(client):
    with client.sse('/greet?who=ann', last_event_id='41') as stream:
        assert stream.status == 200
        assert stream.headers == {
            name.decode(): value.decode() for name, value in STREAM_HEADERS
        }
        hello, last = stream.receive_many(2)
        assert stream.comments == 2
        with pytest.raises(StreamClosed):
            stream.receive()
    assert (hello.event, hello.data) == ('greeting', 'hello ann')
    assert hello.id == '7'
    assert hello.retry == 1500
    assert last.data == '41'


def test_last_event_id_query_parameter(client):
    with client.sse('/greet?last_event_id=q3') as stream:
        assert stream.receive_many(2)[1].data == 'q3'
    with client.sse('/greet') as stream:
        assert stream.receive_many(2)[1].data == '-'
    # the header goes in UTF-8, as browsers send it, and is read so
    with client.sse('/greet', last_event_id='\u0100-1') as stream:
        assert stream.receive_many(2)[1].data == '\u0100-1'


def test_group_messages_carry_their_position_and_resume(client):
    with client.sse('/group/g1?event=chat') as stream:
        assert stream.receive().data == 'True'
        publish(client, 'g1', 'one', {'two': 2}, b'thr\xc3\xa9e', 'a\nb')
        events = stream.receive_many(4)
    assert [e.data for e in events] == ['one', '{"two":2}', 'thrée', 'a\nb']
    assert {e.event for e in events} == {'chat'}
    assert len({e.id for e in events}) == 4
    wait_until(lambda: ENDED == ['g1 True'], 'the consumer to end')
    publish(client, 'g1', 'missed')
    with client.sse('/group/g1', last_event_id=events[1].id) as stream:
        replayed = stream.receive_many(3)
        assert stream.receive().event == 'joined'
    assert [e.data for e in replayed] == ['thrée', 'a\nb', 'missed']
    publish(client, 'g1', *'abcdefg')  # the history keeps 5
    with client.sse('/group/g1', last_event_id=events[0].id) as stream:
        joined = stream.receive()
    assert (joined.event, joined.data) == ('joined', 'False')


def test_a_stream_in_one_group_with_history_keeps_plain_ids(client):
    # a group without history adds no id, so no composite either
    with client.sse('/several?groups=g,live:x') as stream:
        assert stream.receive().data == '[True, True]'
        publish(client, 'g', 'one')
        publish(client, 'live:x', 'two')
        one, two = stream.receive_many(2)
    assert not one.id.startswith('{')
    assert (two.data, two.id) == ('two', one.id)  # no id: the last stays
    # back with that id: g resumes, and live:x, which keeps no history,
    # joins live instead of taking g's position for its own (False)
    publish(client, 'g', 'missed')
    with client.sse('/several?groups=g,live:x', last_event_id=one.id) as s:
        assert s.receive().data == 'missed'
        assert s.receive().data == '[True, True]'


def test_a_stream_in_several_groups_resumes_each(client):
    """Its ids hold the position of each group: coming back with the last
    one, it gets exactly what it missed of each, then the live ones."""
    with client.sse('/several?groups=a,b') as stream:
        stream.receive()
        publish(client, 'a', 'a1')
        first = stream.receive()
        publish(client, 'b', 'b1')
        publish(client, 'a', 'a2')
        seen = [first, *stream.receive_many(2)]
    assert [event.data for event in seen] == ['a1', 'b1', 'a2']
    assert json.loads(first.id).keys() == {'a'}  # b had none yet
    last = seen[-1].id
    assert json.loads(last).keys() == {'a', 'b'}
    publish(client, 'a', 'a3', 'a4')
    publish(client, 'b', 'b2')
    # in the other order: each group finds its own part
    with client.sse('/several?groups=b,a', last_event_id=last) as stream:
        missed = stream.receive_many(3)
        assert stream.receive().data == '[True, True]'
        publish(client, 'a', 'a5')
        live = stream.receive()
    assert [event.data for event in missed] == ['b2', 'a3', 'a4']
    assert live.data == 'a5'
    # a's events carry b's position on
    assert json.loads(live.id)['b'] == json.loads(missed[0].id)['b']
    # a group the id does not name joins live; one the stream left stops
    # counting once it joins another
    with client.sse(
        '/several?groups=b,a,c&then=d', last_event_id=live.id
    ) as stream:
        assert stream.receive().data == '[True, True, True]'
        assert stream.receive().event == 'left'
        publish(client, 'c', 'c1')
        c1 = stream.receive()
    assert json.loads(c1.id).keys() == {'a', 'c'}
    # joined at once, each group still finds its part
    publish(client, 'a', 'a6')
    publish(client, 'b', 'b3')
    with client.sse(
        '/several?groups=a,b&together=1', last_event_id=live.id
    ) as stream:
        together = stream.receive_many(2)
        assert stream.receive().data == '[True, True]'
    assert sorted(event.data for event in together) == ['a6', 'b3']
    assert json.loads(together[-1].id).keys() == {'a', 'b'}


def test_a_plain_id_resumes_the_first_group_with_history(client):
    """A stream that was in one group comes back in two: the plain id it
    had is the first group's; the second joins live (not False)."""
    with client.sse('/several?groups=a') as stream:
        stream.receive()
        publish(client, 'a', 'a1')
        last = stream.receive().id
    publish(client, 'a', 'a2')
    with client.sse('/several?groups=a,b', last_event_id=last) as stream:
        assert stream.receive().data == 'a2'
        assert stream.receive().data == '[True, True]'
        publish(client, 'b', 'b1')
        assert json.loads(stream.receive().id).keys() == {'a', 'b'}


def test_a_composite_id_whose_history_is_gone_says_so(client):
    with client.sse('/several?groups=a,b') as stream:
        stream.receive()
        publish(client, 'a', 'a1')
        publish(client, 'b', 'b1')
        last = stream.receive_many(2)[-1].id
    publish(client, 'a', *'abcdefg')  # the history keeps 5
    with client.sse('/several?groups=a,b', last_event_id=last) as stream:
        assert stream.receive().data == '[False, True]'
        publish(client, 'b', 'b2')
        b2 = stream.receive()
    assert json.loads(b2.id).keys() == {'b'}  # a's stale part is gone


@pytest.mark.parametrize(
    'event_id',
    ['{', '{"a": 1}', '[]', '{"a" "x"}', 'abc-1', '', NESTED],
)
def test_ids_that_are_not_composite(event_id):
    from pyramid_asgi_ws.sse_groups import group_position, split_id

    assert split_id(event_id) is None
    assert group_position(event_id, 'a') == event_id
    assert group_position(None, 'a') is None


def test_send_queue_overflow_ends_the_stream(client):
    with client.sse('/small/flood') as stream:
        stream.receive()

        async def flood() -> None:
            broadcaster = get_broadcaster(client.app.registry)
            for number in range(10):  # in one turn: the queue holds 2
                broadcaster._receive('flood', encode(str(number)))

        client.call(flood)
        with pytest.raises(StreamClosed):
            stream.receive_many(10)
    wait_until(lambda: ENDED == ['flood True'], 'the consumer to end')


def test_client_going_away_cancels_a_waiting_consumer(client):
    with client.sse('/group/gone') as stream:
        stream.receive()
    wait_until(lambda: ENDED == ['gone True'], 'the consumer to end')
    with client.sse('/sender') as stream:
        stream.receive_many(3)
    wait_until(lambda: ENDED[1:], 'the sender to end')
    assert ENDED[1] in ('sender StreamClosed', 'sender cancelled')


def test_heartbeats_on_an_idle_stream(client):
    with TestClient(make_app(**{'asgi_ws.sse_heartbeat': '0.05'})) as other:
        with other.sse('/group/quiet') as stream:
            stream.receive()
            stream.wait_comments(3)
            assert not stream._pending
    with client.sse('/beat/beaten') as stream:  # heartbeat=0.05 of its own
        stream.receive()
        stream.wait_comments(1)
    with client.sse('/sender') as stream:
        with pytest.raises(WebSocketTimeout, match='0 of 1 comments'):
            stream.wait_comments(1, timeout=0)


def test_heartbeats_only_after_the_interval_without_a_write():
    async def main() -> None:
        wire = Wire()
        stream = make_stream(wire)
        await stream._start()
        beat = asyncio.ensure_future(heartbeats(stream, 60))
        await asyncio.sleep(0)  # just written: it waits for the rest
        stream._last_write -= 61  # a minute without a write
        beat.cancel()
        beat = asyncio.ensure_future(heartbeats(stream, 60))
        await asyncio.sleep(0)
        beat.cancel()
        bodies = [m['body'] for m in wire.sent[1:]]
        assert bodies == [b':\n\n'] * 2  # the first write, one heartbeat

    run(main())


def test_a_consumer_that_raises_ends_its_stream(client, caplog):
    with caplog.at_level(logging.INFO, 'pyramid_asgi_ws'):
        with client.sse('/raises') as stream:
            assert stream.receive().data == 'first'
            with pytest.raises(StreamClosed):
                stream.receive()
        with client.sse('/http-error') as stream:
            with pytest.raises(StreamClosed):
                stream.receive()
    messages = [record.getMessage() for record in caplog.records]
    assert any('failed on event stream /raises' in m for m in messages)
    assert any('raised 503 Service Unavailable' in m for m in messages)


def test_a_consumer_may_close_its_stream(client):
    with client.sse('/closes') as stream:
        assert stream.receive().data == 'bye'
        with pytest.raises(StreamClosed):
            stream.receive()
    wait_until(lambda: ENDED == ['closes done'], 'the consumer to end')


def test_hooks_take_group_messages_instead(client):
    with client.sse('/hooked') as stream:
        assert stream.receive().data == 'joined'
        publish(client, 'hooked', 'to the hook')
        assert stream.receive().data == 'hook ran'


def test_class_consumers_get_an_instance_per_request(client):
    Counter.instances = 0
    for number in (1, 2):
        with client.sse('/count') as stream:
            assert stream.receive().data == f'instance {number}'


def test_scanned_consumer(client):
    with client.sse('/scanned/bob') as stream:
        assert stream.receive().data == 'bob'


def test_refusals(client):
    with pytest.raises(StreamRefused) as refused:
        with client.sse('/missing'):
            pass  # pragma: no cover - refused before
    assert refused.value.status == 404
    assert str(refused.value) == 'event stream refused with 404: 404 Not Found'
    scope = client._target.http_scope('/greet', method='POST')
    session = type(client.sse('/greet'))(client, scope, client.timeout)
    with pytest.raises(StreamRefused) as refused:
        with session:
            pass  # pragma: no cover - refused before
    assert refused.value.status == 405
    assert refused.value.headers['allow'] == 'GET'


def test_the_default_permission_guards_streams():
    """As for views: a stream without permission= needs the default
    permission, and NO_PERMISSION_REQUIRED opts out of it."""
    from pyramid.security import NO_PERMISSION_REQUIRED, Denied

    calls: list[str] = []

    class Policy:
        def identity(self, request: Any) -> None:
            return None

        def authenticated_userid(self, request: Any) -> None:
            return None

        def permits(self, request: Any, context: Any, permission: str) -> Any:
            calls.append(threading.current_thread().name)
            return Denied(f'no {permission}')

    with Configurator() as config:
        config.include('pyramid_asgi_ws')
        config.set_security_policy(Policy())
        config.set_default_permission('view')
        config.add_asgi_consumer('/closed', greet, protocol='sse')
        config.add_asgi_consumer(
            '/open', greet, protocol='sse', permission=NO_PERMISSION_REQUIRED
        )
        app = config.make_asgi_app()
    with TestClient(app) as client:
        with pytest.raises(StreamRefused) as refused:
            with client.sse('/closed'):
                pass  # pragma: no cover - refused before
        assert refused.value.status == 401
        with client.sse('/open?who=x') as stream:
            assert stream.receive().data == 'hello x'
    # one check (the opted-out stream needs none), in a pool thread
    assert len(calls) == 1
    assert calls[0] not in ('TestClient', threading.main_thread().name)


def test_shutdown_ends_streams(client):
    with client.sse('/group/down') as stream:
        stream.receive()
        client.call(client.app.close_connections)
        with pytest.raises(StreamClosed):
            stream.receive()
        assert not client.app.streams
    with pytest.raises(StreamRefused) as refused:
        with client.sse('/greet'):
            pass  # pragma: no cover - refused before
    assert refused.value.status == 503


def test_session_misuse(client):
    session = client.sse('/greet')
    with pytest.raises(RuntimeError, match='not open'):
        session.close()
    with session:
        with pytest.raises(RuntimeError, match='already opened'):
            session.__enter__()
        session.receive_many(2)
        session.close()
        session.close()  # twice does nothing
    with client.sse('/group/slow', timeout=0.2) as stream:
        stream.receive()
        with pytest.raises(WebSocketTimeout):
            stream.receive()


def test_session_start_times_out():
    async def never(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(10)

    with TestClient(never, lifespan=False, timeout=0.2) as client:
        with pytest.raises(WebSocketTimeout):
            client.sse('/').__enter__()


# -- an EventStream with hand-made receive and send --------------------------


class Wire:
    """The server side: what the stream sent, and how sending fails."""

    def __init__(self, fail: type[Exception] | None = None) -> None:
        self.sent: list[dict[str, Any]] = []
        self.fail = fail
        self.disconnect = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.disconnect.wait()
        return {'type': 'http.disconnect'}

    async def send(self, message: dict[str, Any]) -> None:
        if self.fail is not None and message['type'] == 'http.response.body':
            raise self.fail('send failed')
        self.sent.append(message)


def make_stream(wire: Wire, **kw: Any) -> EventStream:
    scope = {'type': 'http', 'path': '/s', 'headers': [], 'query_string': b''}
    return EventStream(scope, wire.receive, wire.send, **kw)


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_send_to_a_gone_client_raises_stream_closed():
    async def main() -> None:
        wire = Wire()
        stream = make_stream(wire)
        await stream._start()
        wire.fail = OSError
        with pytest.raises(StreamClosed, match='went away'):
            await stream.send('x')
        assert stream.closed
        await stream._end()  # nothing to end: the client is gone

    run(main())


def test_a_client_gone_before_the_stream_starts():
    from pyramid_asgi_ws.router import Consumer
    from pyramid_asgi_ws.sse_running import run_stream

    async def never_runs(stream: EventStream) -> None:
        raise AssertionError('ran')  # pragma: no cover - must not run

    async def main() -> None:
        for fail_on in ('http.response.start', 'http.response.body'):
            wire = Wire()

            async def send(
                message: dict[str, Any], kind: str = fail_on
            ) -> None:
                if message['type'] == kind:
                    raise OSError('the client is gone')

            stream = make_stream(wire)
            stream._send = send
            consumer = Consumer('c', '/s', never_runs, protocol='sse')
            await run_stream(consumer, stream)
            assert stream.closed

    run(main())


def test_a_stream_closed_while_it_starts_ends_without_its_consumer():
    """Shutdown's close() of a stream whose response start the server is
    still taking: the stream ends as it starts, its consumer never runs
    (it would run on after the shutdown)."""
    from pyramid_asgi_ws.router import Consumer
    from pyramid_asgi_ws.sse_running import run_stream

    ran: list[bool] = []

    async def never_runs(stream: EventStream) -> None:
        ran.append(True)  # pragma: no cover - must not run

    async def main() -> None:
        wire = Wire()
        starting, go_on = asyncio.Event(), asyncio.Event()

        async def send(message: dict[str, Any]) -> None:
            if message['type'] == 'http.response.start':
                starting.set()
                await go_on.wait()
            wire.sent.append(message)

        stream = make_stream(wire)
        stream._send = send
        consumer = Consumer('c', '/s', never_runs, protocol='sse')
        task = asyncio.ensure_future(run_stream(consumer, stream))
        await starting.wait()
        await stream.close()  # what close_connections does
        go_on.set()
        await asyncio.wait_for(task, 5)
        assert stream.closed and not ran
        assert wire.sent[-1] == {'type': 'http.response.body', 'body': b''}

    run(main())


def test_a_send_racing_the_end_raises_stream_closed():
    async def main() -> None:
        wire = Wire()
        stream = make_stream(wire)
        await stream._start()
        wire.fail = RuntimeError
        stream.application_state = stream.application_state.DISCONNECTED
        with pytest.raises(StreamClosed, match='is over'):
            await stream._write(b'x')

    run(main())


def test_a_send_failing_as_the_stream_ends_raises_stream_closed():
    async def main() -> None:
        stream = make_stream(Wire())
        await stream._start()

        async def ended_meanwhile(message: dict[str, Any]) -> None:
            stream.application_state = stream.application_state.DISCONNECTED
            raise RuntimeError('response already complete')

        stream._send = ended_meanwhile
        with pytest.raises(StreamClosed, match='is over'):
            await stream.send('x')

    run(main())


def test_a_server_error_on_send_goes_on():
    async def main() -> None:
        wire = Wire()
        stream = make_stream(wire)
        await stream._start()
        wire.fail = RuntimeError
        with pytest.raises(RuntimeError, match='send failed'):
            await stream.send('x')
        await stream._end()  # the end's own failure is swallowed

    run(main())


def test_a_stream_never_started_ends_quietly():
    async def main() -> None:
        wire = Wire()
        stream = make_stream(wire)
        with pytest.raises(StreamClosed):
            await stream.send('x')
        await stream.close()
        assert wire.sent == []
        with pytest.raises(RuntimeError, match='no request factory'):
            stream.request  # noqa: B018
        with pytest.raises(RuntimeError, match='no thread pool'):
            await stream.run_sync(len, 'x')
        with pytest.raises(ValueError, match='line break'):
            await stream.join('g', event='a\nb')

    run(main())


def test_many_sends_yield_to_the_loop():
    async def main() -> None:
        stream = make_stream(Wire())
        await stream._start()
        turns = 0

        async def other() -> None:
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        task = asyncio.ensure_future(other())
        for _ in range(64):
            await stream.send('x')
        task.cancel()
        assert turns >= 3

    run(main())


def test_the_server_cancelling_the_request_cancels_the_consumer():
    from pyramid_asgi_ws.router import Consumer
    from pyramid_asgi_ws.sse_running import run_stream

    seen: list[str] = []

    async def consumer(stream: EventStream) -> None:
        try:
            await asyncio.sleep(10)
        finally:
            seen.append('consumer cancelled')

    async def main() -> None:
        stream = make_stream(Wire(), heartbeat=None)
        task = asyncio.ensure_future(
            run_stream(Consumer('c', '/s', consumer, protocol='sse'), stream)
        )
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())
    assert seen == ['consumer cancelled']


def test_deliver_sends_bytes_as_text():
    from pyramid_asgi_ws.broadcast.outbox import Outbox
    from pyramid_asgi_ws.sse import StreamMembership

    pushed: list[dict[str, Any]] = []
    outbox = Outbox(
        lambda message: None, lambda: True, lambda code: None, size=4
    )
    outbox.push = pushed.append  # type: ignore[method-assign]
    member = StreamMembership({}, outbox)
    member.deliver('g', Payload(encode(b'\xff ok'), '9'))
    assert pushed[0]['body'] == 'id: 9\ndata: \ufffd ok\n\n'.encode()
    # one payload to many streams: formatted once per event type
    other = StreamMembership({}, outbox)
    typed = StreamMembership({}, outbox)
    typed.events['g'] = 'chat'
    payload = Payload(encode('hi'), '10')
    for each in (member, other, typed):
        each.deliver('g', payload)
    assert pushed[1] is pushed[2] and pushed[3]['body'].startswith(b'event')


def test_streams_with_the_same_positions_share_an_event():
    from pyramid_asgi_ws.broadcast.outbox import Outbox
    from pyramid_asgi_ws.sse_groups import StreamMembership

    pushed: list[dict[str, Any]] = []
    outbox = Outbox(
        lambda message: None, lambda: True, lambda code: None, size=4
    )
    outbox.push = pushed.append  # type: ignore[method-assign]
    members = [StreamMembership({}, outbox) for _ in range(3)]
    for member, b in zip(members, ('b-1', 'b-1', 'b-2'), strict=True):
        member.kept, member.composite = {'a', 'b'}, True
        member.positions['b'] = b
    payload = Payload(encode('hi'), 'a-5')
    for member in members:
        member.deliver('a', payload)
    first, same, other = pushed
    assert first is same and other is not first
    assert b'id: {"b":"b-1","a":"a-5"}\n' in first['body']
    assert b'id: {"b":"b-2","a":"a-5"}\n' in other['body']


def test_a_failed_join_keeps_a_position_live_messages_gave():
    from pyramid_asgi_ws.broadcast.history import HistoryPolicy
    from pyramid_asgi_ws.broadcast.outbox import Outbox
    from pyramid_asgi_ws.sse_groups import StreamMembership

    class Broadcaster:
        """Its history is gone, and a live message comes meanwhile."""

        history = HistoryPolicy(5)

        async def join(self, member, group, info, since):
            member.deliver(group, Payload(encode('live'), 'x-9'))
            return False

    outbox = Outbox(
        lambda message: None, lambda: True, lambda code: None, size=4
    )
    outbox.push = lambda message: True  # type: ignore[method-assign]
    member = StreamMembership({}, outbox)
    since = json.dumps({'a': 'x-1', 'b': 'y-1'})
    member.resume_from(since)
    assert not run(member.join(Broadcaster(), 'a', None, since, None))
    assert member.positions == {'a': 'x-9', 'b': 'y-1'}


def test_run_sync_runs_in_the_pool_with_the_request_current():
    from pyramid.threadlocal import get_current_request

    def where() -> tuple[str, Any]:
        return threading.current_thread().name, get_current_request()

    async def record(stream: EventStream) -> None:
        name, request = await stream.run_sync(where)
        loop = threading.current_thread().name
        await stream.send(f'{name != loop} {request is stream.request}')

    with Configurator() as config:
        config.include('pyramid_asgi_ws')
        config.add_asgi_consumer('/where', record, protocol='sse')
        app = config.make_asgi_app()
    with TestClient(app) as client, client.sse('/where') as stream:
        assert stream.receive().data == 'True True'


def test_the_parser_keeps_a_cr_that_may_start_a_crlf():
    parser = EventParser()
    assert parser.feed(b'data: a\r') == []
    assert parser.feed(b'\nretry: soon\nfield: x\nretry: 5\r\n\r\n') == [
        Event('a', retry=5)
    ]
    assert parser.feed(b'id\n\n') == []  # no data: nothing dispatched
    assert parser.last_event_id is None


def test_the_test_client_checks_what_the_app_sends():
    async def websocket_messages(scope: Any, receive: Any, send: Any) -> None:
        await send({'type': 'websocket.accept'})

    async def sends_after_the_end(scope: Any, receive: Any, send: Any) -> None:
        start = {'type': 'http.response.start', 'status': 200}
        await send(dict(start, headers=list(STREAM_HEADERS)))
        await send({'type': 'http.response.body', 'body': b'data: x\n\n'})
        await send({'type': 'http.response.body'})
        await send({'type': 'http.response.body', 'body': b'late'})

    for app, error in (
        (websocket_messages, 'unexpected ASGI message'),
        (sends_after_the_end, 'already complete'),
    ):
        with TestClient(app, lifespan=False) as client:
            with pytest.raises(RuntimeError, match=error):
                with client.sse('/') as stream:
                    assert stream.receive().data == 'x'


def test_the_documented_example():
    from tests.test_docs_examples import load

    app = load('sse').main()
    with TestClient(app) as client:
        with client.sse('/notifications/ann') as stream:
            wait_until(
                lambda: get_broadcaster(app.registry).groups, 'the join'
            )
            client.http.post('/notify/ann', {'text': 'hi'}, status=204)
            notice = stream.receive()
        assert (notice.event, notice.data) == ('notice', '{"text":"hi"}')
        client.http.post('/notify/ann', {'text': 'missed'}, status=204)
        with client.sse('/notifications/ann', last_event_id=notice.id) as s:
            assert s.receive().data == '{"text":"missed"}'
        with client.sse('/notifications/ann', last_event_id='0-0') as s:
            assert s.receive().event == 'reload'
