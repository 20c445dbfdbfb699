"""A Pyramid app with a two-thread pool, for clients that stall uploads."""

from pyramid.config import Configurator
from pyramid.response import Response


def echo_length(request):
    return Response(str(len(request.body)))


def make_app():
    config = Configurator(settings={'asgi_ws.threads': '2'})
    config.include('pyramid_asgi_ws')
    config.add_route('upload', '/')
    config.add_view(echo_length, route_name='upload')
    return config.make_asgi_app()


app = make_app()
