"""The WebSocket object, driven by in-memory ASGI channels."""

from __future__ import annotations

import asyncio
import threading

import pytest

from pyramid_asgi_ws.broadcast.codec import Payload, encode
from pyramid_asgi_ws.websocket import (
    YIELD_EVERY,
    WebSocket,
    WebSocketDisconnect,
    WebSocketState,
    encode_headers,
    json_message,
)
from pyramid_asgi_ws.wsgi.pool import Pool
from tests.asgi import Channel, run, ws_scope
from tests.support import until

TIMEOUT = 5

CONNECT = {'type': 'websocket.connect'}


def make(*incoming, scope=None, **kw):
    channel = Channel(*incoming)
    ws = WebSocket(scope or ws_scope(), channel.receive, channel.send, **kw)
    return ws, channel


def test_accept_with_subprotocol_and_headers():
    async def go():
        ws, channel = make(CONNECT)
        await ws.accept('chat', headers={'X-A': 'é'})
        return ws, channel

    ws, channel = run(go())
    assert channel.sent == [
        {
            'type': 'websocket.accept',
            'subprotocol': 'chat',
            'headers': [(b'X-A', 'é'.encode('latin-1'))],
        }
    ]
    assert ws.application_state is WebSocketState.CONNECTED
    assert ws.client_state is WebSocketState.CONNECTED


def test_receive_and_send_each_kind():
    async def go():
        ws, channel = make(
            CONNECT,
            {'type': 'websocket.receive', 'text': 'hi'},
            {'type': 'websocket.receive', 'bytes': b'\x00'},
            {'type': 'websocket.receive', 'text': '{"a": 1}'},
            {'type': 'websocket.receive', 'bytes': b'[1]'},
        )
        await ws.accept()
        got = [
            await ws.receive_text(),
            await ws.receive_bytes(),
            await ws.receive_json(),
            await ws.receive_json(),
        ]
        await ws.send_text('t')
        await ws.send_bytes(b'b')
        await ws.send_json({'k': 'é'})
        await ws.send_json([1], mode='binary')
        return got, channel.sent[1:]

    got, sent = run(go())
    assert got == ['hi', b'\x00', {'a': 1}, [1]]
    assert sent == [
        {'type': 'websocket.send', 'text': 't'},
        {'type': 'websocket.send', 'bytes': b'b'},
        {'type': 'websocket.send', 'text': '{"k":"é"}'},
        {'type': 'websocket.send', 'bytes': b'[1]'},
    ]


def test_iterators_stop_at_disconnect():
    async def go(kind, frames):
        ws, _ = make(
            CONNECT, *frames, {'type': 'websocket.disconnect', 'code': 1001}
        )
        await ws.accept()
        return [item async for item in getattr(ws, f'iter_{kind}')()], ws

    texts, ws = run(go('text', [{'type': 'websocket.receive', 'text': 'a'}]))
    assert texts == ['a']
    assert ws.close_code == 1001
    assert run(go('bytes', [{'type': 'websocket.receive', 'bytes': b'a'}]))[
        0
    ] == [b'a']
    assert run(go('json', [{'type': 'websocket.receive', 'text': '1'}]))[
        0
    ] == [1]


def test_disconnect_raises_with_code_and_reason():
    async def go():
        ws, _ = make(
            CONNECT,
            {'type': 'websocket.disconnect', 'code': 4001, 'reason': 'bye'},
        )
        await ws.accept()
        with pytest.raises(WebSocketDisconnect) as excinfo:
            await ws.receive_text()
        # once gone, further receives keep saying so
        with pytest.raises(WebSocketDisconnect):
            await ws.receive_text()
        with pytest.raises(RuntimeError, match='disconnect message'):
            await ws.receive()
        return excinfo.value

    exc = run(go())
    assert (exc.code, exc.reason) == (4001, 'bye')
    assert 'code=4001' in repr(exc)


@pytest.mark.parametrize(
    'frame, method, code',
    [
        ({'bytes': b'x'}, 'receive_text', 1003),
        ({'text': 'x'}, 'receive_bytes', 1003),
        ({'text': '{bad'}, 'receive_json', 1007),
        ({'text': 'x' * 11}, 'receive_text', 1009),
    ],
)
def test_bad_messages_close_with_a_code(frame, method, code):
    async def go():
        ws, channel = make(
            CONNECT,
            dict(frame, type='websocket.receive'),
            max_message_size=10,
        )
        await ws.accept()
        with pytest.raises(WebSocketDisconnect) as excinfo:
            await getattr(ws, method)()
        return excinfo.value, channel.sent[-1]

    exc, last = run(go())
    assert exc.code == code
    assert last['type'] == 'websocket.close'
    assert last['code'] == code


