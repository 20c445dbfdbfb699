"""A small chat room to test: groups, a view that broadcasts, a startup."""

from pyramid.config import Configurator
from pyramid.events import subscriber
from pyramid.view import view_config

from pyramid_asgi_ws import ApplicationStartup, websocket_consumer


@subscriber(ApplicationStartup)
def load_motd(event):
    # Runs at lifespan startup, which the TestClient runs too.
    event.registry.motd = 'be nice'


@websocket_consumer('/rooms/{room}')
async def chat(ws):
    room = ws.matchdict['room']
    await ws.accept()
    await ws.join(room)
    # Saying so once joined lets clients (and tests) know they are in.
    await ws.send_json({'joined': room, 'motd': ws.request.registry.motd})
    async for data in ws.iter_json():
        await ws.broadcast(room, {'text': data['text']})


@view_config(route_name='announce', request_method='POST', renderer='json')
def announce(request):
    room = request.matchdict['room']
    request.broadcast(room, {'text': request.POST['text']})
    return {'sent': room}


def make_app(settings=None):
    with Configurator(settings=settings) as config:
        config.include('pyramid_asgi_ws')
        config.add_route('announce', '/rooms/{room}/announce')
        config.scan(__name__)
    return config.make_asgi_app()
