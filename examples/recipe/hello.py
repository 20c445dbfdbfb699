"""The cookbook's first example, a plain Pyramid app served over ASGI.

Run it with ``uvicorn hello:app`` (or ``hypercorn``/``daphne``).
"""

from pyramid.config import Configurator
from pyramid.response import Response


def hello_world(request):
    return Response('Hello')


with Configurator() as config:
    config.include('pyramid_asgi_ws')
    config.add_route('hello', '/')
    config.add_view(hello_world, route_name='hello')
    app = config.make_asgi_app()
