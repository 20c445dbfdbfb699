"""Consumer patterns, route prefixes and URLs to consumers."""

from pyramid.config import Configurator
from pyramid.view import view_config

from pyramid_asgi_ws import websocket_consumer


@websocket_consumer('/rooms/{room}', name='room')
async def room(ws):
    await ws.accept()
    await ws.send_json({'room': ws.matchdict['room']})


@websocket_consumer('/items/{id:\\d+}', name='item')
async def item(ws):
    await ws.accept()
    await ws.send_json({'id': int(ws.matchdict['id'])})


@websocket_consumer('/files/*path', name='files')
async def files(ws):
    await ws.accept()
    await ws.send_json({'path': '/'.join(ws.matchdict['path'])})


@view_config(route_name='links', renderer='json')
def links(request):
    return {
        'room': request.consumer_url('room', room='lobby'),
        'item': request.consumer_url('item', id=7, _query={'v': 2}),
        'live': request.consumer_url('live'),
    }


async def live(ws):
    await ws.accept()
    await ws.send_text(ws.path)


def includeme(config):
    # Inside config.include(..., route_prefix='/api') this becomes
    # /api/live, like any route the included package adds.
    config.add_asgi_consumer('/live', live, name='live')


def make_app():
    with Configurator() as config:
        config.include('pyramid_asgi_ws')
        config.add_route('links', '/links')
        config.scan(__name__)
        config.include(includeme, route_prefix='/api')
    return config.make_asgi_app()
