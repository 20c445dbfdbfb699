"""Consumers written as functions, as classes, and as raw ASGI apps."""

from pyramid.config import Configurator

from pyramid_asgi_ws import (
    WebSocketConsumer,
    WebSocketDisconnect,
    asgi_consumer,
    websocket_consumer,
)


# -- function -------------------------------------------------------------
@websocket_consumer('/shout')
async def shout(ws):
    await ws.accept()
    try:
        while True:
            text = await ws.receive_text()
            await ws.send_text(text.upper())
    except WebSocketDisconnect as exc:
        print(f'client left with {exc.code}')


# -- class ----------------------------------------------------------------
@websocket_consumer('/counter')
class Counter(WebSocketConsumer):
    """Count what each client sends; one instance per connection."""

    encoding = 'json'

    async def on_connect(self, ws):
        self.total = 0
        await ws.accept()

    async def on_receive(self, ws, data):
        self.total += data['add']
        await ws.send_json({'total': self.total})

    async def on_disconnect(self, ws, code):
        print(f'counted to {self.total}, closed with {code}')


# -- refusing and closing -------------------------------------------------
@websocket_consumer('/vip/{name}')
async def vip(ws):
    if ws.matchdict['name'] != 'alice':
        await ws.deny(403, 'members only')
        return
    await ws.accept()
    await ws.send_text('welcome')
    await ws.close(4000, 'that was all')


# -- raw ASGI -------------------------------------------------------------
@asgi_consumer('/health')
async def health(scope, receive, send):
    await send(
        {
            'type': 'http.response.start',
            'status': 200,
            'headers': [(b'content-type', b'text/plain')],
        }
    )
    await send({'type': 'http.response.body', 'body': b'ok'})


async def binary_echo(scope, receive, send):
    """A plain ASGI WebSocket app, registered with ``raw=True``."""
    while True:
        message = await receive()
        if message['type'] == 'websocket.connect':
            await send({'type': 'websocket.accept'})
        elif message['type'] == 'websocket.receive':
            await send({'type': 'websocket.send', 'bytes': message['bytes']})
        else:
            break


def make_app():
    with Configurator() as config:
        config.include('pyramid_asgi_ws')
        config.scan(__name__)
        # the imperative form of the decorators above
        config.add_asgi_consumer('/raw', binary_echo, raw=True)
    return config.make_asgi_app()
