"""Two consumers for the same pattern: a conflict at commit."""

from pyramid_asgi_ws import websocket_consumer


@websocket_consumer('/same', name='first')
async def first(ws):
    await ws.accept()


@websocket_consumer('/same', name='second')
async def second(ws):
    await ws.accept()