def test_receive_before_accept_is_an_error():
    async def go():
        ws, _ = make(CONNECT)
        with pytest.raises(RuntimeError, match='call "accept" first'):
            await ws.receive_text()

    run(go())


def test_first_message_must_be_connect():
    async def go():
        ws, _ = make({'type': 'websocket.receive', 'text': 'x'})
        with pytest.raises(RuntimeError, match='websocket.connect'):
            await ws.receive()

    run(go())


def test_deny_with_the_extension_sends_an_http_response():
    async def go():
        ws, channel = make(CONNECT)
        await ws.deny(404, 'nope', headers=[('X-Why', 'because')])
        return ws, channel.sent

    ws, sent = run(go())
    assert sent[0]['status'] == 404
    assert (b'content-type', b'text/plain; charset=utf-8') in sent[0][
        'headers'
    ]
    assert (b'content-length', b'4') in sent[0]['headers']
    assert sent[1] == {'type': 'websocket.http.response.body', 'body': b'nope'}
    assert ws.application_state is WebSocketState.DISCONNECTED


def test_deny_without_the_extension_closes():
    async def go():
        ws, channel = make(CONNECT, scope=ws_scope(extensions={}))
        await ws.deny(401)
        return channel.sent

    assert run(go()) == [{'type': 'websocket.close', 'code': 1008}]


def test_deny_after_accept_is_an_error():
    async def go():
        ws, _ = make(CONNECT)
        await ws.accept()
        with pytest.raises(RuntimeError, match='before accept'):
            await ws.deny()

    run(go())


def test_send_state_checks():
    async def go():
        ws, _ = make(CONNECT)
        with pytest.raises(RuntimeError, match='websocket.accept'):
            await ws.send({'type': 'websocket.send', 'text': 'x'})
        await ws.accept()
        with pytest.raises(RuntimeError, match='websocket.send'):
            await ws.send({'type': 'websocket.accept'})
        await ws.close(4000, 'done')
        await ws.close()  # twice is fine
        with pytest.raises(RuntimeError, match='this task closed'):
            await ws.send_text('late')  # a programming error, as Starlette
        ws2, _ = make(CONNECT)
        await ws2.send(
            {'type': 'websocket.http.response.start', 'status': 400}
        )
        with pytest.raises(RuntimeError, match='response.body'):
            await ws2.send({'type': 'websocket.send', 'text': 'x'})
        await ws2.send(
            {'type': 'websocket.http.response.body', 'more_body': True}
        )
        assert ws2.application_state is WebSocketState.RESPONSE

    run(go())


def test_sends_that_never_suspend_still_let_other_tasks_run():
    # Channel.send returns at once, as a server's send does while its
    # transport takes data: the WebSocket gives the loop turns itself.
    async def go():
        ws, channel = make(CONNECT)
        await ws.accept()
        turns = 0

        async def other():
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        task = asyncio.ensure_future(other())
        for _ in range(4 * YIELD_EVERY):
            await ws.send_text('x')
        task.cancel()
        return turns, len(channel.sent)

    turns, sent = run(go())
    assert sent == 1 + 4 * YIELD_EVERY
    assert turns == 4


def test_close_before_accept_refuses():
    async def go():
        ws, channel = make(CONNECT)
        await ws.close()
        return channel.types(), ws.close_code

    assert run(go()) == (['websocket.close'], 1000)


@pytest.mark.parametrize('kind', ['websocket.send', 'websocket.close'])
def test_send_to_a_vanished_client_raises_disconnect_1006(kind):
    async def go():
        ws, channel = make(CONNECT)
        await ws.accept()
        channel.fail_on = kind
        with pytest.raises(WebSocketDisconnect) as excinfo:
            if kind == 'websocket.send':
                await ws.send_text('x')
            else:
                await ws.close()
        return (
            excinfo.value.code,
            ws.close_code,
            ws.application_state,
            ws.client_state,
        )

    disconnected = WebSocketState.DISCONNECTED
    assert run(go()) == (1006, 1006, disconnected, disconnected)


def daphne_like_send(sent):
    """A send that refuses close codes 1001-2999, as daphne does."""

    async def send(message):
        code = message.get('code', 1000)
        if message['type'] == 'websocket.close' and 1000 < code < 3000:
            raise ValueError('invalid close code')
        sent.append(message)

    return send


