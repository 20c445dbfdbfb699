"""The Pyramid cookbook's ASGI recipe, as it was (for comparison only).

It wraps the Pyramid app in asgiref's ``WsgiToAsgi`` and looks consumers
up in a dict keyed by exact path.
"""

from asgiref.wsgi import WsgiToAsgi
from pyramid.config import Configurator
from pyramid.response import Response


class ExtendedWsgiToAsgi(WsgiToAsgi):
    """Extends the WsgiToAsgi wrapper with an ASGI consumer router."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.protocol_router = {'http': {}, 'websocket': {}}

    async def __call__(self, scope, *args, **kwargs):
        protocol = scope['type']
        path = scope['path']
        try:
            consumer = self.protocol_router[protocol][path]
        except KeyError:
            consumer = None
        if consumer is not None:
            await consumer(scope, *args, **kwargs)
        try:
            await super().__call__(scope, *args, **kwargs)
        except ValueError:
            pass

    def route(self, rule, *args, **kwargs):
        protocol = kwargs['protocol']

        def _route(func):
            self.protocol_router[protocol][rule] = func

        return _route


def hello_world(request):
    return Response('Hello')


with Configurator() as config:
    config.add_route('hello', '/')
    config.add_view(hello_world, route_name='hello')
    wsgi_app = config.make_wsgi_app()

app = ExtendedWsgiToAsgi(wsgi_app)


@app.route('/ws', protocol='websocket')
async def hello_websocket(scope, receive, send):
    while True:
        message = await receive()
        if message['type'] == 'websocket.connect':
            await send({'type': 'websocket.accept'})
        elif message['type'] == 'websocket.receive':
            text = message.get('text')
            if text:
                await send({'type': 'websocket.send', 'text': text})
            else:
                await send(
                    {'type': 'websocket.send', 'bytes': message.get('bytes')}
                )
        elif message['type'] == 'websocket.disconnect':
            break
