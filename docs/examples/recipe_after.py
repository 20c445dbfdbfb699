"""The same application with pyramid_asgi_ws.

Serve it with ``uvicorn recipe_after:app``; nothing else changes.
"""

from pyramid.config import Configurator
from pyramid.response import Response


def hello_world(request):
    return Response('Hello')


async def hello_websocket(ws):
    await ws.accept()
    while True:
        message = await ws.receive()
        if message['type'] == 'websocket.disconnect':
            break
        if message.get('text') is not None:
            await ws.send_text(message['text'])
        else:
            await ws.send_bytes(message.get('bytes') or b'')


with Configurator() as config:
    config.include('pyramid_asgi_ws')
    config.add_route('hello', '/')
    config.add_view(hello_world, route_name='hello')
    config.add_asgi_consumer('/ws', hello_websocket, name='echo')
    # The recipe's raw (scope, receive, send) consumers work unchanged:
    # config.add_asgi_consumer('/ws', hello_websocket, raw=True)
    app = config.make_asgi_app()