@pytest.mark.parametrize(
    'code, sent_code', [(1011, 4011), (1001, 4001), (1013, 4013), (4000, 4000)]
)
def test_refused_close_code_falls_back_to_the_private_range(code, sent_code):
    async def go():
        sent = []
        ws = WebSocket(
            ws_scope(), Channel(CONNECT).receive, daphne_like_send(sent)
        )
        await ws.accept()
        await ws.close(code, 'why')
        return sent[-1], ws.close_code

    last, close_code = run(go())
    assert last == {
        'type': 'websocket.close',
        'code': sent_code,
        'reason': 'why',
    }
    assert close_code == code


def test_a_server_refusing_an_accepted_code_raises():
    async def go():
        async def send(message):
            if message['type'] == 'websocket.close':
                raise ValueError('refused')

        ws = WebSocket(ws_scope(), Channel(CONNECT).receive, send)
        await ws.accept()
        with pytest.raises(ValueError):
            await ws.close(4000)
        ws2 = WebSocket(ws_scope(), Channel(CONNECT).receive, send)
        await ws2.accept()
        with pytest.raises(ValueError):  # 4011 is refused too
            await ws2.close(1011)

    run(go())


@pytest.mark.parametrize(
    'code, reason',
    [(1005, ''), (1006, ''), (1004, ''), (1015, ''), (999, ''), (2000, ''),
     (5000, ''), (True, ''), ('1000', ''), (1000, 'é' * 62)],
)  # fmt: skip
def test_close_refuses_what_the_protocol_forbids(code, reason):
    async def go():
        ws, channel = make(CONNECT)
        await ws.accept()
        with pytest.raises(ValueError, match='close'):
            await ws.close(code, reason)
        await ws.close(4999, 'é' * 61)  # 122 bytes: fits
        return channel.sent[-1]

    assert run(go())['code'] == 4999


def test_request_is_built_once_on_demand():
    built = []

    def factory(ws):
        built.append(ws)
        return object()

    ws, _ = make(request_factory=factory)
    assert ws.request is ws.request
    assert built == [ws]
    bare, _ = make()
    with pytest.raises(RuntimeError, match='no request factory'):
        getattr(bare, 'request')  # noqa: B009


def test_scope_descriptors():
    scope = ws_scope(
        '/room/1',
        headers=[(b'Cookie', b'a=1'), (b'cookie', b'b=2')],
        subprotocols=['x'],
        matchdict={'room': '1'},
    )
    ws, _ = make(scope=scope)
    assert ws.path == '/room/1'
    assert dict(ws.headers) == {'cookie': 'a=1; b=2'}
    assert ws.headers['COOKIE'] == 'a=1; b=2' and 'Cookie' in ws.headers
    assert 1 not in ws.headers and len(ws.headers) == 1
    assert 'cookie' in repr(ws.headers)
    multi = make(scope=ws_scope(headers=[(b'X', b'1'), (b'x', b'2')]))[0]
    assert multi.headers.get('x') == '1, 2'
    assert multi.headers.get('y') is None
    assert ws.subprotocols == ['x']
    assert ws.matchdict == {'room': '1'}


def test_push_policies():
    async def go(policy):
        taken, release = asyncio.Event(), asyncio.Event()
        sent = []

        async def slow_send(message):
            if message['type'] == 'websocket.send':
                taken.set()
                await release.wait()
            sent.append(message)

        ws = WebSocket(
            ws_scope(),
            Channel(CONNECT).receive,
            slow_send,
            send_queue_size=2,
            send_overflow=policy,
        )
        await ws.accept()
        results = [
            ws.membership.outbox.push({'type': 'websocket.send', 'text': '0'})
        ]
        # the sender takes '0' and waits on it
        await asyncio.wait_for(taken.wait(), TIMEOUT)
        results += [
            ws.membership.outbox.push(
                {'type': 'websocket.send', 'text': str(n)}
            )
            for n in range(1, 5)
        ]
        release.set()
        await ws.membership.outbox.flush(TIMEOUT)
        await ws._finish()
        texts = [m.get('text') for m in sent if m['type'] == 'websocket.send']
        closes = [m['code'] for m in sent if m['type'] == 'websocket.close']
        return results, texts, closes, ws.dropped

    results, texts, closes, dropped = run(go('drop_oldest'))
    assert texts == ['0', '3', '4'] and dropped == 2 and not closes
    results, texts, closes, dropped = run(go('drop_newest'))
    assert texts == ['0', '1', '2'] and results[3:] == [False, False]
    results, texts, closes, dropped = run(go('close'))
    # the close does not wait behind '0', which waits for the slow client
    assert closes == [1013] and texts == []


