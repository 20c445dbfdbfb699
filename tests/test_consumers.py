"""The class-based WebSocketConsumer."""

from __future__ import annotations

import pytest

from pyramid_asgi_ws import WebSocket, WebSocketConsumer, WebSocketDisconnect
from tests.asgi import Channel, run, ws_scope

CONNECT = {'type': 'websocket.connect'}


def drive(consumer, *incoming):
    channel = Channel(CONNECT, *incoming)
    ws = WebSocket(ws_scope(), channel.receive, channel.send)

    async def go():
        try:
            await consumer(ws)
        except WebSocketDisconnect as exc:
            return exc.code
        return None

    return run(go()), channel, ws


class Recorder(WebSocketConsumer):
    encoding = 'bytes'

    def __init__(self):
        self.log = []

    async def on_receive(self, ws, data):
        self.log.append(data)

    async def on_disconnect(self, ws, code):
        self.log.append(('gone', code))

    async def on_group_message(self, group, message):
        self.log.append((group, message))


def test_receive_loop_and_disconnect_code():
    consumer = Recorder()
    code, channel, ws = drive(
        consumer,
        {'type': 'websocket.receive', 'bytes': b'a'},
        {'type': 'websocket.disconnect', 'code': 1001},
    )
    assert code == 1001
    assert consumer.log == [b'a', ('gone', 1001)]
    assert consumer.ws is ws
    assert ws.on_group_message == consumer.on_group_message
    assert channel.types() == ['websocket.accept']


def test_default_hooks_accept_and_ignore():
    code, channel, ws = drive(
        WebSocketConsumer(),
        {'type': 'websocket.receive', 'text': 'x'},
        {'type': 'websocket.disconnect', 'code': 1000},
    )
    assert code == 1000
    assert ws.on_group_message is None
    run(WebSocketConsumer().on_group_message('g', 'm'))


def test_refusing_in_on_connect_skips_the_loop():
    class Refuse(Recorder):
        async def on_connect(self, ws):
            await ws.deny(403)

    consumer = Refuse()
    code, channel, _ = drive(consumer)
    assert code is None and consumer.log == []
    assert channel.sent[0]['status'] == 403


def test_error_in_on_receive_still_calls_on_disconnect():
    class Broken(Recorder):
        async def on_receive(self, ws, data):
            raise ValueError('bug')

    consumer = Broken()
    with pytest.raises(ValueError):
        drive(consumer, {'type': 'websocket.receive', 'bytes': b'a'})
    assert consumer.log == [('gone', 1011)]
