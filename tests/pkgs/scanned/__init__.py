"""A package whose consumers ``config.scan()`` registers."""

from pyramid_asgi_ws import (
    WebSocketConsumer,
    asgi_consumer,
    websocket_consumer,
)


@websocket_consumer('/scanned/{name}', name='scanned-func')
async def scanned(ws):
    await ws.accept()
    await ws.send_text(ws.matchdict['name'])


@websocket_consumer('/scanned-class')
class ScannedClass(WebSocketConsumer):
    async def on_receive(self, ws, data):
        await ws.send_text(data[::-1])


@asgi_consumer('/scanned-http')
async def scanned_http(scope, receive, send):
    await send({'type': 'http.response.start', 'status': 204, 'headers': []})
    await send({'type': 'http.response.body', 'body': b''})


@asgi_consumer('/scanned-raw-ws', protocol='websocket', name='raw-ws')
async def scanned_raw_ws(scope, receive, send):
    await receive()
    await send({'type': 'websocket.close', 'code': 1000})