def test_push_when_not_connected_is_ignored():
    ws, _ = make()
    message = {'type': 'websocket.send', 'text': 'x'}
    assert ws.membership.outbox.push(message) is False


def test_deliver_pushes_or_calls_the_hook():
    async def go():
        ws, channel = make(CONNECT)
        await ws.accept()
        member = ws.membership
        for message in ('text', b'bytes', {'json': True}):
            assert member.deliver('g', Payload(encode(message)))
        await member.outbox.flush(TIMEOUT)
        seen = []

        async def hook(group, message):
            seen.append((group, message))
            if message == 'boom':
                raise ValueError('hook failed')

        ws.on_group_message = hook
        assert ws.on_group_message is hook
        member.deliver('g', Payload(encode('to hook')))
        member.deliver('g', Payload(encode('boom')))
        await until(lambda: len(seen) == 2, 'the hook called twice', TIMEOUT)
        ws.on_group_message = lambda g, m: seen.append(m)
        member.deliver('g', Payload(encode('sync hook')))

        began = asyncio.Event()

        async def forever(group, message):
            began.set()
            await asyncio.Event().wait()

        ws.on_group_message = forever
        member.deliver('g', Payload(encode('cancelled at the end')))
        await asyncio.wait_for(began.wait(), TIMEOUT)
        await ws._finish()
        return channel.sent[1:], seen

    sent, seen = run(go())
    assert sent == [
        {'type': 'websocket.send', 'text': 'text'},
        {'type': 'websocket.send', 'bytes': b'bytes'},
        {'type': 'websocket.send', 'text': '{"json":true}'},
    ]
    assert seen == [('g', 'to hook'), ('g', 'boom'), 'sync hook']


def test_a_failing_sync_hook_counts_as_not_delivered(caplog):
    async def go():
        ws, _ = make(CONNECT)
        await ws.accept()

        def broken(group, message):
            raise RuntimeError('broken hook')

        ws.on_group_message = broken
        return ws.membership.deliver('g', Payload(encode('x')))

    assert run(go()) is False
    assert 'on_group_message hook failed on WebSocket /ws' in caplog.text


def test_an_idle_connection_has_no_membership():
    ws, _ = make(CONNECT)
    assert ws.groups == set() and ws.pending == ws.dropped == 0
    assert ws.on_group_message is None
    run(ws._finish())
    assert ws._membership is None


def test_groups_need_a_broadcaster():
    ws, _ = make()
    with pytest.raises(RuntimeError, match='no broadcaster'):
        run(ws.join('g'))


def test_helpers():
    assert encode_headers(None) == []
    assert encode_headers([(b'a', 'b')]) == [(b'a', b'b')]
    with pytest.raises(ValueError, match='mode must be'):
        json_message(1, mode='yaml')


def test_presence_join_info_and_members():
    from pyramid.config import Configurator

    from pyramid_asgi_ws.testing import TestClient

    async def room(ws):
        await ws.accept()
        ws.presence = {'who': ws.request.GET['who']}
        if ws.request.GET.get('own'):
            await ws.join('lobby', info={'who': 'own-info'})
        else:
            await ws.join('lobby')
        await ws.send_json(
            sorted(m['who'] for m in (await ws.members('lobby')).values())
        )
        await ws.receive_text()

    config = Configurator()
    config.include('pyramid_asgi_ws')
    config.add_asgi_consumer('/room', room)
    with TestClient(config.make_asgi_app()) as client:
        with client.websocket_connect('/room?who=ann') as first:
            assert first.receive_json() == ['ann']
            with client.websocket_connect('/room?who=bob&own=1') as second:
                assert second.receive_json() == ['ann', 'own-info']


def test_close_sends_queued_group_messages_first():
    async def go():
        ws, channel = make(CONNECT)
        await ws.accept()
        for n in range(3):
            ws.membership.outbox.push(
                {'type': 'websocket.send', 'text': str(n)}
            )
        await ws.close()
        await ws._finish()
        return [m.get('text', m['type']) for m in channel.sent[1:]]

    assert run(go()) == ['0', '1', '2', 'websocket.close']


def test_close_gives_up_on_a_stuck_client(monkeypatch):
    from pyramid_asgi_ws.broadcast import outbox

    monkeypatch.setattr(outbox, 'FLUSH_TIMEOUT', 0.05)

    async def go():
        sent = []

        async def stuck(message):
            if message['type'] == 'websocket.send':
                await asyncio.Event().wait()
            sent.append(message['type'])

        ws = WebSocket(ws_scope(), Channel(CONNECT).receive, stuck)
        await ws.accept()
        ws.membership.outbox.push({'type': 'websocket.send', 'text': 'a'})
        ws.membership.outbox.push({'type': 'websocket.send', 'text': 'b'})
        await ws.close()
        await ws._finish()
        return sent, ws.pending

    assert run(go()) == (['websocket.accept', 'websocket.close'], 0)


@pytest.mark.parametrize(
    'disconnect, code',
    [
        ({'code': 1005}, 1006),  # uvicorn: the TCP connection ended
        ({'code': 1005, 'reason': ''}, 1005),  # a close frame without a code
        ({'code': None}, 1005),  # daphne: a close frame without a code
        ({}, 1005),
        ({'code': 1006}, 1006),  # hypercorn, daphne: lost
        ({'code': 4001, 'reason': 'x'}, 4001),
    ],
)
def test_a_lost_connection_is_1006_a_close_without_code_1005(disconnect, code):
    async def go(receive_with):
        ws, _ = make(CONNECT, dict(disconnect, type='websocket.disconnect'))
        await ws.accept()
        if receive_with == 'receive':
            await ws.receive()
            return ws.close_code
        with pytest.raises(WebSocketDisconnect) as excinfo:
            await ws.receive_text()
        assert excinfo.value.code == ws.close_code
        return ws.close_code

    assert run(go('receive')) == code
    assert run(go('receive_text')) == code


def test_deny_takes_a_pyramid_response_or_http_exception():
    from pyramid.httpexceptions import HTTPForbidden, HTTPUnauthorized
    from pyramid.response import Response

    async def go(response):
        ws, channel = make(CONNECT)
        await ws.deny(response)
        return channel.sent

    start, body = run(go(HTTPForbidden()))
    assert start['status'] == 403 and body['body'] == b'403 Forbidden'
    assert (b'content-type', b'text/plain; charset=utf-8') in start['headers']
    assert (b'content-length', b'13') in start['headers']
    start, body = run(
        go(HTTPUnauthorized(headers={'WWW-Authenticate': 'Basic'}))
    )
    assert (b'WWW-Authenticate', b'Basic') in start['headers']
    response = Response(b'{}', status=409, content_type='application/json')
    start, body = run(go(response))
    assert start['status'] == 409 and body['body'] == b'{}'
    assert (b'Content-Type', b'application/json') in start['headers']
    assert [
        n for n, _ in start['headers'] if n.lower() == b'content-length'
    ] == [b'content-length']


def test_finish_leaves_the_groups():
    from pyramid.config import Configurator

    from pyramid_asgi_ws.broadcast import get_broadcaster

    config = Configurator()
    config.include('pyramid_asgi_ws')
    config.commit()
    broadcaster = get_broadcaster(config.registry)

    async def go():
        ws, _ = make(CONNECT, scope=ws_scope(registry=config.registry))
        await ws.accept()
        await ws.join('a')
        await ws.join('b')
        assert broadcaster.groups == {'a': 1, 'b': 1}
        assert ws.groups == {'a', 'b'}
        await ws._finish()
        assert broadcaster.groups == {} and ws.groups == set()
        await ws._finish()  # twice: nothing
        await broadcaster.close()

    run(go())


def test_a_queued_send_to_a_vanished_client_ends_the_queue():
    async def go():
        ws, channel = make(CONNECT)
        await ws.accept()
        channel.fail_on = 'websocket.send'
        outbox = ws.membership.outbox
        assert outbox.push({'type': 'websocket.send', 'text': 'lost'})
        await outbox.flush(1)
        refused = outbox.push({'type': 'websocket.send', 'text': 'after'})
        await ws._finish()
        return ws.application_state, ws.close_code, outbox.pending, refused

    disconnected = WebSocketState.DISCONNECTED
    assert run(go()) == (disconnected, 1006, 0, False)

    async def unwatched():
        ws, channel = make(CONNECT)
        await ws.accept()
        channel.fail_on = 'websocket.send'
        outbox = ws.membership.outbox
        outbox.push({'type': 'websocket.send', 'text': 'lost'})
        await asyncio.wait_for(outbox._sender, 1)  # it ends by itself
        return ws.close_code

    assert run(unwatched()) == 1006


def test_receive_paths_of_raw_and_hostile_use():
    async def go():
        ws, _ = make(
            CONNECT,
            {'type': 'websocket.receive', 'text': 'raw'},
            {'type': 'websocket.receive', 'text': 'x'},
            {'type': 'websocket.receive', 'text': '[' * 100_000},
        )
        await ws.accept()
        await ws._connect()  # connected already: nothing
        raw = await ws.receive()
        text = await ws.receive_text()
        with pytest.raises(WebSocketDisconnect) as excinfo:
            await ws.receive_json()
        return raw['text'], text, excinfo.value.code

    assert run(go()) == ('raw', 'x', 1007)


def test_receiving_data_after_a_raw_receive_saw_the_disconnect():
    async def go():
        ws, _ = make(CONNECT, {'type': 'websocket.disconnect', 'code': 1000})
        await ws.accept()
        await ws.receive()
        with pytest.raises(RuntimeError, match='disconnect message'):
            await ws.receive_text()
        return ws.close_code

    assert run(go()) == 1000


def test_presence_is_kept_in_the_scope():
    ws, _ = make()
    assert ws.presence is None
    ws.presence = {'who': 'ann'}
    assert ws.scope['asgi_ws.presence'] == {'who': 'ann'}
    assert ws.membership.presence == {'who': 'ann'}


def test_sending_after_another_task_closed_is_a_disconnect():
    """Shutdown closes from its own task: the consumer's next send tells it
    the connection is gone, with the close code."""

    async def go():
        ws, _ = make(CONNECT)
        await ws.accept()
        await asyncio.ensure_future(ws.close(1001))
        with pytest.raises(WebSocketDisconnect) as excinfo:
            await ws.send_text('late')
        return excinfo.value.code

    assert run(go()) == 1001


def test_a_receive_waiting_when_another_task_closed_reports_our_code():
    """Shutdown closes while the consumer awaits a message: the client's
    answer ends that receive with the application's own code."""

    async def go():
        channel = Channel(CONNECT)
        waiting = asyncio.Event()

        async def receive():
            waiting.set()
            return await channel.receive()

        ws = WebSocket(ws_scope(), receive, channel.send)
        await ws.accept()
        waiting.clear()
        receiving = asyncio.ensure_future(ws.receive_text())
        await asyncio.wait_for(waiting.wait(), TIMEOUT)
        await ws.close(1001)
        await channel.incoming.put({'type': 'websocket.disconnect'})
        with pytest.raises(WebSocketDisconnect) as excinfo:
            await receiving
        return excinfo.value.code, ws.client_state

    assert run(go()) == (1001, WebSocketState.DISCONNECTED)


def test_a_rule_close_leaves_the_consumer_free_to_handle_it():
    async def go():
        ws, _ = make(CONNECT, {'type': 'websocket.receive', 'text': '{bad'})
        await ws.accept()
        with pytest.raises(WebSocketDisconnect):
            await ws.receive_json()
        with pytest.raises(WebSocketDisconnect) as excinfo:
            await ws.send_text('sorry')
        return excinfo.value.code

    assert run(go()) == 1007


def test_run_sync_needs_a_runner_and_returns_what_it_gives():
    async def runner(ws, fn, args, kwargs):
        return fn(*args, **kwargs)

    ws, _ = make(runner=runner)
    assert run(ws.run_sync(lambda a, b=0: a + b, 1, b=2)) == 3
    bare, _ = make()
    with pytest.raises(RuntimeError, match='no thread pool'):
        run(bare.run_sync(print))


def test_a_cancelled_run_sync_waits_for_its_call():
    log = []
    release = threading.Event()

    def blocking():
        log.append('call')
        release.wait(TIMEOUT)
        log.append('called')

    async def main():
        workers = Pool(1)
        ws, _ = make(runner=lambda ws, fn, a, kw: workers.call(fn, *a, **kw))
        task = asyncio.ensure_future(ws.run_sync(blocking))
        await until(lambda: log, 'the call to start')
        task.cancel()
        await asyncio.sleep(0.05)  # any wrongly early end comes now
        assert not task.done()
        log.append('released')
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        log.append('cancelled')
        workers.close()

    run(main())
    assert log == ['call', 'released', 'called', 'cancelled']
